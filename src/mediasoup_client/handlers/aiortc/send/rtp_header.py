"""RTP header serialisation for the send path (RFC 3550 / RFC 8285 one-byte extensions).

Written by hand rather than through aiortc's ``RtpPacket.serialize``: the static extensions
(mid, rid) are encoded once per stream and only abs-send-time, the transport-wide sequence
number and the audio level change per packet, which keeps the per-packet cost low.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping

from ....rtp_extensions import (
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    URI_RID,
    URI_RRID,
    URI_TRANSPORT_WIDE_CC,
)

# Seconds between the NTP epoch (1900) and the Unix epoch (1970).
NTP_EPOCH_OFFSET = 2208988800

_ONE_BYTE_PROFILE = 0xBEDE
_HEADER = struct.Struct("!BBHII")


def ntpTime(unixTime: float | None = None) -> int:
    """64-bit NTP timestamp (32.32 fixed point) for ``unixTime`` (default: now)."""
    t = time.time() if unixTime is None else unixTime
    return int((t + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def compactNtp(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (16.16), as LSR/DLSR use them."""
    return (ntp >> 16) & 0xFFFFFFFF


def absSendTime(ntp: int) -> bytes:
    """abs-send-time: 6.18 fixed-point seconds, 24 bits."""
    return ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")


def _element(extId: int, value: bytes) -> bytes:
    return bytes([(extId << 4) | (len(value) - 1)]) + value


class ExtensionWriter:
    """Encodes the header extensions of one RTP stream (media or RTX).

    Only extensions present in the producer's ``headerExtensions`` (with the router's ids) are
    written; ids outside the one-byte range (1..14) and values longer than 16 bytes are skipped.
    """

    def __init__(
        self,
        ids: Mapping[str, int],
        *,
        mid: str | None,
        rid: str | None,
        repairedRid: str | None = None,
    ) -> None:
        static = b""
        if mid:
            static += self._static(ids.get(URI_MID), mid)
        if rid:
            static += self._static(ids.get(URI_RID), rid)
        if repairedRid:
            static += self._static(ids.get(URI_RRID), repairedRid)
        self._static_bytes = static
        self._abs_send_time_id = self._valid(ids.get(URI_ABS_SEND_TIME))
        self._audio_level_id = self._valid(ids.get(URI_AUDIO_LEVEL))
        self._transport_cc_id = self._valid(ids.get(URI_TRANSPORT_WIDE_CC))

    @staticmethod
    def _valid(extId: int | None) -> int | None:
        return extId if extId is not None and 1 <= extId <= 14 else None

    def _static(self, extId: int | None, value: str) -> bytes:
        data = value.encode("utf8")
        valid = self._valid(extId)
        if valid is None or not 1 <= len(data) <= 16:
            return b""
        return _element(valid, data)

    @property
    def writesAudioLevel(self) -> bool:
        return self._audio_level_id is not None

    @property
    def writesTransportSequence(self) -> bool:
        return self._transport_cc_id is not None

    def build(
        self,
        ntp: int,
        audioLevel: int | None = None,
        voice: bool = False,
        *,
        transportSequence: int | None = None,
    ) -> bytes:
        """The extension block (profile, length, elements, padding) or b"" when empty."""
        body = self._static_bytes
        if self._abs_send_time_id is not None:
            body += _element(self._abs_send_time_id, absSendTime(ntp))
        if transportSequence is not None and self._transport_cc_id is not None:
            body += _element(self._transport_cc_id, (transportSequence & 0xFFFF).to_bytes(2, "big"))
        if audioLevel is not None and self._audio_level_id is not None:
            body += _element(self._audio_level_id, bytes([(0x80 if voice else 0) | audioLevel]))
        if not body:
            return b""
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("!HH", _ONE_BYTE_PROFILE, len(body) // 4) + body


def rtpHeader(
    *,
    payloadType: int,
    marker: bool,
    sequenceNumber: int,
    timestamp: int,
    ssrc: int,
    extensions: bytes,
    padding: bool = False,
) -> bytes:
    """The fixed RTP header plus ``extensions`` (as built by ``ExtensionWriter.build``);
    ``padding`` sets the P bit (the caller appends the padding)."""
    first = 0x80 | (0x10 if extensions else 0) | (0x20 if padding else 0)
    second = (0x80 if marker else 0) | (payloadType & 0x7F)
    return (
        _HEADER.pack(first, second, sequenceNumber & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
        + extensions
    )
