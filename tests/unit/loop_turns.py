"""Letting other tasks run without waiting for time."""

from __future__ import annotations

import asyncio


async def nextTurn() -> None:
    """Return after one turn of the event loop: tasks made ready before this call have run
    until their next await (no timer, no wall-clock wait)."""
    future = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.set_result, None)
    await future
