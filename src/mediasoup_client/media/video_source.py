"""``VideoSource``: a video track the application pushes frames into (numpy arrays or PyAV
frames), for ``produce(track=...)`` or any aiortc sender.

``captureFrame`` wraps the array in a PyAV frame at once (one copy; the caller may reuse its
array) and keeps only the newest frame not yet read: a sender that falls behind gets the newest
picture, never a queue. Pixel-format conversion happens where the encoder scales, in its worker
thread. Timestamps are the capture times (``time.monotonic()`` when not given), so the frame
spacing on the wire is the application's.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import InvalidStateError, UnsupportedError

VIDEO_CLOCK_RATE = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)

# Accepted names (lower case) -> PyAV pixel format.
PIXEL_FORMATS: dict[str, str] = {
    "rgb": "rgb24",
    "rgb24": "rgb24",
    "bgr": "bgr24",
    "bgr24": "bgr24",
    "rgba": "rgba",
    "bgra": "bgra",
    "i420": "yuv420p",
    "yuv420p": "yuv420p",
    "nv12": "nv12",
}


def _shapeFor(pixelFormat: str, width: int, height: int) -> tuple[int, ...]:
    if pixelFormat in ("rgb24", "bgr24"):
        return (height, width, 3)
    if pixelFormat in ("rgba", "bgra"):
        return (height, width, 4)
    return (height * 3 // 2, width)  # yuv420p (I420) and nv12: planes stacked


def _guessFormat(array: np.ndarray[Any, Any]) -> str:
    if array.ndim == 3 and array.shape[2] == 3:
        return "rgb24"
    if array.ndim == 3 and array.shape[2] == 4:
        return "rgba"
    if array.ndim == 2:
        return "yuv420p"
    raise TypeError(
        f"a video frame array must be (height, width, 3) RGB, (height, width, 4) RGBA or "
        f"(height * 3 / 2, width) I420/NV12; got shape {array.shape}"
    )


def pixelFormat(name: str) -> str:
    """The PyAV pixel format for ``name`` (RGB, BGR, RGBA, BGRA, I420, NV12, or PyAV's own
    names); ``UnsupportedError`` for others."""
    if not isinstance(name, str):
        raise TypeError(f"format must be a str, not {type(name).__name__}")
    found = PIXEL_FORMATS.get(name.lower())
    if found is None:
        raise UnsupportedError(
            f"unknown pixel format {name!r} (use one of RGB, BGR, RGBA, BGRA, I420, NV12)"
        )
    return found


def frameFromArray(array: Any, width: int, height: int, format: str | None = None) -> av.VideoFrame:
    """A PyAV frame (a copy) of a ``width`` x ``height`` numpy array. ``TypeError`` naming the
    problem for a wrong type, dtype or shape."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"a video frame must be a numpy array or av.VideoFrame, not {type(array)}")
    if array.dtype != np.uint8:
        raise TypeError(f"a video frame array must have dtype uint8, not {array.dtype}")
    pixel_format = pixelFormat(format) if format is not None else _guessFormat(array)
    expected = _shapeFor(pixel_format, width, height)
    if array.shape != expected:
        raise TypeError(
            f"a {width}x{height} {pixel_format} frame must have shape {expected}, got {array.shape}"
        )
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=pixel_format)


def blackFrame(width: int, height: int) -> av.VideoFrame:
    """What a disabled video track shows: black (limited-range luma 16, neutral chroma)."""
    planes = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    planes[:height] = 16
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def _copyOf(frame: av.VideoFrame) -> av.VideoFrame:
    """A private copy (senders set pts and picture type on the frames they get)."""
    try:
        return av.VideoFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name)
    except (ValueError, TypeError, AssertionError):
        # A format numpy round trips do not cover (yuv420p always does): converting makes a
        # new frame anyway.
        return frame.reformat(format="yuv420p")


