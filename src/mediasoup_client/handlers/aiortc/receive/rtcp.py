"""RTCP the receive path writes (RR, generic NACK, PLI) and reads (SR), on aiortc's public
``aiortc.rtp`` packet classes where they fit. Generic NACK is written here: aiortc's writer
cannot span a sequence-number wrap."""

from __future__ import annotations

import struct
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
)

from .statistics import ReportBlockFields


def receiverReport(ssrc: int, blocks: list[ReportBlockFields]) -> bytes:
    return bytes(
        RtcpRrPacket(
            ssrc=ssrc,
            reports=[
                RtcpReceiverInfo(
                    ssrc=block.ssrc,
                    fraction_lost=block.fractionLost,
                    packets_lost=block.packetsLost,
                    highest_sequence=block.highestSequence,
                    jitter=min(block.jitter, 0xFFFFFFFF),
                    lsr=block.lsr,
                    dlsr=block.dlsr,
                )
                for block in blocks[:31]
            ],
        )
    )


def genericNack(senderSsrc: int, mediaSsrc: int, sequenceNumbers: list[int]) -> bytes:
    """RFC 4585 generic NACK for ``sequenceNumbers`` (unwrapped or not, ascending): PID + BLP
    items, each covering a packet and the 16 after it."""
    items = bytearray()
    ordered = sorted(set(sequenceNumbers))
    index = 0
    while index < len(ordered):
        pid = ordered[index]
        mask = 0
        index += 1
        while index < len(ordered) and ordered[index] - pid <= 16:
            mask |= 1 << (ordered[index] - pid - 1)
            index += 1
        items += struct.pack("!HH", pid & 0xFFFF, mask)
    body = struct.pack("!II", senderSsrc, mediaSsrc) + bytes(items)
    return struct.pack("!BBH", 0x80 | RTCP_RTPFB_NACK, RTCP_RTPFB, len(body) // 4) + body


def pictureLossIndication(senderSsrc: int, mediaSsrc: int) -> bytes:
    return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=senderSsrc, media_ssrc=mediaSsrc))


def senderReportOf(packet: Any) -> tuple[int, int, int, int, int] | None:
    """(SSRC, NTP, RTP timestamp, packet count, octet count) of an SR."""
    if not isinstance(packet, RtcpSrPacket):
        return None
    info = packet.sender_info
    return (
        int(packet.ssrc),
        int(info.ntp_timestamp),
        int(info.rtp_timestamp),
        int(info.packet_count),
        int(info.octet_count),
    )
