"""Fire-and-forget engine work for the synchronous methods (``pause()``, ``resume()``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

logger = logging.getLogger(__name__)


class BackgroundWork:
    """Runs awaitables as tasks, keeps them referenced until done and logs failures."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Awaitable[None], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                logger.exception("%s: %s failed", self._owner, what)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the work spawned so far (tests and orderly shutdowns)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
