"""Fire-and-forget work, the one way the package runs it: kept referenced until done, failures
logged with what it was, and awaitable (``drain``) for orderly shutdowns and tests."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable
from typing import Any

logger = logging.getLogger(__name__)


class BackgroundWork:
    """Runs awaitables as tasks on the running loop."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Awaitable[Any], what: str) -> asyncio.Task[Any] | None:
        """Run ``work`` in the background. Without a running loop there is nothing to run it
        on: it is dropped (and logged), never left on an implicit loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.warning("%s: %s dropped: no running event loop", self._owner, what)
            if inspect.iscoroutine(work):
                work.close()
            return None

        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s: %s failed", self._owner, what)

        task = loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def drain(self) -> None:
        """Wait for the work spawned so far, and what it spawns in turn."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
