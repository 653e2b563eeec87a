"""One reader per track, whatever the number of producers sending it (asyncio layer).

A track's ``recv()`` hands each frame to one caller: two producers each reading the same
track would split its frames between them. So every producer of a track subscribes to one
reading task, which hands every frame (the same object) to each subscriber in turn, on any
transport; that shared frame object is also how shared encoders (``layer_encoder.py``)
recognise a frame they already encoded. The task starts with the first subscriber and stops
with the last; the track's end reaches every subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiortc.mediastreams import MediaStreamError

from .send_batch import batchedSends

FrameCallback = Callable[[Any], None]
EndedCallback = Callable[[BaseException | None], None]


class _TrackFanout:
    def __init__(self, track: Any, onIdle: Callable[[_TrackFanout], None]) -> None:
        self.track = track
        self.subscribers: list[SharedTrackReader] = []
        self._on_idle = onIdle
        self._task: asyncio.Task[None] | None = None

    def add(self, subscriber: SharedTrackReader) -> None:
        if subscriber not in self.subscribers:
            self.subscribers.append(subscriber)
        if self._task is None:
            self._task = asyncio.ensure_future(self._read())

    async def remove(self, subscriber: SharedTrackReader) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)
        if self.subscribers:
            return
        self._on_idle(self)
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read(self) -> None:
        ended: BaseException | None
        while True:
            try:
                frame = await self.track.recv()
            except MediaStreamError:
                ended = None
                break
            except Exception as error:
                # A broken source is as good as ended: say so rather than die silently.
                ended = error
                break
            with batchedSends():  # each transport's pacer runs once per frame
                for subscriber in list(self.subscribers):
                    subscriber.onFrame(frame)
        self._on_idle(self)
        self._task = None
        for subscriber in list(self.subscribers):
            subscriber.onEnded(ended)


_fanouts: dict[int, _TrackFanout] = {}


def _forget(fanout: _TrackFanout) -> None:
    if _fanouts.get(id(fanout.track)) is fanout:
        del _fanouts[id(fanout.track)]


class SharedTrackReader:
    """A ``Reader`` (``scheduler.py``) of one track shared with every other producer of it:
    ``onFrame`` gets every frame, ``onEnded`` the end (or the failure of ``recv()``) once."""

    def __init__(self, track: Any, onFrame: FrameCallback, onEnded: EndedCallback) -> None:
        self.track = track
        self.onFrame = onFrame
        self.onEnded = onEnded
        self._fanout: _TrackFanout | None = None

    def start(self) -> None:
        if self._fanout is not None:
            return
        fanout = _fanouts.get(id(self.track))
        if fanout is None or fanout.track is not self.track:
            fanout = _fanouts[id(self.track)] = _TrackFanout(self.track, _forget)
        self._fanout = fanout
        fanout.add(self)

    async def stop(self) -> None:
        fanout, self._fanout = self._fanout, None
        if fanout is not None:
            await fanout.remove(self)


def readerCount(track: Any) -> int:
    """How many producers read ``track`` through its one reading task (tests, stats)."""
    fanout = _fanouts.get(id(track))
    return len(fanout.subscribers) if fanout is not None and fanout.track is track else 0
