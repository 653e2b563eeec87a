"""Audio: one source, one Opus encoder, one RTP stream.

Pure: source frames wait in a short bounded queue (the oldest is dropped when encoding falls
behind) and are encoded in batches, one job at a time: one or two frames on the event loop
(a 20 ms Opus frame takes ~0.15 ms, less than a hand-off to a worker thread costs a busy
process), a backlog in a worker thread. RTP timestamps count encoded samples; after a gap
(start, resume, new track) they jump by the time that passed and the first packet carries the
marker bit.

DTX (``opusDtx`` / ``usedtx`` or the encoding's ``dtx``): libopus as built here has no DTX
switch, so the sender does it: once the input is silent it sends one packet, then one comfort
packet every 400 ms of media time, and nothing else until sound returns.

With an ``EncoderHub`` and a source (``setSource``: the track), producers of one track with
the same Opus settings share one encoder (``audio_fanout.py``); a muted producer (silence of
its own) uses a private one.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from .audio_fanout import OpusKey, SharedOpusEncoder
from .bitrate import ProducerDemand
from .clock import MediaClock
from .config import SendConfig
from .encoders import OPUS_SAMPLE_RATE, EncodedAudio, OpusEncoder, OpusSettings
from .pipeline import EncodeJob, RunState, SendActions, Stats
from .rtp_stream import OutgoingRtp, RtpStream
from .stats import outboundStats

if TYPE_CHECKING:
    from .layer_encoder import EncoderHub

logger = logging.getLogger(__name__)

DTX_COMFORT_INTERVAL = 0.4  # seconds
# About one second of 20 ms source frames.
QUEUE_FRAMES = 50
INLINE_FRAMES = 2
# RTP header (12) + extensions (~16) + IP/UDP/SRTP (38).
AUDIO_PACKET_OVERHEAD = 66


@dataclass(slots=True)
class _EncodeBatch:
    encoder: OpusEncoder
    frames: list[av.AudioFrame]
    reset: bool

    def __call__(self) -> list[EncodedAudio]:
        if self.reset:
            self.encoder.reset()
        out: list[EncodedAudio] = []
        for frame in self.frames:
            out.extend(self.encoder.encode(frame))
        return out


def silentLike(frame: av.AudioFrame) -> av.AudioFrame:
    """A frame of silence with the format, layout, rate and length of ``frame``."""
    samples = frame.to_ndarray()
    silent = av.AudioFrame.from_ndarray(
        np.zeros_like(samples), format=frame.format.name, layout=frame.layout.name
    )
    silent.sample_rate = frame.sample_rate
    silent.pts = frame.pts
    silent.time_base = frame.time_base
    return silent


class AudioPipeline:
    def __init__(
        self, config: SendConfig, stream: RtpStream, *, hub: EncoderHub | None = None
    ) -> None:
        assert config.opus is not None
        self.stream = stream
        self.settings: OpusSettings = config.opus
        self.encoding = config.encodings[0]
        self.dtx = config.dtx
        self._private: OpusEncoder | None = None  # opened when first needed
        self._hub = hub
        self._source: object = None
        self._shared: SharedOpusEncoder | None = None
        self._shared_for: tuple[object, bool] | None = None  # (source, muted) it was placed for
        self._demand: tuple[bool, ProducerDemand] | None = None  # (sending, what it was then)
        # Packets of our stream that another producer's encode job brought (set by the driver).
        self.onPackets: Callable[[SendActions], None] | None = None
        self._clock = MediaClock(OPUS_SAMPLE_RATE, strict=False)
        self._queue: deque[av.AudioFrame] = deque(maxlen=QUEUE_FRAMES)
        self._busy = False
        self._run = RunState()
        self._gap = True  # the encoder must forget buffered input
        self._resync = True  # the next packet sent starts a new run of timestamps
        self._epoch = 0
        self._in_dtx = False
        self._last_comfort = 0
        self._encode_failures = 0
        # Stats.
        self.framesDropped = 0
        self.packetsSuppressed = 0  # not sent because of DTX

    @property
    def paused(self) -> bool:
        return self._run.paused

    @property
    def sending(self) -> bool:
        return self._run.flowing and self.encoding.active

    # MediaPipeline.

    def start(self, now: float) -> None:
        self._run.started = True

    def stop(self) -> None:
        self._run.started = False
        self._discard()

    def setSource(self, source: object, now: float) -> None:
        """The source frames come from (the track object; None: unknown, never shared)."""
        self._source = source

    def onFrame(self, frame: Any, now: float) -> SendActions:
        actions = SendActions()
        if not isinstance(frame, av.AudioFrame) or not self.sending:
            return actions
        shared = self._regroup()
        if shared is not None:
            job, ready = shared.offer(self, frame)
            if ready is not None:
                for packet in ready:
                    actions.packets.extend(self._packets(packet, now))
            if job is not None:
                actions.jobs.append(job)
            return actions
        if self._run.muted:
            frame = silentLike(frame)
        if len(self._queue) == self._queue.maxlen:
            self.framesDropped += 1
        self._queue.append(frame)
        job = self._nextJob()
        if job is not None:
            actions.jobs.append(job)
        return actions

    def onEncoded(
        self, job: EncodeJob, result: Any, error: BaseException | None, now: float
    ) -> SendActions:
        owner = job.owner
        if isinstance(owner, SharedOpusEncoder):
            return self._onSharedEncoded(owner, job, result, error, now)
        self._busy = False
        actions = SendActions()
        if error is not None:
            # Logged once per run of failures; the next batch starts the encoder afresh.
            if not self._encode_failures:
                logger.error("audio encoding failed", exc_info=error)
            self._encode_failures += 1
            self._gap = True
        elif job.epoch == self._epoch:
            self._encode_failures = 0
            for packet in result:
                actions.packets.extend(self._packets(packet, now))
        following = self._nextJob()
        if following is not None:
            actions.jobs.append(following)
        return actions

    def pause(self, now: float) -> None:
        self._run.paused = True
        self._discard()

    def resume(self, now: float) -> None:
        self._run.paused = False

    def mute(self, muted: bool, now: float) -> None:
        self._run.muted = muted

    def replaceTrack(self, present: bool, now: float) -> None:
        self._run.hasTrack = present
        self._discard()

    def setParameters(self, changes: list[dict[str, Any]], now: float) -> None:
        if not changes:
            return
        change = changes[0]
        was_sending = self.sending
        self.encoding.update(change)
        if "dtx" in change:
            self.dtx = self.encoding.dtx
        if was_sending and not self.sending:
            self._discard()

    def requestKeyFrame(self, ssrc: int | None, now: float) -> None:
        return None  # every Opus packet decodes on its own

    def demand(self, now: float) -> ProducerDemand:
        """Audio is served first and in full: its codec bitrate plus what each packet costs
        on the wire (RTP header, extensions, IP, UDP, SRTP)."""
        sending = self.sending
        cached = self._demand
        if cached is not None and cached[0] == sending:
            return cached[1]  # (asked on every transport feedback, for every producer)
        if not sending:
            demand = ProducerDemand(key=self)
        else:
            packets_per_second = 1000 / self.settings.frameDuration
            overhead = int(packets_per_second * AUDIO_PACKET_OVERHEAD * 8)
            demand = ProducerDemand(key=self, reserved=self.settings.bitrate + overhead)
        self._demand = (sending, demand)
        return demand

    def setBitrateBudget(
        self, budget: int | None, now: float, *, congested: bool = False,
        resumeBudget: int | None = None,
    ) -> None:  # fmt: skip
        return None  # the Opus bitrate is the codec options'

    def stats(self, now: float, timestamp: float, codecId: str) -> list[Stats]:
        entry = outboundStats(
            self.stream, kind="audio", codecId=codecId, timestamp=timestamp, active=self.sending
        )
        entry["targetBitrate"] = self.settings.bitrate
        entry["dtxPacketsSuppressed"] = self.packetsSuppressed
        entry["framesDropped"] = self.framesDropped
        # Encode once for many: how many producers this Opus encoder feeds.
        entry["encoderShared"] = len(self._shared.members) if self._shared is not None else 1
        return [entry]

    # Internals.

    @property
    def _encoder(self) -> OpusEncoder:
        if self._private is None:
            self._private = OpusEncoder(self.settings)
        return self._private

    def _regroup(self) -> SharedOpusEncoder | None:
        """The shared encoder to use now (None: the private one): shared unless muted."""
        hub, current = self._hub, self._shared
        muted = self._run.muted
        if current is not None and self._shared_for == (self._source, muted):
            return current  # (every frame: the key is made only when its inputs change)
        key = (
            OpusKey.of(self._source, self.settings)
            if hub is not None and self._source is not None and not muted
            else None
        )
        if current is not None and current.key == key:
            self._shared_for = (self._source, muted)
            return current
        self._leaveShared()
        if key is None or hub is None:
            return None
        self._shared = hub.opus.place(key, self.settings)
        self._shared.join(self)
        self._shared_for = (self._source, muted)
        self._resync = True  # another encoder's packets: a new run of timestamps
        self._gap = True
        return self._shared

    def _leaveShared(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.leave(self)
            if self._hub is not None:
                self._hub.opus.release(shared)
            self._resync = True
            self._gap = True

    def _onSharedEncoded(
        self, owner: SharedOpusEncoder, job: EncodeJob, result: Any,
        error: BaseException | None, now: float,
    ) -> SendActions:  # fmt: skip
        if error is not None:
            logger.error("audio encoding failed", exc_info=error)
        deliveries, following = owner.onEncoded(job, result, error)
        actions = SendActions()
        for member, packets in deliveries:
            if member is self:
                for packet in packets:
                    actions.packets.extend(self._packets(packet, now))
            else:
                member.deliverShared(packets, now)
        if following is not None:
            actions.jobs.append(following)
        return actions

    def deliverShared(self, packets: list[EncodedAudio], now: float) -> None:
        """Packets of the shared encoder that another producer's job brought."""
        out: list[OutgoingRtp] = []
        for packet in packets:
            out.extend(self._packets(packet, now))
        if out and self.onPackets is not None:
            self.onPackets(SendActions(packets=out))

    def _discard(self) -> None:
        # Whatever is queued or being encoded belongs to before the gap: never send it.
        self._leaveShared()
        self._epoch += 1
        self._queue.clear()
        self._gap = True
        self._resync = True

    def _nextJob(self) -> EncodeJob | None:
        if self._busy or not self._queue:
            return None
        frames = list(self._queue)
        self._queue.clear()
        gap, self._gap = self._gap, False
        self._busy = True
        return EncodeJob(
            owner=self,
            epoch=self._epoch,
            run=_EncodeBatch(self._encoder, frames, gap),
            inline=len(frames) <= INLINE_FRAMES,
            pool="audio",
        )

    def _packets(self, packet: EncodedAudio, now: float) -> list[OutgoingRtp]:
        talkSpurtStart = False
        if self._resync:
            # First packet after a gap (the encoder may have buffered the first frames).
            self._resync = False
            self._clock.skipWallTime(now, packet.samples)
            self._in_dtx = False
            talkSpurtStart = True
        timestamp = self._clock.advance(packet.samples, now)
        if self.dtx and packet.silent:
            comfort_due = timestamp - self._last_comfort >= DTX_COMFORT_INTERVAL * OPUS_SAMPLE_RATE
            if self._in_dtx and not comfort_due:
                self.packetsSuppressed += 1
                return []
            self._in_dtx = True
            self._last_comfort = timestamp
        elif self._in_dtx:
            # Sound is back after DTX: a new talk spurt.
            self._in_dtx = False
            talkSpurtStart = True
        return self.stream.framePackets(
            [packet.payload],
            timestamp=timestamp,
            captureTime=now,
            now=now,
            talkSpurtStart=talkSpurtStart,
            audioLevel=packet.level if self.stream.writesAudioLevel else None,
            voice=not packet.silent,
        )
