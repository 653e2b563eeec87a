"""The run loop, keyboard/signal controls and the local room's published state."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from mediasoup_client.cli import local_room
from mediasoup_client.cli.controls import Controls
from mediasoup_client.cli.session import RunLoop


async def test_run_loop_json_ticks_until_duration() -> None:
    out = io.StringIO()
    ticks: list[float] = []

    async def takeTick(elapsed: float) -> dict[str, Any]:
        ticks.append(elapsed)
        return {"type": "stats", "time": elapsed, "producers": []}

    async def onKey(key: str) -> None:
        pass

    loop = RunLoop(takeTick, onKey, {}, duration=0.35, jsonOutput=True, out=out, interval=0.1)
    outcome = await loop.run()
    assert 3 <= len(ticks) <= 6
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(line["type"] == "stats" for line in lines)
    assert outcome.failure is None and not outcome.interrupted


async def test_run_loop_failure_ends_the_run() -> None:
    async def takeTick(elapsed: float) -> dict[str, Any]:
        loop.fail("the connection to the room was lost")
        return {"type": "stats", "time": elapsed, "producers": []}

    async def onKey(key: str) -> None:
        pass

    loop = RunLoop(takeTick, onKey, {}, duration=0, jsonOutput=True, out=io.StringIO())
    outcome = await asyncio.wait_for(loop.run(), 5)
    assert outcome.failure == "the connection to the room was lost"


async def test_controls_keys_and_signals() -> None:
    keys: list[str] = []
    stops: list[bool] = []
    both = asyncio.Event()

    def onKey(key: str) -> None:
        keys.append(key)
        if len(keys) == 2:
            both.set()

    controls = Controls(onKey, lambda: stops.append(True))
    controls.start()
    try:
        os.kill(os.getpid(), __import__("signal").SIGUSR1)
        os.kill(os.getpid(), __import__("signal").SIGUSR2)
        await asyncio.wait_for(both.wait(), 2)
        assert keys == ["p", "+"]
        assert not controls.keyboard or sys.stdin.isatty()
    finally:
        controls.stop()


def test_local_room_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert local_room.find() is None
    local_room.publish(4321)
    assert local_room.find() == 4321
    local_room.unpublish()
    assert local_room.find() is None
