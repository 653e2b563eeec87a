"""Batched pacer runs while one frame is handed to many producers (asyncio layer).

Each producer's packets go into its transport's pacer as they are made; running the pacer
(and the send bookkeeping around it) once per producer is most of the per-producer cost when
hundreds of producers share one encoded frame. Inside ``batchedSends()`` a transport's
scheduler only notes that it has packets, and runs its pacer once when the batch ends (the
same event-loop turn: nothing waits longer). Not once for the whole frame, though: every
``FLUSH_EVERY`` producers the pacers run, so a frame's packets leave spread over the time
making them takes (measured: 300-400 Opus producers of one track, sent in one run, came
back to back at the router's socket and overflowed it, 0.3-2 % dropped by the kernel; its
default buffer holds about 200 small datagrams).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

FLUSH_EVERY = 32  # producers' packets deferred before the pacers run


class _Batch:
    def __init__(self) -> None:
        self.pending: dict[int, Callable[[], None]] = {}
        self.deferrals = 0

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        self.deferrals = 0
        for flush in pending.values():
            flush()


_batches: list[_Batch] = []


@contextlib.contextmanager
def batchedSends() -> Iterator[None]:
    batch = _Batch()
    _batches.append(batch)
    try:
        yield
    finally:
        _batches.pop()
        batch.flush()


def deferred(key: int, flush: Callable[[], None]) -> bool:
    """Within a batch: remember ``flush`` (once per ``key``) and return True; every
    ``FLUSH_EVERY`` calls the batch's flushes run at once."""
    if not _batches:
        return False
    batch = _batches[-1]
    batch.pending.setdefault(key, flush)
    batch.deferrals += 1
    if batch.deferrals >= FLUSH_EVERY:
        batch.flush()
    return True
