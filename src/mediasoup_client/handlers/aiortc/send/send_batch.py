"""Batched pacer runs while one frame is handed to many producers (asyncio layer).

Each producer's packets go into its transport's pacer as they are made; running the pacer
(and the send bookkeeping around it) once per producer is most of the per-producer cost when
hundreds of producers share one encoded frame. Inside ``batchedSends()`` a transport's
scheduler only notes that it has packets, and runs its pacer once when the batch ends (the
same event-loop turn: nothing waits longer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

_batches: list[dict[int, Callable[[], None]]] = []


@contextlib.contextmanager
def batchedSends() -> Iterator[None]:
    pending: dict[int, Callable[[], None]] = {}
    _batches.append(pending)
    try:
        yield
    finally:
        _batches.pop()
        for flush in pending.values():
            flush()


def deferred(key: int, flush: Callable[[], None]) -> bool:
    """Within a batch: remember ``flush`` (once per ``key``) and return True."""
    if not _batches:
        return False
    _batches[-1].setdefault(key, flush)
    return True
