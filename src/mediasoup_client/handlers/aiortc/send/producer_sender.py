"""ProducerSender: the pure core of everything one producer sends.

It owns one RTP stream per encoding (simulcast), the media pipeline (video: one encoder per
layer; audio: Opus) behind one protocol, the RTCP it answers (NACK over RTX within the
transport's retransmission budget, PLI/FIR, receiver reports) and the RTCP it writes (SR +
SDES about once a second per stream, BYE on stop). Bandwidth is the transport's business: the
scheduler's congestion controller (REMB included) estimates it and hands each producer its
share (``setBitrateBudget``) from what each claims (``demand``). No I/O and no clock: the
scheduler (``scheduler.py``) feeds it frames, encode results, RTCP and ticks with the time, and
sends what it returns through the transport's pacer.

Pausing follows mediasoup-client's options: ``zeroRtpOnPause`` sends no RTP at all while
paused; otherwise ``disableTrackOnPause`` (the default) makes the track count as disabled, as a
browser's ``track.enabled = false`` does: black video and silent audio keep the streams alive
at a few kbps (so the router keeps its scores and layers, and resuming is instant); with
neither, pausing changes nothing on the wire. Resuming starts video with a key frame.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import Enum
from typing import Any

from ....types import RtpEncodingParameters, StatsReport
from . import rtcp, stats
from .audio_pipeline import AudioPipeline
from .bitrate import ProducerDemand
from .config import SendConfig
from .layer_encoder import EncoderHub
from .pipeline import EncodeJob, MediaPipeline, SendActions
from .retransmission import RetransmissionBudget
from .rtp_stream import RtpStream, RtxConfig
from .video_pipeline import VideoPipeline

SR_INTERVAL = 1.0  # seconds, per stream, randomised +-25 %


class PauseMode(Enum):
    ZERO_RTP = "zeroRtp"  # nothing is encoded or sent
    DISABLE_TRACK = "disableTrack"  # black video, silent audio
    NONE = "none"  # media keeps flowing

    @classmethod
    def fromOptions(cls, *, disableTrackOnPause: bool, zeroRtpOnPause: bool) -> PauseMode:
        if zeroRtpOnPause:
            return cls.ZERO_RTP
        return cls.DISABLE_TRACK if disableTrackOnPause else cls.NONE


class ProducerSender:
    def __init__(
        self,
        config: SendConfig,
        *,
        pauseMode: PauseMode = PauseMode.DISABLE_TRACK,
        pipelineFactory: Callable[[SendConfig, list[RtpStream]], MediaPipeline] | None = None,
        encoderHub: EncoderHub | None = None,
    ) -> None:
        self.config = config
        self.kind = config.kind
        self._pause_mode = pauseMode
        # One media clock per producer: every layer of one frame has the same RTP timestamp.
        timestamp_offset = random.getrandbits(32)
        rtx_pt = config.rtxPayloadType
        self.streams = [
            RtpStream(
                ssrc=encoding.ssrc,
                payloadType=config.payloadType,
                clockRate=config.clockRate,
                extensionIds=config.extensionIds,
                mid=config.mid,
                rid=encoding.rid,
                rtx=(
                    RtxConfig(ssrc=encoding.rtxSsrc, payloadType=rtx_pt)
                    if encoding.rtxSsrc is not None and rtx_pt is not None
                    else None
                ),
                timestampOffset=timestamp_offset,
                kind=config.kind,
            )
            for encoding in config.encodings
        ]
        self._by_ssrc = {stream.ssrc: stream for stream in self.streams}
        self.pipeline: MediaPipeline = (
            pipelineFactory(config, self.streams)  # pre-encoded sources (passthrough)
            if pipelineFactory is not None
            else VideoPipeline(config, self.streams, hub=encoderHub)
            if config.kind == "video"
            else AudioPipeline(config, self.streams[0], hub=encoderHub)
        )
        self._paused = False
        self._next_report: dict[int, float] = {}
        # The transport's (the scheduler shares one across its producers).
        self.retransmissionBudget = RetransmissionBudget()

    # Properties.

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def encodings(self) -> list[RtpEncodingParameters]:
        """The encodings as the sender applies them now."""
        return [encoding.asParameters() for encoding in self.config.encodings]

    @property
    def writesTransportSequence(self) -> bool:
        """Whether the producer's packets carry the transport-wide sequence number (the
        router negotiated transport-cc for it)."""
        return any(s.writesTransportSequence for s in self.streams)

    @property
    def ssrcs(self) -> list[int]:
        """Media SSRCs then RTX SSRCs."""
        media = [s.ssrc for s in self.streams]
        return media + [s.rtx.ssrc for s in self.streams if s.rtx is not None]

    # Life cycle.

    def start(self, now: float) -> None:
        """The transport is connected: frames are taken from now on."""
        self.pipeline.start(now)

    def stop(self) -> bytes | None:
        """Stop for good; the RTCP BYE for the streams that sent, if any."""
        self.pipeline.stop()
        sent = [s.ssrc for s in self.streams if s.hasSent]
        return rtcp.bye(sent) if sent else None

    # Inputs.

    def onFrame(self, frame: Any, now: float) -> SendActions:
        return self.pipeline.onFrame(frame, now)

    def onEncoded(
        self, job: EncodeJob, result: Any, error: BaseException | None, now: float
    ) -> SendActions:
        return self.pipeline.onEncoded(job, result, error, now)

    def onRtcp(self, packet: Any, now: float, wallTime: float, ntp: int) -> SendActions:
        actions = SendActions()
        for block in rtcp.reportBlocks(packet, set(self._by_ssrc), ntp):
            self._by_ssrc[block.ssrc].onReportBlock(block, wallTime)
        nack = rtcp.nackedSequenceNumbers(packet)
        if nack is not None and nack[0] in self._by_ssrc:
            actions.packets.extend(
                self._by_ssrc[nack[0]].retransmissions(nack[1], now, self.retransmissionBudget)
            )
            return actions
        pli = rtcp.pliSsrc(packet)
        if pli is not None and pli in self._by_ssrc:
            self._by_ssrc[pli].pliCount += 1
            self.pipeline.requestKeyFrame(pli, now)
            return actions
        for ssrc, _sequence in rtcp.firRequests(packet):
            if ssrc in self._by_ssrc:
                self._by_ssrc[ssrc].firCount += 1
                self.pipeline.requestKeyFrame(ssrc, now)
        return actions

    def setAllocator(self, onDemandChanged: Any) -> None:
        """``onDemandChanged(now)`` is called when the producer's demand changed (new size,
        layers, state); the transport answers with ``setBitrateBudget``."""
        if hasattr(self.pipeline, "onDemandChanged"):  # video, encoded or passed through
            self.pipeline.onDemandChanged = onDemandChanged

    def setOutput(self, onActions: Callable[[SendActions], None]) -> None:
        """``onActions(actions)`` takes packets that come outside the calls made here (a
        shared encoder's result brought by another producer's job)."""
        if hasattr(self.pipeline, "onPackets"):
            self.pipeline.onPackets = onActions

    def setSource(self, source: object, now: float) -> None:
        """The track frames come from: producers of one track share encoders (None: no
        sharing)."""
        if hasattr(self.pipeline, "setSource"):
            self.pipeline.setSource(source, now)

    def demand(self, now: float) -> ProducerDemand:
        demand = self.pipeline.demand(now)
        demand.key = self
        return demand

    def setBitrateBudget(
        self, budget: int | None, now: float, *, congested: bool = False,
        resumeBudget: int | None = None,
    ) -> None:  # fmt: skip
        self.pipeline.setBitrateBudget(
            budget, now, congested=congested, resumeBudget=resumeBudget
        )

    def paddingPackets(self, size: int) -> list[Any]:
        """Padding for a probe, on the lowest stream that can carry it (none: [])."""
        for stream in self.streams:
            if stream.canPad:
                return stream.paddingPackets(size)
        return []

    @property
    def canPad(self) -> bool:
        return any(stream.canPad for stream in self.streams)

    def senderReports(self, now: float, ntp: int) -> list[bytes]:
        """The SRs (with SDES) due now, each stream about once per SR_INTERVAL."""
        reports: list[bytes] = []
        for stream in self.streams:
            if now < self._next_report.get(stream.ssrc, 0.0):
                continue
            packet = stream.senderReport(now, ntp, self.config.cname)
            if packet is None:
                continue
            self._next_report[stream.ssrc] = now + SR_INTERVAL * random.uniform(0.75, 1.25)
            reports.append(packet)
        return reports

    # Controls.

    def pause(self, now: float) -> None:
        self._paused = True
        if self._pause_mode is PauseMode.ZERO_RTP:
            self.pipeline.pause(now)
        elif self._pause_mode is PauseMode.DISABLE_TRACK:
            self.pipeline.mute(True, now)

    def resume(self, now: float) -> None:
        self._paused = False
        if self._pause_mode is PauseMode.ZERO_RTP:
            self.pipeline.resume(now)
        elif self._pause_mode is PauseMode.DISABLE_TRACK:
            self.pipeline.mute(False, now)

    def replaceTrack(self, present: bool, now: float) -> None:
        """A new source from now on (``present`` False: none). RTP timestamps keep increasing
        and the next video frame of every layer is a key frame."""
        self.pipeline.replaceTrack(present, now)

    def setMaxSpatialLayer(self, spatialLayer: int, now: float) -> None:
        """Layers above ``spatialLayer`` stop now; raising it brings them back with key
        frames (the encodings' ``active`` flags change, as in mediasoup-client)."""
        self.pipeline.setParameters(
            [{"active": e.index <= spatialLayer} for e in self.config.encodings], now
        )

    def setRtpEncodingParameters(self, params: dict[str, Any], now: float) -> None:
        """Merge ``params`` (maxBitrate, maxFramerate, scaleResolutionDownBy, active, dtx)
        into every encoding and apply them at once."""
        self.pipeline.setParameters([dict(params) for _ in self.config.encodings], now)

    def requestKeyFrame(self, now: float) -> None:
        """Ask every video layer for a key frame (as a PLI would)."""
        self.pipeline.requestKeyFrame(None, now)

    # Stats.

    def getStats(self, now: float, wallTime: float) -> StatsReport:
        timestamp = wallTime * 1000
        report: StatsReport = {}
        codec_stats = stats.codecStats(self.config.codec, timestamp)
        codec_id = codec_stats["id"]
        report[codec_id] = codec_stats
        for entry in self.pipeline.stats(now, timestamp, codec_id):
            report[entry["id"]] = entry
        for stream in self.streams:
            remote = stats.remoteInboundStats(stream, kind=self.kind, codecId=codec_id)
            if remote is not None:
                report[remote["id"]] = remote
        return report
