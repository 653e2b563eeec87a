"""W3C-shaped stats for the send path: ``codec``, ``outbound-rtp`` per encoding and
``remote-inbound-rtp`` from the receiver's reports."""

from __future__ import annotations

from typing import Any

from ....types import RtpCodecParameters
from .rtp_stream import RtpStream

Stats = dict[str, Any]


def codecStats(codec: RtpCodecParameters, timestamp: float) -> Stats:
    parameters = codec.get("parameters") or {}
    stats: Stats = {
        "id": f"CO{codec['payloadType']}",
        "type": "codec",
        "timestamp": timestamp,
        "payloadType": codec["payloadType"],
        "mimeType": codec["mimeType"],
        "clockRate": codec["clockRate"],
    }
    if "channels" in codec:
        stats["channels"] = codec["channels"]
    if parameters:
        stats["sdpFmtpLine"] = ";".join(f"{k}={v}" for k, v in parameters.items())
    return stats


def outboundStats(
    stream: RtpStream, *, kind: str, codecId: str, timestamp: float, active: bool
) -> Stats:
    stats: Stats = {
        "id": f"OT{stream.ssrc}",
        "type": "outbound-rtp",
        "timestamp": timestamp,
        "ssrc": stream.ssrc,
        "kind": kind,
        "codecId": codecId,
        "active": active,
        "packetsSent": stream.packetsSent,
        "bytesSent": stream.bytesSent,
        "headerBytesSent": stream.headerBytesSent,
        "retransmittedPacketsSent": stream.retransmittedPacketsSent,
        "retransmittedBytesSent": stream.retransmittedBytesSent,
        "nackCount": stream.nackCount,
    }
    if stream.rid is not None:
        stats["rid"] = stream.rid
    if stream.rtx is not None:
        stats["rtxSsrc"] = stream.rtx.ssrc
    if stream.lastPacketSentTimestamp is not None:
        stats["lastPacketSentTimestamp"] = stream.lastPacketSentTimestamp * 1000
    if stream.remoteReport is not None:
        stats["remoteId"] = f"RI{stream.ssrc}"
    return stats


def remoteInboundStats(stream: RtpStream, *, kind: str, codecId: str) -> Stats | None:
    report = stream.remoteReport
    if report is None:
        return None
    stats: Stats = {
        "id": f"RI{stream.ssrc}",
        "type": "remote-inbound-rtp",
        "timestamp": report.timestamp * 1000,
        "ssrc": stream.ssrc,
        "kind": kind,
        "codecId": codecId,
        "localId": f"OT{stream.ssrc}",
        "packetsLost": report.packetsLost,
        "fractionLost": report.fractionLost,
        "jitter": report.jitter,
        "totalRoundTripTime": report.totalRoundTripTime,
        "roundTripTimeMeasurements": report.roundTripTimeMeasurements,
    }
    if report.roundTripTime is not None:
        stats["roundTripTime"] = report.roundTripTime
    return stats
