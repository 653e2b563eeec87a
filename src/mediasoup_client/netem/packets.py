"""What kind of datagram the relay carries, from the bytes in the clear (RFC 7983 demux).

SRTP leaves the RTP header unencrypted, so the SSRC and marker bit of every media packet are
visible: the relay counts per SSRC (media, RTX, each simulcast layer) without any keys.
"""

from __future__ import annotations

from collections.abc import Hashable

STUN = "stun"
DTLS = "dtls"  # the handshake and SCTP (data channels) ride in DTLS records
RTCP = "rtcp"
OTHER = "other"


def classify(data: bytes) -> tuple[Hashable, bool]:
    """(tag, marker): tag is the SSRC (int) of an RTP packet, else a class name."""
    if len(data) < 2:
        return OTHER, False
    first = data[0]
    if first < 4:
        return STUN, False
    if 20 <= first < 64:
        return DTLS, False
    if 128 <= first < 192:
        second = data[1]
        if 192 <= second < 224:  # RTCP packet types 192-223 (RFC 5761)
            return RTCP, False
        if len(data) >= 12:
            return int.from_bytes(data[8:12], "big"), bool(second & 0x80)
    return OTHER, False
