"""Runs a transport's state-changing commands one at a time, in call order.

Concurrent ``produce()``/``consume()``/... calls each get their own result; a command queued
before ``close()`` that has not started yet fails with ``InvalidStateError('closed')``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import InvalidStateError

T = TypeVar("T")


class CommandQueue:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def push(self, command: Callable[[], Awaitable[T]]) -> T:
        if self._closed:
            raise InvalidStateError("closed")
        async with self._lock:
            if self._closed:
                raise InvalidStateError("closed")
            return await command()

    def close(self) -> None:
        self._closed = True
