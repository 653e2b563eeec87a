"""The track a consumer hands out: decoded frames (``av.VideoFrame`` / ``av.AudioFrame`` with
pts in the RTP clock's time base), read with ``await track.recv()``."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

# Frames kept for a reader that falls behind (about ten seconds); the oldest go first.
MAX_QUEUED_VIDEO = 300
MAX_QUEUED_AUDIO = 500


class ReceiveTrack(MediaStreamTrack):
    def __init__(
        self, kind: str, id: str, captureTimeOf: Callable[[int], float | None] | None = None
    ) -> None:
        super().__init__()
        self.kind = kind
        self._id = id
        self._capture_time_of = captureTimeOf
        self._frames: collections.deque[Any] = collections.deque()
        self._limit = MAX_QUEUED_VIDEO if kind == "video" else MAX_QUEUED_AUDIO
        self._available = asyncio.Event()
        self._finished = False
        self.framesDiscarded = 0  # decoded but pushed out of the queue by newer ones

    async def recv(self) -> Any:
        while not self._frames:
            if self._finished or self.readyState != "live":
                raise MediaStreamError
            self._available.clear()
            await self._available.wait()
        return self._frames.popleft()

    def captureTimeOf(self, pts: int) -> float | None:
        """When the frame with this pts was captured, as the sender's RTCP reports tell it
        (Unix seconds on our clock; with mediasoup: when the router forwarded it); None
        until the first report."""
        return self._capture_time_of(pts) if self._capture_time_of is not None else None

    def deliver(self, frame: Any) -> None:
        if self._finished:
            return
        self._frames.append(frame)
        if len(self._frames) > self._limit:
            self._frames.popleft()
            self.framesDiscarded += 1
        self._available.set()

    def finish(self) -> None:
        """No more frames: readers get what is queued, then MediaStreamError; 'ended'."""
        if self._finished:
            return
        self._finished = True
        self._available.set()
        super().stop()

    def stop(self) -> None:
        """The reader is done: queued frames are dropped, nothing more is queued."""
        self._finished = True
        self._frames.clear()
        self._available.set()
        super().stop()
