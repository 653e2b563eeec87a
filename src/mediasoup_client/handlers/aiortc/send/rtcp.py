"""RTCP the send path writes (SR, SDES, BYE) and reads (RR, NACK, PLI, FIR, REMB).

Packets are built and parsed with aiortc's public ``aiortc.rtp`` classes; this module only adds
the small interpretations the sender needs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB,
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    unpack_remb_fci,
)

from .cc.transport_feedback import compoundPackets
from .rtp_header import compactNtp

_SDES_CNAME = 1


def senderReport(
    *, ssrc: int, ntp: int, rtpTimestamp: int, packetCount: int, octetCount: int
) -> bytes:
    return bytes(
        RtcpSrPacket(
            ssrc=ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp,
                rtp_timestamp=rtpTimestamp & 0xFFFFFFFF,
                packet_count=packetCount & 0xFFFFFFFF,
                octet_count=octetCount & 0xFFFFFFFF,
            ),
        )
    )


def sdes(ssrcs: list[int], cname: str) -> bytes:
    value = cname.encode("utf8")[:255]
    chunks = [RtcpSourceInfo(ssrc=ssrc, items=[(_SDES_CNAME, value)]) for ssrc in ssrcs]
    return bytes(RtcpSdesPacket(chunks=chunks))


def bye(ssrcs: list[int]) -> bytes:
    return bytes(RtcpByePacket(sources=ssrcs))


@dataclass
class ReportBlock:
    """One RR/SR report block about one of our SSRCs, interpreted."""

    ssrc: int
    fractionLost: float  # 0..1
    packetsLost: int
    highestSequence: int
    jitter: int  # in RTP timestamp units
    roundTripTime: float | None  # seconds, when LSR/DLSR allow it


def reportBlocks(packet: Any, ssrcs: set[int], nowNtp: int) -> list[ReportBlock]:
    """The report blocks of an RR or SR that are about ``ssrcs``."""
    if not isinstance(packet, RtcpRrPacket | RtcpSrPacket):
        return []
    blocks: list[ReportBlock] = []
    for report in packet.reports:
        if report.ssrc not in ssrcs:
            continue
        rtt: float | None = None
        if report.lsr:
            # RFC 3550 6.4.1: RTT = A - LSR - DLSR, all in compact NTP (1/65536 s).
            delta = (compactNtp(nowNtp) - report.lsr - report.dlsr) & 0xFFFFFFFF
            if delta < 0x80000000:
                rtt = delta / 65536
        blocks.append(
            ReportBlock(
                ssrc=report.ssrc,
                fractionLost=report.fraction_lost / 256,
                packetsLost=report.packets_lost,
                highestSequence=report.highest_sequence,
                jitter=report.jitter,
                roundTripTime=rtt,
            )
        )
    return blocks


def nackedSequenceNumbers(packet: Any) -> tuple[int, list[int]] | None:
    """(media SSRC, lost sequence numbers) of a generic NACK."""
    if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
        return packet.media_ssrc, [seq & 0xFFFF for seq in packet.lost]
    return None


def pliSsrc(packet: Any) -> int | None:
    if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
        return int(packet.media_ssrc)
    return None


def firRequests(packet: Any) -> list[tuple[int, int]]:
    """(SSRC, command sequence number) of each FIR entry (RFC 5104 4.3.1)."""
    if not (isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_FIR):
        return []
    fci: bytes = packet.fci
    return [
        (struct.unpack_from("!I", fci, pos)[0], fci[pos + 4]) for pos in range(0, len(fci) - 7, 8)
    ]


def rembBitrates(data: bytes) -> list[int]:
    """The bitrates (bps) of every REMB in a raw (compound) RTCP datagram."""
    found: list[int] = []
    for first, packet_type, packet in compoundPackets(data):
        if packet_type == RTCP_PSFB and first & 0x1F == RTCP_PSFB_APP and len(packet) >= 16:
            try:
                bitrate, _ssrcs = unpack_remb_fci(packet[12:])
            except ValueError:
                pass
            else:
                found.append(int(bitrate))
    return found


def remb(packet: Any) -> tuple[int, list[int]] | None:
    """(bitrate in bps, SSRCs) of a REMB, None for anything else."""
    if not (isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP):
        return None
    try:
        bitrate, ssrcs = unpack_remb_fci(packet.fci)
    except ValueError:
        return None
    return int(bitrate), [int(s) for s in ssrcs]
