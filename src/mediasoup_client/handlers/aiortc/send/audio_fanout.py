"""Encode once for many, audio: one Opus encoder for every producer of one track with the
same Opus settings, on any transport.

Pure. Every Opus packet decodes on its own, so a member may start or stop anywhere: each
source frame (the same object handed to every producer by the one reader of the track) is
resampled and encoded once, and each member gets the packets it made, for its own RTP
stream (timestamps, DTX and talk spurts stay per member). The first member to see a frame
encodes it (on the event loop, as ``AudioPipeline`` does: a 20 ms frame takes ~0.15 ms); the
others find the packets ready. A backlog goes to a worker thread, fanned out when done.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import av

from .encoders import EncodedAudio, OpusEncoder, OpusSettings
from .pipeline import EncodeJob

if TYPE_CHECKING:
    from .audio_pipeline import AudioPipeline

QUEUE_FRAMES = 50  # about one second of 20 ms source frames
INLINE_FRAMES = 2
RECENT_FRAMES = 8  # results kept for members that see a frame after it was encoded


@dataclass(frozen=True, slots=True)
class OpusKey:
    """What producers must have in common to share an Opus encoder."""

    source: object
    channels: int
    frameDuration: int
    bitrate: int
    fec: bool
    cutoff: int | None

    @classmethod
    def of(cls, source: object, settings: OpusSettings) -> OpusKey:
        s = settings
        return cls(source, s.channels, s.frameDuration, s.bitrate, s.fec, s.cutoff)


@dataclass(slots=True)
class _Frame:
    frame: av.AudioFrame
    # Who saw this frame, in order (a dict: membership is checked once per member and frame,
    # and a list made that quadratic in the members: 500 producers of one track).
    members: dict[AudioPipeline, None] = field(default_factory=dict)


@dataclass(slots=True)
class _SharedBatch:
    encoder: OpusEncoder
    frames: list[av.AudioFrame]

    def __call__(self) -> list[list[EncodedAudio]]:
        return [self.encoder.encode(frame) for frame in self.frames]


Delivery = tuple["AudioPipeline", list[EncodedAudio]]


class SharedOpusEncoder:
    def __init__(self, key: OpusKey, settings: OpusSettings) -> None:
        self.key = key
        self.encoder = OpusEncoder(settings)
        self.members: list[AudioPipeline] = []
        self._queue: deque[_Frame] = deque()
        self._inflight: list[_Frame] | None = None
        # Frames encoded lately, their packets and who got them.
        self._recent: deque[tuple[_Frame, list[EncodedAudio]]] = deque(maxlen=RECENT_FRAMES)
        self._epoch = 0
        self.framesEncoded = 0  # source frames encoded (once for every member)

    def join(self, member: AudioPipeline) -> None:
        if member not in self.members:
            self.members.append(member)

    def leave(self, member: AudioPipeline) -> None:
        if member in self.members:
            self.members.remove(member)
        for waiting in (*self._queue, *(self._inflight or ())):
            waiting.members.pop(member, None)
        if not self.members:
            self._epoch += 1
            self._queue.clear()
            self._recent.clear()

    def offer(
        self, member: AudioPipeline, frame: av.AudioFrame
    ) -> tuple[EncodeJob | None, list[EncodedAudio] | None]:
        """A source frame seen by ``member``: a job to run (or None), and the packets at once
        when the frame was encoded already (None: they come with a job's result)."""
        # (The same member offering the same object again: a new frame that reuses it.)
        for done, packets in reversed(self._recent):
            if done.frame is frame and member not in done.members:
                done.members[member] = None
                return None, packets
        for waiting in (*self._queue, *(self._inflight or ())):
            if waiting.frame is frame and member not in waiting.members:
                waiting.members[member] = None
                return None, None
        if len(self._queue) >= QUEUE_FRAMES:
            dropped = self._queue.popleft()
            for waiting_member in dropped.members:
                waiting_member.framesDropped += 1
        self._queue.append(_Frame(frame, {member: None}))
        return self._nextJob(), None

    def onEncoded(
        self, job: EncodeJob, result: object, error: BaseException | None
    ) -> tuple[list[Delivery], EncodeJob | None]:
        frames, self._inflight = self._inflight or [], None
        deliveries: list[Delivery] = []
        if error is None and job.epoch == self._epoch and isinstance(result, list):
            for item, packets in zip(frames, result, strict=True):
                self.framesEncoded += 1
                self._recent.append((item, packets))
                for member in item.members:
                    deliveries.append((member, packets))
        return deliveries, self._nextJob()

    def _nextJob(self) -> EncodeJob | None:
        if self._inflight is not None or not self._queue or not self.members:
            return None
        frames = self._inflight = list(self._queue)
        self._queue.clear()
        return EncodeJob(
            owner=self,
            epoch=self._epoch,
            run=_SharedBatch(self.encoder, [item.frame for item in frames]),
            inline=len(frames) <= INLINE_FRAMES,
            pool="audio",
            shared=True,
        )


class OpusHub:
    """The shared Opus encoders of a process, by key (one event loop uses it)."""

    def __init__(self) -> None:
        self._encoders: dict[OpusKey, SharedOpusEncoder] = {}

    @property
    def encoderCount(self) -> int:
        return len(self._encoders)

    def place(self, key: OpusKey, settings: OpusSettings) -> SharedOpusEncoder:
        encoder = self._encoders.get(key)
        if encoder is None:
            encoder = self._encoders[key] = SharedOpusEncoder(key, settings)
        return encoder

    def release(self, encoder: SharedOpusEncoder) -> None:
        if not encoder.members and self._encoders.get(encoder.key) is encoder:
            del self._encoders[encoder.key]