class VideoSource(MediaStreamTrack):
    """A video track of ``width`` x ``height`` frames pushed with ``captureFrame``.

    ``enabled = False`` (what a Producer does while paused with ``disableTrackOnPause``) makes
    the track deliver black frames in place of the captured ones, as a browser's disabled
    track does. ``framesCaptured``, ``framesDelivered`` and ``framesDropped`` (replaced by a
    newer frame before anyone read them) count what happened."""

    kind = "video"

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int")
            if value < 2 or value % 2:
                raise TypeError(f"{name} must be even and at least 2 (got {value})")
        self.width = width
        self.height = height
        self.enabled = True
        self._pending: av.VideoFrame | None = None
        self._available = asyncio.Event()
        self._first_timestamp: float | None = None
        self._last_timestamp: float | None = None
        self._black: av.VideoFrame | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.framesCaptured = 0
        self.framesDelivered = 0
        self.framesDropped = 0

    def captureFrame(
        self, frame: Any, timestamp: float | None = None, *, format: str | None = None
    ) -> None:
        """Push one frame: a uint8 numpy array (``format`` RGB, BGR, RGBA, BGRA, I420 or NV12;
        without it (h, w, 3) is RGB, (h, w, 4) RGBA and (h * 3 / 2, w) I420) or an
        ``av.VideoFrame`` of the source's size. ``timestamp``: its capture time in seconds
        (any origin, never decreasing; default ``time.monotonic()``)."""
        if self.readyState != "live":
            raise InvalidStateError("the video source is stopped")
        if isinstance(frame, av.VideoFrame):
            if format is not None:
                raise TypeError("format is for numpy arrays; an av.VideoFrame has its own")
            if (frame.width, frame.height) != (self.width, self.height):
                raise TypeError(
                    f"frame is {frame.width}x{frame.height}, the source is "
                    f"{self.width}x{self.height}"
                )
            video = _copyOf(frame)
        else:
            video = frameFromArray(frame, self.width, self.height, format)
        when = time.monotonic() if timestamp is None else self._checkTimestamp(timestamp)
        if self._first_timestamp is None:
            self._first_timestamp = when
        self._last_timestamp = when
        if not self.enabled:
            video = self._blackFrame()
        video.pts = round((when - self._first_timestamp) * VIDEO_CLOCK_RATE)
        video.time_base = VIDEO_TIME_BASE
        self.framesCaptured += 1
        if self._pending is not None:
            self.framesDropped += 1
        self._pending = video
        self._wake()

    async def recv(self) -> av.VideoFrame:
        """The newest captured frame not read yet (waits for one)."""
        self._loop = asyncio.get_running_loop()
        while self._pending is None:
            if self.readyState != "live":
                raise MediaStreamError
            self._available.clear()
            await self._available.wait()
        if self.readyState != "live":
            raise MediaStreamError
        frame, self._pending = self._pending, None
        self.framesDelivered += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._pending = None
        self._wake()

    def _wake(self) -> None:
        # captureFrame may run in another thread (a camera or render loop): asyncio's Event
        # is the reader's loop's to set.
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._available.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._available.set)

    def _checkTimestamp(self, timestamp: Any) -> float:
        if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
            raise TypeError(f"timestamp must be a number of seconds, not {type(timestamp)}")
        if self._last_timestamp is not None and timestamp < self._last_timestamp:
            raise TypeError(
                f"timestamp {timestamp:.6f} s goes backwards (the previous frame's was "
                f"{self._last_timestamp:.6f} s)"
            )
        return float(timestamp)

    def _blackFrame(self) -> av.VideoFrame:
        # A fresh frame every time: senders set pts on the frames they get.
        if self._black is None:
            self._black = blackFrame(self.width, self.height)
        copy = av.VideoFrame(self.width, self.height, "yuv420p")
        for target, source in zip(copy.planes, self._black.planes, strict=True):
            target.update(source)  # type: ignore[arg-type]
        return copy
