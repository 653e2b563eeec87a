"""The asyncio layer of the send path: one ``SendScheduler`` per transport drives every
producer's pure core (``ProducerSender``) and the transport's own (``TransportSendCore``:
congestion controller, pacer, allocation, retransmission budget).

It owns what the cores must not: the clock and timers, the encoder executor, the track reader
tasks, and the port. Frames, encode results and RTCP go into the cores with the time; the
packets they return go into the pacer, which says what to send now and when to come back; the
packets are serialised as they leave (abs-send-time and the transport-wide sequence number are
written then). One timer per transport sends every stream's sender reports and lets the
controller probe. Clock, timers, executor and track readers are injected, so tests drive it
all synchronously with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from ....background import BackgroundWork
from ....types import RtpEncodingParameters, StatsReport
from ..rtp_port import RtpPort
from . import rtcp
from .cc.controller import CongestionController, CongestionOptions
from .cc.transport_feedback import extractTransportFeedback
from .layer_encoder import EncoderHub
from .pacer import Pacer
from .pipeline import EncodeJob, SendActions
from .producer_sender import ProducerSender
from .rtp_header import ntpTime
from .rtp_stream import OutgoingRtp
from .send_batch import deferred
from .track_fanout import SharedTrackReader
from .transport_core import PACING_FACTOR, TransportSendCore
from .workers import audioExecutor, videoExecutor

logger = logging.getLogger(__name__)

RTCP_TICK = 0.25  # seconds between sender-report checks

_SHARED_ENCODERS = EncoderHub()


def sharedEncoderHub() -> EncoderHub:
    """The process's shared video encoders: producers of one track with equal settings, on
    any transport, encode each frame once (``layer_encoder.py``)."""
    return _SHARED_ENCODERS


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""

    def wallTime(self) -> float:
        """Unix seconds (for NTP timestamps and stats)."""

    def callLater(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The real clock: ``time.monotonic``/``time.time`` and the running loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def wallTime(self) -> float:
        return time.time()

    def callLater(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


JobDone = Callable[[Any, BaseException | None], None]


class JobRunner(Protocol):
    def run(self, job: EncodeJob, done: JobDone) -> None:
        """Run ``job.run()`` and call ``done(result, error)`` on the event loop."""


def _runNow(job: EncodeJob, done: JobDone) -> None:
    try:
        result = job.run()
    except Exception as error:
        done(None, error)
    else:
        done(result, None)


class ExecutorJobRunner:
    """Inline jobs on the loop; others on the encoder thread pools (video, audio)."""

    def run(self, job: EncodeJob, done: JobDone) -> None:
        if job.inline:
            _runNow(job, done)
            return
        executor = audioExecutor() if job.pool == "audio" else videoExecutor()
        future = asyncio.get_running_loop().run_in_executor(executor, job.run)

        def finished(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                return
            error = f.exception()
            done(None if error else f.result(), error)

        future.add_done_callback(finished)


class InlineJobRunner:
    """Every job at once, on the caller's thread (deterministic tests)."""

    def run(self, job: EncodeJob, done: JobDone) -> None:
        _runNow(job, done)


