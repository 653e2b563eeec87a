"""A clock the tests move by hand: monotonic and wall time, and timers that fire as it moves."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class _Timer:
    due: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """``now()`` starts at ``start`` and only moves with ``advance``; ``wallTime()`` moves
    along with it. Timers fire, in order, when ``advance`` passes their time."""

    def __init__(self, start: float = 1000.0, wallStart: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall_offset = wallStart - start
        self._timers: list[_Timer] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wallTime(self) -> float:
        return self._now + self._wall_offset

    def callLater(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self._now + max(0.0, delay), next(self._order), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer that falls due on the way."""
        target = self._now + seconds
        while self._timers and self._timers[0].due <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.due)
            timer.callback()
        self._now = target
