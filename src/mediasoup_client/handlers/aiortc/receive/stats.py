"""W3C-shaped stats for the receive path: ``inbound-rtp`` for the consumer's media SSRC,
``remote-outbound-rtp`` from the router's sender reports, and the ``codec`` entry."""

from __future__ import annotations

from typing import Any

from ....types import RtpCodecParameters
from ..send.stats import codecStats
from .statistics import FrameCounters, SampleCounters
from .stream_core import ReceiveCore

Stats = dict[str, Any]

__all__ = ["codecStats", "inboundStats", "remoteOutboundStats"]


def inboundStats(
    core: ReceiveCore,
    *,
    codec: RtpCodecParameters,
    trackId: str,
    mid: str | None,
    timestamp: float,
    now: float,
    frames: FrameCounters | None,
    samples: SampleCounters | None,
    decoderImplementation: str,
) -> Stats:
    stream = core.stats
    stats: Stats = {
        "id": f"IT{stream.ssrc}",
        "type": "inbound-rtp",
        "timestamp": timestamp,
        "ssrc": stream.ssrc,
        "kind": core.kind,
        "codecId": f"CO{codec['payloadType']}",
        "trackIdentifier": trackId,
        "packetsReceived": stream.packetsReceived,
        "bytesReceived": stream.bytesReceived,
        "packetsLost": stream.packetsLost,
        "packetsDiscarded": core.packetsDiscarded,
        "jitter": stream.jitter,
    }
    if mid is not None:
        stats["mid"] = mid
    if stream.lastPacketReceivedTimestamp is not None:
        stats["lastPacketReceivedTimestamp"] = stream.lastPacketReceivedTimestamp * 1000
    if core.rtxSsrc is not None:
        stats["rtxSsrc"] = core.rtxSsrc
        stats["retransmittedPacketsReceived"] = stream.retransmittedPacketsReceived
        stats["retransmittedBytesReceived"] = stream.retransmittedBytesReceived
    if stream.senderReport is not None:
        stats["remoteId"] = f"RO{stream.ssrc}"
    if core.kind == "video":
        stats.update(
            {
                "nackCount": core.nackCount,
                "pliCount": core.pliCount,
                "firCount": core.firCount,
            }
        )
    if frames is not None and core.video is not None:
        stats.update(
            {
                "framesReceived": core.video.framesAssembled,
                "framesDecoded": frames.framesDecoded,
                "keyFramesDecoded": frames.keyFramesDecoded,
                "framesDropped": core.video.framesDropped + frames.framesDropped,
                "framesPerSecond": frames.framesPerSecond(now),
                "totalDecodeTime": frames.totalDecodeTime,
                "totalInterFrameDelay": frames.totalInterFrameDelay,
                "totalSquaredInterFrameDelay": frames.totalSquaredInterFrameDelay,
                "freezeCount": frames.freezeCount,
                "totalFreezesDuration": frames.totalFreezesDuration,
                "decoderImplementation": decoderImplementation,
            }
        )
        if frames.frameWidth is not None:
            stats["frameWidth"] = frames.frameWidth
            stats["frameHeight"] = frames.frameHeight
    if samples is not None:
        stats.update(
            {
                "totalSamplesReceived": samples.totalSamplesReceived,
                "concealedSamples": samples.concealedSamples,
                "concealmentEvents": samples.concealmentEvents,
                "totalSamplesDuration": samples.totalSamplesDuration,
                "decoderImplementation": decoderImplementation,
            }
        )
    return stats


def remoteOutboundStats(core: ReceiveCore, *, codec: RtpCodecParameters) -> Stats | None:
    stream = core.stats
    report = stream.senderReport
    if report is None:
        return None
    # NTP (1900 epoch, 32.32 fixed point) to Unix milliseconds.
    remote_ms = (report.ntp / (1 << 32) - 2208988800) * 1000
    return {
        "id": f"RO{stream.ssrc}",
        "type": "remote-outbound-rtp",
        "timestamp": report.receivedAtUnix * 1000,
        "ssrc": stream.ssrc,
        "kind": core.kind,
        "codecId": f"CO{codec['payloadType']}",
        "localId": f"IT{stream.ssrc}",
        "packetsSent": report.packetsSent,
        "bytesSent": report.bytesSent,
        "remoteTimestamp": remote_ms,
        "reportsSent": report.reportsReceived,
    }