class Reader(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


FrameCallback = Callable[[Any], None]
EndedCallback = Callable[[BaseException | None], None]
ReaderFactory = Callable[[Any, FrameCallback, EndedCallback], Reader]


class SendScheduler:
    """Drives the producers of one transport over its ``RtpPort``: one pacer and one
    congestion controller for all of them."""

    def __init__(
        self,
        port: RtpPort,
        *,
        clock: Clock | None = None,
        runner: JobRunner | None = None,
        readerFactory: ReaderFactory | None = None,
        congestion: CongestionOptions | None = None,
        pacingFactor: float = PACING_FACTOR,
    ) -> None:
        self.port = port
        self.clock: Clock = clock or LoopClock()
        self.runner: JobRunner = runner or ExecutorJobRunner()
        # One reading task per track, shared by every producer of it (``track_fanout.py``).
        self.readerFactory: ReaderFactory = readerFactory or SharedTrackReader
        self.background = BackgroundWork("send scheduler")
        self.core = TransportSendCore(congestion, pacingFactor=pacingFactor)
        self._producers: list[ScheduledProducer] = []
        self._timer: TimerHandle | None = None
        self._pace_timer: TimerHandle | None = None
        self._pace_due: float | None = None
        self._unsubscribe_feedback: Callable[[], None] | None = None

    @property
    def congestion(self) -> CongestionController:
        return self.core.congestion

    @property
    def pacer(self) -> Pacer[OutgoingRtp]:
        return self.core.pacer

    def add(
        self, sender: ProducerSender, track: Any, onTrackEnded: Callable[[], None]
    ) -> ScheduledProducer:
        producer = ScheduledProducer(self, sender, track, onTrackEnded)
        self._producers.append(producer)
        self.core.addSender(sender, self.clock.now())
        if self._timer is None:
            self._timer = self.clock.callLater(RTCP_TICK, self._tick)
        if self._unsubscribe_feedback is None:
            self._unsubscribe_feedback = self.port.listenRawRtcp(self._onRawRtcp)
        return producer

    def remove(self, producer: ScheduledProducer) -> None:
        if producer in self._producers:
            self._producers.remove(producer)
        self.core.removeSender(producer.sender, self.clock.now())
        if not self._producers:
            for timer in (self._timer, self._pace_timer):
                if timer is not None:
                    timer.cancel()
            self._timer = self._pace_timer = None
            self._pace_due = None
            if self._unsubscribe_feedback is not None:
                self._unsubscribe_feedback()
                self._unsubscribe_feedback = None

    def apply(self, producer: ScheduledProducer, actions: SendActions) -> None:
        """Queue the packets in the pacer, run the jobs; results come back through the
        producer."""
        if actions.packets:
            self.sendPackets(actions.packets)
        for job in actions.jobs:
            self.runner.run(job, producer.jobDone(job))

    def sendPackets(self, packets: list[OutgoingRtp]) -> None:
        if not self.port.connected:
            return
        self.core.enqueue(packets, self.clock.now())
        if not deferred(id(self), self._pump):  # (a frame fanned out: one run at the end)
            self._pump()

    def sendRtcp(self, packet: bytes) -> None:
        if self.port.connected:
            with contextlib.suppress(ConnectionError):
                self.port.send(packet)

    def onProducerRtcp(self, producer: ScheduledProducer, packet: Any) -> None:
        """RTCP about one producer's streams: the transport's share (round trip and loss from
        receiver reports) first, then the producer's own (NACK, PLI, FIR, its report stats)."""
        clock = self.clock
        now, wall = clock.now(), clock.wallTime()
        ntp = ntpTime(wall)
        if self.core.onReportBlocks(producer.sender, packet, ntp, now):
            self._pump()
        producer.applyActions(producer.sender.onRtcp(packet, now, wall, ntp))

    def transportStats(self) -> StatsReport:
        """The transport's send-side figures (merged into the transport's getStats)."""
        return self.core.stats(self.clock.now(), self.clock.wallTime())

    # Internals.

    def _onRawRtcp(self, data: bytes) -> None:
        """Every inbound RTCP datagram, before aiortc routes it by SSRC: transport feedback
        (which aiortc cannot parse) and REMB (also the router's limit, which names no SSRC)."""
        feedbacks = extractTransportFeedback(data)
        estimates = rtcp.rembBitrates(data)
        if not feedbacks and not estimates:
            return
        now = self.clock.now()
        for feedback in feedbacks:
            self.core.onTransportFeedback(feedback, now)
        for bitrate in estimates:
            self.core.onRemb(bitrate, now)
        pacer = self.core.pacer
        if pacer.queuedPackets or pacer.probing:
            # (A new rate or a probe to send. An empty pacer has nothing to release, and the
            # next frame's pump applies the congestion state before anything leaves.)
            self._pump()

    def _pump(self) -> None:
        port = self.port
        if not port.connected:
            self.core.pacer.drop(lambda packet: False)
            return
        now = self.clock.now()
        self.core.beforeSending(now)
        sends = self.core.pacer.process(now, self.core.padding)
        if sends:
            wall = self.clock.wallTime()
            ntp = ntpTime(wall)
            congestion = self.core.congestion
            sequences: list[int | None] = []
            datagrams: list[bytes] = []
            for send in sends:
                packet = send.packet
                sequence = (
                    congestion.allocateSequence()
                    if packet.extensions.writesTransportSequence
                    else None
                )
                sequences.append(sequence)
                datagrams.append(packet.serialize(ntp, sequence))
            try:
                port.sendMany(datagrams)  # one run's packets together (batched system calls)
            except ConnectionError:
                return
            onSent = self.core.onSent
            for send, sequence, data in zip(sends, sequences, datagrams, strict=True):
                onSent(send, sequence, data, wall, now)
        self.core.afterSending()
        self._schedulePacer(now)

    def _schedulePacer(self, now: float) -> None:
        due = self.core.pacer.nextSendTime(now)
        if due is None:
            return
        if self._pace_timer is not None and self._pace_due is not None and self._pace_due <= due:
            return
        if self._pace_timer is not None:
            self._pace_timer.cancel()
        self._pace_due = due
        self._pace_timer = self.clock.callLater(max(0.0, due - now), self._onPaceTimer)

    def _onPaceTimer(self) -> None:
        self._pace_timer = None
        self._pace_due = None
        self._pump()

    def _tick(self) -> None:
        self._timer = self.clock.callLater(RTCP_TICK, self._tick)
        if not self.port.connected:
            return
        now = self.clock.now()
        ntp = ntpTime(self.clock.wallTime())
        for producer in list(self._producers):
            for report in producer.sender.senderReports(now, ntp):
                self.sendRtcp(report)
        if self.core.process(now):
            self._pump()


class ScheduledProducer:
    """One producer on its transport's scheduler: the handler's handle for it."""

    def __init__(
        self,
        scheduler: SendScheduler,
        sender: ProducerSender,
        track: Any,
        onTrackEnded: Callable[[], None],
    ) -> None:
        self._scheduler = scheduler
        self.sender = sender
        self._track = track
        self._on_track_ended = onTrackEnded
        self._reader: Reader | None = None
        self._started = False
        self._closed = False
        self._unsubscribe: Callable[[], None] | None = None
        self._ended_tracks: set[int] = set()
        sender.setOutput(self._apply)
        sender.setSource(track, scheduler.clock.now())

    @property
    def track(self) -> Any:
        return self._track

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def paused(self) -> bool:
        return self.sender.paused

    @property
    def encodings(self) -> list[RtpEncodingParameters]:
        return self.sender.encodings

    @property
    def ssrcs(self) -> list[int]:
        return self.sender.ssrcs

    def start(self) -> None:
        """Begin once the port is connected (nothing is read before): at once if it is."""
        if self._closed or self._unsubscribe is not None:
            return
        port = self._scheduler.port
        self._unsubscribe = port.listenRtcp(self.ssrcs, self._onRtcp)
        if port.connected:
            self._begin()
        else:
            self._scheduler.background.spawn(self._waitAndBegin(), "starting a sender")

    async def stop(self) -> None:
        """Stop for good: no more RTP; RTCP BYE for the streams that sent. The track is the
        Producer's to stop."""
        if self._closed:
            return
        self._closed = True
        self._scheduler.remove(self)
        await self._stopReader()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        bye = self.sender.stop()
        if bye is not None:
            self._scheduler.sendRtcp(bye)

    def pause(self) -> None:
        self.sender.pause(self._now())

    def resume(self) -> None:
        self.sender.resume(self._now())

    async def replaceTrack(self, track: Any) -> None:
        """Send ``track`` from now on (None: send nothing)."""
        if self._closed:
            return
        await self._stopReader()
        self._track = track
        self.sender.setSource(track, self._now())
        self.sender.replaceTrack(track is not None, self._now())
        self._startReader()

    def setMaxSpatialLayer(self, spatialLayer: int) -> None:
        self.sender.setMaxSpatialLayer(spatialLayer, self._now())

    def setRtpEncodingParameters(self, params: dict[str, Any]) -> None:
        self.sender.setRtpEncodingParameters(params, self._now())

    def requestKeyFrame(self) -> None:
        self.sender.requestKeyFrame(self._now())

    def getStats(self) -> StatsReport:
        clock = self._scheduler.clock
        report = self.sender.getStats(clock.now(), clock.wallTime())
        report.update(self._scheduler.core.producerStats(clock.now(), clock.wallTime()))
        return report

    def applyActions(self, actions: SendActions) -> None:
        self._apply(actions)

    def jobDone(self, job: EncodeJob) -> Callable[[Any, BaseException | None], None]:
        def done(result: Any, error: BaseException | None) -> None:
            if self._closed and not job.shared:
                # (A shared encoder's result is every member's, and its next job is due.)
                return
            self._apply(self.sender.onEncoded(job, result, error, self._now()))

        return done

    # Internals.

    def _now(self) -> float:
        return self._scheduler.clock.now()

    def _apply(self, actions: SendActions) -> None:
        if actions:
            self._scheduler.apply(self, actions)

    async def _waitAndBegin(self) -> None:
        try:
            await self._scheduler.port.waitConnected()
        except ConnectionError:
            logger.debug("transport closed before the sender could start")
            return
        if not self._closed:
            self._begin()

    def _begin(self) -> None:
        if self._started:
            return
        self._started = True
        self.sender.start(self._now())
        self._startReader()

    def _startReader(self) -> None:
        track = self._track
        if not self._started or self._closed or track is None or self._reader is not None:
            return
        self._reader = self._scheduler.readerFactory(
            track,
            self._onFrame,
            lambda error: self._onEnded(track, error),
        )
        self._reader.start()

    async def _stopReader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()

    def _onFrame(self, frame: Any) -> None:
        if self._closed or not self._scheduler.port.connected:
            return  # dropped, never queued, while the transport is down
        self._apply(self.sender.onFrame(frame, self._now()))

    def _onRtcp(self, packet: Any) -> None:
        if self._closed:
            return
        self._scheduler.onProducerRtcp(self, packet)

    def _onEnded(self, track: Any, error: BaseException | None) -> None:
        if error is not None:
            logger.error(
                "reading the %s track failed; it counts as ended", self.sender.kind,
                exc_info=error,
            )  # fmt: skip
        if track is not self._track or id(track) in self._ended_tracks or self._closed:
            return
        self._ended_tracks.add(id(track))
        self._on_track_ended()
