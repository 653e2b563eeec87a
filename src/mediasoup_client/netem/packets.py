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


# SRTCP's trailer: the 4-byte E flag and index, then the authentication tag (10 bytes for
# AES_CM_128_HMAC_SHA1_80, 16 for the AEAD suites); anything past it is a second packet.
_SRTCP_TRAILER_MAX = 4 + 16


def rtcpKind(data: bytes) -> str | None:
    """The type of an RTCP datagram, from its first packet: ``"PT/FMT"`` (``"201/N"`` a
    receiver report with N report blocks, ``"205/15"`` transport-cc feedback, ``"205/1"``
    NACK, ``"206/15"`` REMB, ``"206/1"`` PLI), with ``"+"`` when more packets follow it (a
    compound packet). None when ``data`` is not RTCP. SRTCP leaves the first 8 bytes (header
    and sender SSRC) in the clear, so the first packet's type, format and length can be read
    without keys; the types of the packets after it cannot."""
    if len(data) < 8 or not 128 <= data[0] < 192 or not 192 <= data[1] < 224:
        return None
    first = (int.from_bytes(data[2:4], "big") + 1) * 4
    compound = len(data) - first > _SRTCP_TRAILER_MAX
    return f"{data[1]}/{data[0] & 0x1F}{'+' if compound else ''}"
