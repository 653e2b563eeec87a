"""``AudioSource``: an audio track the application pushes samples into, like a microphone it
feeds (text-to-speech, a mixer, a file it decodes itself).

``await captureFrame(samples)`` takes int16 or float32 samples of any length at the source's
rate; they wait in a queue of at most ``queueMs`` (the call waits while the queue is full:
back-pressure, not loss) and leave it in real time, ``frameMs`` per ``recv()``, as a sound card
would take them. When the queue runs dry the track delivers silence, so the stream's timestamps
keep following the clock and a later sentence plays at once; ``clearQueue()`` drops what is
queued (barge-in). The encoder resamples to what it needs (Opus: 48 kHz).

The queue (``SampleQueue``) is pure; the track around it owns the clock.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import InvalidStateError

# A reader this far behind the clock (seconds: a stalled loop, a late start) starts again
# from now rather than catching up in a burst.
MAX_LAG = 0.2


def samplesToInt16(samples: Any, channels: int) -> np.ndarray[Any, Any]:
    """``samples`` as int16 of shape (n, channels). Accepted: int16 or float32 (-1..1) arrays of
    shape (n,) (mono only) or (n, channels). ``TypeError`` naming the problem otherwise."""
    if not isinstance(samples, np.ndarray):
        raise TypeError(f"samples must be a numpy array, not {type(samples).__name__}")
    if samples.dtype not in (np.int16, np.float32):
        raise TypeError(f"samples must be int16 or float32, not {samples.dtype}")
    if samples.ndim == 1 and channels == 1:
        samples = samples.reshape(-1, 1)
    if samples.ndim != 2 or samples.shape[1] != channels:
        expected = "(n,) or (n, 1)" if channels == 1 else f"(n, {channels})"
        raise TypeError(
            f"samples for {channels} channel(s) must have shape {expected}, got {samples.shape}"
        )
    if samples.dtype == np.float32:
        converted: np.ndarray[Any, Any] = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
        return converted
    same: np.ndarray[Any, Any] = samples
    return same


class SampleQueue:
    """At most ``capacity`` samples (per channel) waiting, in arrival order."""

    def __init__(self, capacity: int, channels: int) -> None:
        self.capacity = capacity
        self.channels = channels
        self._chunks: deque[np.ndarray[Any, Any]] = deque()
        self._queued = 0

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def free(self) -> int:
        return self.capacity - self._queued

    def push(self, samples: np.ndarray[Any, Any]) -> int:
        """Queue as many of ``samples`` (n, channels) as fit; how many that was."""
        count = min(len(samples), self.free)
        if count > 0:
            self._chunks.append(samples[:count].copy())
            self._queued += count
        return count

    def pop(self, count: int) -> tuple[np.ndarray[Any, Any], int]:
        """The next ``count`` samples, silence where the queue ran dry; and how many were
        real samples."""
        out = np.zeros((count, self.channels), dtype=np.int16)
        filled = 0
        while filled < count and self._chunks:
            chunk = self._chunks[0]
            take = min(count - filled, len(chunk))
            out[filled : filled + take] = chunk[:take]
            filled += take
            if take == len(chunk):
                self._chunks.popleft()
            else:
                self._chunks[0] = chunk[take:]
        self._queued -= filled
        return out, filled

    def clear(self) -> int:
        dropped = self._queued
        self._chunks.clear()
        self._queued = 0
        return dropped


class AudioSource(MediaStreamTrack):
    """An audio track of ``channels`` (1 or 2) at ``sampleRate`` Hz fed by ``captureFrame``.

    ``enabled = False`` (a Producer paused with ``disableTrackOnPause``) delivers silence; the
    queue keeps draining in real time meanwhile, as a muted microphone's sound is lost.
    Counters: ``samplesCaptured``, ``samplesDelivered`` (real samples sent on),
    ``silenceSamples`` (delivered because the queue was empty), ``samplesCleared``."""

    kind = "audio"

    def __init__(
        self, sampleRate: int = 48000, channels: int = 1, queueMs: int = 1000, *, frameMs: int = 20
    ) -> None:
        super().__init__()
        for name, value in (("sampleRate", sampleRate), ("queueMs", queueMs), ("frameMs", frameMs)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise TypeError(f"{name} must be a positive int (got {value!r})")
        if not 8000 <= sampleRate <= 192000:
            raise TypeError(f"sampleRate must be 8000..192000 Hz (got {sampleRate})")
        if channels not in (1, 2):
            raise TypeError(f"channels must be 1 or 2 (got {channels!r})")
        if (sampleRate * frameMs) % 1000:
            raise TypeError(f"frameMs {frameMs} is not a whole number of samples at {sampleRate}")
        if queueMs < frameMs:
            raise TypeError(f"queueMs ({queueMs}) must be at least frameMs ({frameMs})")
        self.sampleRate = sampleRate
        self.channels = channels
        self.queueMs = queueMs
        self.frameMs = frameMs
        self.enabled = True
        self._frame_samples = sampleRate * frameMs // 1000
        self._queue = SampleQueue(sampleRate * queueMs // 1000, channels)
        self._layout = "stereo" if channels == 2 else "mono"
        self._time_base = fractions.Fraction(1, sampleRate)
        self._space = asyncio.Event()  # set when samples left the queue
        self._drained = asyncio.Event()  # set when the queue is empty
        self._drained.set()
        self._start: float | None = None
        self._frames_out = 0
        self._pts = 0
        # The clock; tests put a fake one here.
        self._now: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
        self.samplesCaptured = 0
        self.samplesDelivered = 0
        self.silenceSamples = 0
        self.samplesCleared = 0

    @property
    def queuedSamples(self) -> int:
        return self._queue.queued

    @property
    def queuedDuration(self) -> float:
        """Seconds of audio waiting to be played out."""
        return self._queue.queued / self.sampleRate

    async def captureFrame(self, samples: Any) -> None:
        """Queue ``samples`` (int16 or float32 in -1..1; shape (n,) or (n, 1) for mono,
        (n, 2) for stereo; any n). Returns once all of them are queued: while the queue is
        full it waits for the clock to take some."""
        if self.readyState != "live":
            raise InvalidStateError("the audio source is stopped")
        rest = samplesToInt16(samples, self.channels)
        self.samplesCaptured += len(rest)
        while len(rest):
            accepted = self._queue.push(rest)
            if accepted:
                self._drained.clear()
                rest = rest[accepted:]
                continue
            self._space.clear()
            await self._space.wait()
            if self.readyState != "live":
                raise InvalidStateError("the audio source was stopped while samples waited")

    def clearQueue(self) -> None:
        """Drop every queued sample (the listener barged in): silence from the next frame."""
        self.samplesCleared += self._queue.clear()
        self._space.set()
        self._drained.set()

    async def waitForPlayout(self) -> None:
        """Return once every queued sample has been delivered (or cleared)."""
        await self._drained.wait()

    async def recv(self) -> av.AudioFrame:
        """The next ``frameMs`` of audio, when the clock says it is due."""
        if self.readyState != "live":
            raise MediaStreamError
        now = self._now()
        frame_time = self.frameMs / 1000
        if self._start is None or now - self._due() > MAX_LAG:
            self._start = now - self._frames_out * frame_time
        delay = self._due() - now
        if delay > 0:
            await self._sleep(delay)
        if self.readyState != "live":
            raise MediaStreamError
        samples, real = self._queue.pop(self._frame_samples)
        self._frames_out += 1
        self.samplesDelivered += real
        self.silenceSamples += self._frame_samples - real
        if real:
            self._space.set()
        if self._queue.queued == 0:
            self._drained.set()
        if not self.enabled and real:
            samples[:] = 0
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1), format="s16", layout=self._layout
        )
        frame.sample_rate = self.sampleRate
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += self._frame_samples
        return frame

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        self._space.set()
        self._drained.set()

    def _due(self) -> float:
        assert self._start is not None
        return self._start + self._frames_out * self.frameMs / 1000
