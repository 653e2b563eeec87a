"""ConsumerReceiver: one consumer's receive side on an ``RtpPort`` (the thin asyncio layer
over ``ReceiveCore``).

It takes the consumer's RTP from the transport, reports every packet's transport-wide sequence
number to the transport's feedback sender, runs the core's timers (NACK retries, jitter-buffer
deadlines, key-frame requests, a receiver report about every second), decodes what the core
hands out (video in a worker thread, one frame at a time, so the event loop stays free; Opus
on the loop, it is cheap) and queues the frames on its ``track``.

Paused: media is dropped before the jitter buffer; resuming waits for a key frame and asks
for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from typing import Any

from ....types import RtpParameters, StatsReport
from ..rtp_port import RtcpPacket, RtpPacket, RtpPort, RtpRoute
from . import stats
from .decoders import (
    AUDIO_SAMPLE_RATE,
    AudioDecoder,
    DecodeError,
    VideoDecoder,
    decodeExecutor,
    silence,
)
from .frame_buffer import EncodedFrame
from .statistics import FrameCounters, SampleCounters
from .stream_core import TICK, CoreActions, ReceiveCore
from .track import ReceiveTrack
from .transport_feedback_sender import TransportFeedbackSender

logger = logging.getLogger(__name__)

# Seconds between receiver reports, randomised 0.5x..1.5x (RFC 3550). mediasoup's send-side
# estimator lowers its estimate for loss only when a receiver report says so (at most once
# per 300 ms + RTT, as libwebrtc's): on a downlink whose bottleneck queue stays full, delay
# stops growing and the reports' loss is what brings the router down to a layer that fits.
# Video reports twice a second (libwebrtc's 1 s measured 3-7 s from a cap at 400 kbit/s to
# a fitting layer); AVPF lets the regular interval go below RFC 3550's 5 s, and 0.5 s of RR
# is ~1 kbit/s.
RR_INTERVAL = {"audio": 1.0, "video": 0.5}
MAX_DECODE_BACKLOG = 30  # frames waiting for the decoder before it is declared too slow
MAX_CONCEALMENT = AUDIO_SAMPLE_RATE  # samples of silence put in for a loss (1 s at most)
_CONCEALMENT_FRAME = 960


class ConsumerReceiver:
    def __init__(
        self,
        *,
        port: RtpPort,
        kind: str,
        rtpParameters: RtpParameters,
        trackId: str,
        rtcpSsrc: int,
        feedback: TransportFeedbackSender | None = None,
    ) -> None:
        self.kind = kind
        self.rtpParameters = rtpParameters
        self._port = port
        self._feedback = feedback
        self._core = ReceiveCore(kind=kind, rtpParameters=rtpParameters, rtcpSsrc=rtcpSsrc)
        self._codec = rtpParameters["codecs"][0]
        self._trackId = trackId
        self.track = ReceiveTrack(kind, trackId, captureTimeOf=self._core.captureTimeOf)
        self._route = RtpRoute(
            ssrcs=tuple(self._core.ssrcs),
            payloadTypes=tuple(self._core.payloadTypes),
            headerExtensions=tuple(
                (ext["id"], ext["uri"]) for ext in rtpParameters.get("headerExtensions") or []
            ),
        )
        self._videoDecoder: VideoDecoder | None = None
        self._audioDecoder: AudioDecoder | None = None
        self.frames: FrameCounters | None = None
        self.samples: SampleCounters | None = None
        if kind == "video":
            self._videoDecoder = VideoDecoder(self._codec["mimeType"])
            self.frames = FrameCounters()
        else:
            self._audioDecoder = AudioDecoder()
            self.samples = SampleCounters()
        self._decodeQueue: deque[EncodedFrame] = deque()
        self._decodeWake = asyncio.Event()
        self._skipUntilKeyFrame = False
        self._nextAudioPts: int | None = None
        self._unsubscribe: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Future[None]] = set()
        self._started = False
        self._closed = False

    @property
    def core(self) -> ReceiveCore:
        return self._core

    @property
    def route(self) -> RtpRoute:
        return self._route

    @property
    def paused(self) -> bool:
        return self._core.paused

    # Life cycle.

    def start(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        self._unsubscribe = self._port.listenRtp(self._route, self)
        if self._feedback is not None:
            self._feedback.start(self._route.headerExtensions)
        self._tasks.append(asyncio.ensure_future(self._run()))
        if self._videoDecoder is not None:
            self._tasks.append(asyncio.ensure_future(self._decodeLoop()))

    async def stop(self) -> None:
        """Stop for good: nothing more is taken or decoded, the track ends."""
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._decodeQueue.clear()
        self.track.finish()

    def pause(self) -> None:
        self._core.pause()
        self._decodeQueue.clear()

    def resume(self) -> None:
        if self.frames is not None:
            self.frames.resetTiming()
        self._nextAudioPts = None
        self._apply(self._core.resume(time.monotonic()))

    # RtpListener.

    def onRtp(self, packet: RtpPacket, arrival: float) -> None:
        if self._closed:
            return
        if self._feedback is not None:
            self._feedback.onPacket(packet, arrival)
        self._apply(self._core.onRtp(packet, arrival, time.time()))

    def onRtcp(self, packet: RtcpPacket) -> None:
        self._core.onSenderReport(packet, time.monotonic(), time.time())

    def onTransportClosed(self) -> None:
        self._decodeQueue.clear()
        self.track.finish()

    # Stats.

    def getStats(self) -> StatsReport:
        now_unix = time.time()
        timestamp = now_unix * 1000
        report: StatsReport = {}
        codec = stats.codecStats(self._codec, timestamp)
        report[codec["id"]] = codec
        decoder = self._videoDecoder or self._audioDecoder
        inbound = stats.inboundStats(
            self._core,
            codec=self._codec,
            trackId=self._trackId,
            mid=self.rtpParameters.get("mid"),
            timestamp=timestamp,
            now=time.monotonic(),
            frames=self.frames,
            samples=self.samples,
            decoderImplementation=decoder.implementation if decoder else "",
        )
        report[inbound["id"]] = inbound
        remote = stats.remoteOutboundStats(self._core, codec=self._codec)
        if remote is not None:
            report[remote["id"]] = remote
        return report

    # Internals.

    async def _run(self) -> None:
        try:
            await self._port.waitConnected()
        except ConnectionError:
            return
        # Ask for a key frame as soon as media can flow, so video appears at once.
        self._apply(self._core.requestKeyFrame(time.monotonic()))
        interval = RR_INTERVAL[self.kind]
        next_report = time.monotonic() + interval * random.uniform(0.5, 1.5)
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            self._apply(self._core.tick(now))
            if now >= next_report:
                next_report = now + interval * random.uniform(0.5, 1.5)
                report = self._core.receiverReport(now)
                if report is not None:
                    self._send(report)

    def _apply(self, actions: CoreActions) -> None:
        if not actions:
            return
        for rtcp_packet in actions.rtcp:
            self._send(rtcp_packet)
        if actions.videoFrames:
            self._decodeQueue.extend(actions.videoFrames)
            if len(self._decodeQueue) > MAX_DECODE_BACKLOG:
                self._decoderTooSlow()
            self._decodeWake.set()
        for packet, after_loss in actions.audioPackets:
            self._decodeAudio(packet.data, self._core.pts(packet.timestamp), after_loss)

    def _send(self, packet: bytes) -> None:
        if not self._port.connected:
            return

        async def send() -> None:
            with contextlib.suppress(ConnectionError):
                await self._port.sendRtcp(packet)

        task = asyncio.ensure_future(send())
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def _decoderTooSlow(self) -> None:
        """The decoder cannot keep up: drop the backlog and restart from a key frame."""
        queue = self._decodeQueue
        keys = [i for i, frame in enumerate(queue) if frame.keyFrame]
        keep = keys[-1] if keys else len(queue)
        if self.frames is not None:
            self.frames.framesDropped += keep
        for _ in range(keep):
            queue.popleft()
        if not keys:
            self._apply(self._core.onDecodeError(time.monotonic()))

    async def _decodeLoop(self) -> None:
        assert self._videoDecoder is not None and self.frames is not None
        loop = asyncio.get_running_loop()
        executor = decodeExecutor()
        decoder, counters = self._videoDecoder, self.frames
        while True:
            while not self._decodeQueue:
                self._decodeWake.clear()
                await self._decodeWake.wait()
            frame = self._decodeQueue.popleft()
            if self._skipUntilKeyFrame and not frame.keyFrame:
                counters.framesDropped += 1
                continue
            self._skipUntilKeyFrame = False
            pts = self._core.pts(frame.timestamp)
            started = time.perf_counter()
            try:
                decoded = await loop.run_in_executor(executor, decoder.decode, frame.data, pts)
            except DecodeError as error:
                logger.debug("video decoding failed: %s", error)
                counters.decodeErrors += 1
                self._skipUntilKeyFrame = True
                self._apply(self._core.onDecodeError(time.monotonic()))
                continue
            elapsed = time.perf_counter() - started
            now = time.monotonic()
            for picture in decoded:
                counters.onDecoded(now, picture.width, picture.height, frame.keyFrame, elapsed)
                self.track.deliver(picture)

    def _decodeAudio(self, data: bytes, pts: int, afterLoss: bool) -> None:
        assert self._audioDecoder is not None and self.samples is not None
        expected = self._nextAudioPts
        if afterLoss and expected is not None and 0 < pts - expected <= MAX_CONCEALMENT:
            # Keep the sample stream continuous where packets were lost.
            position = expected
            while position < pts:
                count = min(_CONCEALMENT_FRAME, pts - position)
                self.track.deliver(silence(count, position))
                position += count
            self.samples.onConcealed(pts - expected, AUDIO_SAMPLE_RATE)
        try:
            decoded = self._audioDecoder.decode(data, pts)
        except DecodeError as error:
            logger.debug("audio decoding failed: %s", error)
            self.samples.decodeErrors += 1
            return
        for frame in decoded:
            self.samples.onDecoded(frame.samples, AUDIO_SAMPLE_RATE)
            self.track.deliver(frame)
            pts += frame.samples
        self._nextAudioPts = pts
