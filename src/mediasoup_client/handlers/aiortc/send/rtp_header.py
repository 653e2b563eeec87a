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


def ntpTime(unixTime: float | None = None) -> int:
    """64-bit NTP timestamp (32.32 fixed point) for ``unixTime`` (default: now)."""
    t = time.time() if unixTime is None else unixTime
    return int((t + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def compactNtp(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (16.16), as LSR/DLSR use them."""
    return (ntp >> 16) & 0xFFFFFFFF


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
        # Per (transport sequence?, audio level?): the whole header as one struct, the
        # constant values ready (``header``; one pack per packet instead of a dozen joins).
        self._layouts: dict[tuple[bool, bool], _Layout] = {}

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

    def header(
        self,
        *,
        payloadType: int,
        marker: bool,
        sequenceNumber: int,
        timestamp: int,
        ssrc: int,
        ntp: int,
        audioLevel: int | None = None,
        voice: bool = False,
        transportSequence: int | None = None,
        padding: bool = False,
    ) -> bytes:
        """The packet's RTP header: fixed part and extension block (profile, length,
        elements, padding; none when there is nothing to write), in one struct pack."""
        tcc = transportSequence is not None and self._transport_cc_id is not None
        level = audioLevel is not None and self._audio_level_id is not None
        layout = self._layouts.get((tcc, level))
        if layout is None:
            layout = self._layouts[(tcc, level)] = _Layout(
                self._static_bytes,
                self._abs_send_time_id,
                self._transport_cc_id if tcc else None,
                self._audio_level_id if level else None,
            )
        values: list[object] = [
            0x80 | (0x10 if layout.hasExtensions else 0) | (0x20 if padding else 0),
            (0x80 if marker else 0) | (payloadType & 0x7F),
            sequenceNumber & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc,
            *layout.prefix,
        ]
        if layout.writesAbsSendTime:
            values.append(layout.absSendTimeTag | ((ntp >> 14) & 0xFFFFFF))  # 6.18 seconds
        if tcc:
            assert transportSequence is not None
            values.append(layout.transportCcTag)
            values.append(transportSequence & 0xFFFF)
        if level:
            assert audioLevel is not None
            values.append(layout.audioLevelTag | (0x80 if voice else 0) | audioLevel)
        return layout.struct.pack(*values)


class _Layout:
    """The RTP header of one stream with a given set of per-packet extensions: fixed header,
    extension profile and length, the static elements, then abs-send-time (its id and 24
    bits in one word), the transport sequence and the audio level, then the padding."""

    def __init__(
        self, static: bytes, absSendTimeId: int | None, transportCcId: int | None,
        audioLevelId: int | None,
    ) -> None:  # fmt: skip
        body = len(static) + (4 if absSendTimeId is not None else 0)
        body += (3 if transportCcId is not None else 0) + (2 if audioLevelId is not None else 0)
        padding = -body % 4
        self.hasExtensions = body > 0
        fields = "!BBHII"
        if self.hasExtensions:
            fields += f"HH{len(static)}s" if static else "HH"
            fields += "I" if absSendTimeId is not None else ""
            fields += "BH" if transportCcId is not None else ""
            fields += "H" if audioLevelId is not None else ""
            fields += f"{padding}x" if padding else ""
        self.struct = struct.Struct(fields)
        self.prefix: tuple[object, ...] = (
            ((_ONE_BYTE_PROFILE, (body + padding) // 4) + ((static,) if static else ()))
            if self.hasExtensions
            else ()
        )
        # Each element's header byte (id, length - 1), shifted to where it goes in its field
        # (0: the element is not written).
        self.writesAbsSendTime = absSendTimeId is not None
        self.absSendTimeTag = ((absSendTimeId or 0) << 4 | 2) << 24
        self.transportCcTag = (transportCcId or 0) << 4 | 1
        self.audioLevelTag = (audioLevelId or 0) << 12
