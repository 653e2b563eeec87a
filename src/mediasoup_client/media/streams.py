"""Pulling a received track as numpy arrays: ``VideoStream`` and ``AudioStream``.

Both read the track as fast as it delivers (so decoded frames never pile up in the track's own
queue) in a task of their own, and hand the application what it can take:

- ``VideoStream`` keeps only the newest decoded frame: a slow reader gets the newest picture,
  the ones it missed are counted in ``framesDropped``; the pixel conversion is done only for
  the frames it reads.
- ``AudioStream`` resamples and rechunks into items of exactly ``frameMs``; at most ``queueMs``
  of them wait, the oldest dropped first (counted in ``framesDropped``), so a reader that
  stalls loses a bounded, known amount and then hears the present.

Items carry the frame's RTP timestamp (the track's pts in its clock rate), its media time in
seconds, its capture time when the track can tell it (``track.captureTimeOf(rtp)``, as a
consumer's track does from the first RTCP sender report on: the sender's clock mapped onto
ours, as browsers estimate ``captureTime`` of remote frames; through mediasoup the sender of
the reports is the router, so it is when the router forwarded the frame), and when it was
received here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError

from ..errors import UnsupportedError
from .audio_convert import AudioConverter

logger = logging.getLogger(__name__)

VIDEO_FORMATS = ("rgb24", "bgr24", "yuv420p", "gray")


@dataclass(slots=True)
class VideoStreamFrame:
    """One decoded picture: ``data`` is (height, width, 3) for rgb24/bgr24, (height, width)
    for gray, (height * 3 / 2, width) planes for yuv420p."""

    data: np.ndarray[Any, Any]
    width: int
    height: int
    format: str
    rtpTimestamp: int | None
    timestamp: float | None  # seconds of media time (rtpTimestamp / clock rate)
    captureTime: float | None  # Unix seconds on our clock (module doc), once known
    receivedAt: float  # Unix seconds, when the stream took it from the track


@dataclass(slots=True)
class AudioStreamFrame:
    """``frameMs`` of audio: ``data`` is int16 of shape (samples, channels)."""

    data: np.ndarray[Any, Any]
    sampleRate: int
    channels: int
    rtpTimestamp: int | None  # of the first sample, in the track's clock rate (Opus: 48 kHz)
    timestamp: float | None
    captureTime: float | None
    receivedAt: float

    @property
    def samples(self) -> int:
        return int(self.data.shape[0])


Item = TypeVar("Item")


def _timestamps(track: Any, frame: Any) -> tuple[int | None, float | None, float | None]:
    pts = frame.pts
    if pts is None:
        return None, None, None
    seconds = float(pts * frame.time_base) if frame.time_base is not None else None
    capture_of = getattr(track, "captureTimeOf", None)
    capture = capture_of(int(pts)) if callable(capture_of) else None
    return int(pts), seconds, capture


class _TrackStream(Generic[Item]):
    """Reads ``track`` in a task of its own from the first use; iterating yields items until
    the track ends (``MediaStreamError``) and what was read is taken."""

    def __init__(self, track: Any) -> None:
        if not callable(getattr(track, "recv", None)):
            raise TypeError("track must have an async recv() (a MediaStreamTrack)")
        self.track = track
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._ended = False
        self.error: BaseException | None = None  # why reading stopped, other than the end
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._start()

    def __aiter__(self) -> AsyncIterator[Item]:
        return self

    async def __anext__(self) -> Item:
        self._start()
        while True:
            item = self._take()
            if item is not None:
                return item
            if self._ended:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()

    async def aclose(self) -> None:
        """Stop reading (the track itself is not stopped)."""
        self._ended = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ready.set()

    async def __aenter__(self) -> _TrackStream[Item]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _start(self) -> None:
        if self._task is None and not self._ended:
            self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                self._put(frame, time.time())
                self._ready.set()
        except MediaStreamError:
            pass
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.error = error
            logger.error("reading the track failed; the stream ends", exc_info=error)
        finally:
            self._ended = True
            self._ready.set()

    def _put(self, frame: Any, receivedAt: float) -> None:
        raise NotImplementedError

    def _take(self) -> Item | None:
        raise NotImplementedError


class VideoStream(_TrackStream[VideoStreamFrame]):
    """``async for frame in VideoStream(consumer.track, format="rgb24"): frame.data ...``"""

    def __init__(self, track: Any, format: str = "rgb24") -> None:
        if format not in VIDEO_FORMATS:
            raise UnsupportedError(
                f"unknown VideoStream format {format!r} (use one of {', '.join(VIDEO_FORMATS)})"
            )
        if getattr(track, "kind", "video") != "video":
            raise TypeError(f"VideoStream needs a video track, not {track.kind}")
        self.format = format
        self._newest: tuple[av.VideoFrame, float] | None = None
        self.framesReceived = 0
        self.framesDropped = 0
        super().__init__(track)

    def _put(self, frame: Any, receivedAt: float) -> None:
        if not isinstance(frame, av.VideoFrame):
            return
        self.framesReceived += 1
        if self._newest is not None:
            self.framesDropped += 1
        self._newest = (frame, receivedAt)

    def _take(self) -> VideoStreamFrame | None:
        if self._newest is None:
            return None
        frame, received = self._newest
        self._newest = None
        rtp, seconds, capture = _timestamps(self.track, frame)
        return VideoStreamFrame(
            data=frame.to_ndarray(format=self.format),
            width=frame.width,
            height=frame.height,
            format=self.format,
            rtpTimestamp=rtp,
            timestamp=seconds,
            captureTime=capture,
            receivedAt=received,
        )


class AudioStream(_TrackStream[AudioStreamFrame]):
    """``async for chunk in AudioStream(consumer.track, 16000, 1, 20): chunk.data ...`` (320
    samples each). ``queueMs`` bounds what waits for a slow reader."""

    def __init__(
        self,
        track: Any,
        sampleRate: int = 16000,
        channels: int = 1,
        frameMs: int = 20,
        *,
        queueMs: int = 1000,
    ) -> None:
        for name, value in (("sampleRate", sampleRate), ("frameMs", frameMs), ("queueMs", queueMs)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise TypeError(f"{name} must be a positive int (got {value!r})")
        if channels not in (1, 2):
            raise TypeError(f"channels must be 1 or 2 (got {channels!r})")
        if (sampleRate * frameMs) % 1000:
            raise TypeError(f"frameMs {frameMs} is not a whole number of samples at {sampleRate}")
        if getattr(track, "kind", "audio") != "audio":
            raise TypeError(f"AudioStream needs an audio track, not {track.kind}")
        self.sampleRate = sampleRate
        self.channels = channels
        self.frameMs = frameMs
        self._frame_samples = sampleRate * frameMs // 1000
        self._resampler = AudioConverter("s16", "stereo" if channels == 2 else "mono", sampleRate)
        self._pending: np.ndarray[Any, Any] = np.zeros((0, channels), dtype=np.int16)
        # RTP timestamp of the first pending sample, and RTP ticks per output sample.
        self._pending_rtp: float | None = None
        self._rtp_per_sample = 1.0
        self._items: deque[AudioStreamFrame] = deque(maxlen=max(1, queueMs // frameMs))
        self.framesReceived = 0
        self.framesDropped = 0
        super().__init__(track)

    def _put(self, frame: Any, receivedAt: float) -> None:
        if not isinstance(frame, av.AudioFrame):
            return
        self.framesReceived += 1
        rtp, _seconds, _capture = _timestamps(self.track, frame)
        clock_rate = frame.sample_rate or self.sampleRate
        self._rtp_per_sample = clock_rate / self.sampleRate
        converted = [c.to_ndarray() for c in self._resampler.convert(frame)]
        if not converted:
            return
        samples = np.concatenate(converted, axis=1).reshape(-1, self.channels)
        if rtp is not None:
            # Where these samples start, in RTP ticks; a jump (loss, a new stream) resyncs.
            start = rtp - len(self._pending) * self._rtp_per_sample
            if self._pending_rtp is None or abs(start - self._pending_rtp) > clock_rate * 0.1:
                self._pending_rtp = start
        self._pending = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        size = self._frame_samples
        while len(self._pending) >= size:
            chunk, self._pending = self._pending[:size], self._pending[size:]
            start_rtp = self._pending_rtp
            if len(self._items) == self._items.maxlen:
                self.framesDropped += 1
            self._items.append(self._item(chunk, start_rtp, clock_rate, receivedAt))
            if self._pending_rtp is not None:
                self._pending_rtp += size * self._rtp_per_sample

    def _item(
        self, chunk: np.ndarray[Any, Any], rtp: float | None, clockRate: int, receivedAt: float
    ) -> AudioStreamFrame:
        rtp_int = None if rtp is None else round(rtp)
        capture_of = getattr(self.track, "captureTimeOf", None)
        capture = capture_of(rtp_int) if callable(capture_of) and rtp_int is not None else None
        return AudioStreamFrame(
            data=chunk,
            sampleRate=self.sampleRate,
            channels=self.channels,
            rtpTimestamp=rtp_int,
            timestamp=None if rtp is None else rtp / clockRate,
            captureTime=capture,
            receivedAt=receivedAt,
        )

    def _take(self) -> AudioStreamFrame | None:
        return self._items.popleft() if self._items else None
