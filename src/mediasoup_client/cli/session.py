"""What both commands share: the engine, the local SFU, joining a room with errors turned into
one clear line, and the once-a-second loop that samples, shows and records the figures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

from ..errors import InvalidStateError, UnsupportedError
from ..handlers.handler_interface import HandlerFactory
from ..signaling.local_sfu import LocalSfu, SfuNotInstalledError
from ..signaling.protoo import ProtooError
from ..signaling.room_client import RoomClient
from .controls import KEYS_HELP, Controls
from .options import CliError, jsonDumps
from .stats import RunRecord

logger = logging.getLogger(__name__)

ENGINES = ("aiortc", "fake")


def engineFactory(name: str) -> HandlerFactory:
    """``aiortc``: real media (the library's default); ``fake``: signaling only, no media."""
    if name == "fake":
        from ..handlers.fake_handler import FakeHandler

        return FakeHandler.createFactory()
    try:
        from ..handlers.aiortc.handler import AiortcHandler
    except ImportError as error:
        raise CliError(
            f"the aiortc engine is not available ({error}); --engine fake runs without media"
        ) from None
    return AiortcHandler.createFactory()


async def startLocalSfu() -> LocalSfu:
    """Start ``sfu/server.js`` on 127.0.0.1 (in a thread: it blocks until it listens)."""
    sfu = LocalSfu()
    future = asyncio.get_running_loop().run_in_executor(None, sfu.start)
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        # Interrupted while it starts: it must not outlive us.
        with contextlib.suppress(Exception):
            await future
        sfu.stop()
        raise
    except SfuNotInstalledError as error:
        raise CliError(f"the local SFU is not installed: {error}") from None
    except Exception as error:
        raise CliError(
            f"the local SFU did not start: {_firstLine(error)} (log: {sfu.logPath})"
        ) from None
    return sfu


async def joinRoom(url: str, **options: Any) -> RoomClient:
    """``RoomClient.join`` with every expected failure as a ``CliError``."""
    host = urlsplit(url).netloc
    try:
        return await RoomClient.join(url, **options)
    except ConnectionError as error:
        raise CliError(_firstLine(error)) from None
    except ProtooError as error:
        raise CliError(f"the room at {host} refused to let us join: {error.reason}") from None
    except TimeoutError:
        raise CliError(f"the room server at {host} did not answer in time") from None
    except (TypeError, ValueError, KeyError, UnsupportedError, InvalidStateError) as error:
        raise CliError(f"cannot join the room at {host}: {_firstLine(error)}") from None


@dataclass
class Outcome:
    record: RunRecord
    # Why the run ended early (an error for the exit status), if it did.
    failure: str | None = None
    interrupted: bool = False


@dataclass
class RunLoop:
    """Samples every ``interval`` seconds until ``duration`` (0: until stopped)."""

    takeTick: Callable[[float], Awaitable[dict[str, Any]]]
    onKey: Callable[[str], Awaitable[None]]
    header: dict[str, Any]
    duration: float
    jsonOutput: bool
    out: TextIO = field(default_factory=lambda: sys.stdout)
    interval: float = 1.0

    def __post_init__(self) -> None:
        self._stop = asyncio.Event()
        self._failure: str | None = None
        self._interrupted = False
        self._tasks: set[asyncio.Task[None]] = set()

    def fail(self, reason: str) -> None:
        """End the run because something broke (the exit status says so)."""
        if self._failure is None:
            self._failure = reason
        self._stop.set()

    def finish(self) -> None:
        """End the run normally (the source ended...)."""
        self._stop.set()

    def emit(self, line: dict[str, Any]) -> None:
        """An event line in ``--json`` mode; a log line otherwise."""
        if self.jsonOutput:
            print(jsonDumps(line), file=self.out, flush=True)
        else:
            logger.info("%s", line)

    async def run(self) -> Outcome:
        record = RunRecord()
        controls = Controls(onKey=self._key, onStop=self._interrupt)
        controls.start()
        if controls.keyboard:
            self.header["keys"] = KEYS_HELP
        live = None
        try:
            if not self.jsonOutput:
                from rich.console import Console
                from rich.live import Live

                from .view import renderTick

                live = Live(console=Console(file=self.out), auto_refresh=False, transient=False)
                live.start()
            while not self._stop.is_set():
                tick = await self.takeTick(record.elapsed())
                record.add(tick)
                if live is not None:
                    live.update(renderTick(tick, self.header), refresh=True)
                else:
                    print(jsonDumps(tick), file=self.out, flush=True)
                if self.duration and record.elapsed() >= self.duration:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._untilNext(record))
        finally:
            controls.stop()
            if live is not None:
                live.stop()
                live.console.line()
            for task in self._tasks:
                task.cancel()
        return Outcome(record, self._failure, self._interrupted)

    def _untilNext(self, record: RunRecord) -> float:
        # Ticks on whole seconds of the run, whatever sampling took.
        elapsed = record.elapsed()
        wait = self.interval - (elapsed % self.interval)
        if self.duration:
            wait = min(wait, max(0.0, self.duration - elapsed))
        return max(0.05, wait)

    def _interrupt(self) -> None:
        self._interrupted = True
        self._stop.set()

    def _key(self, key: str) -> None:
        task = asyncio.ensure_future(self._runKey(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _runKey(self, key: str) -> None:
        try:
            await self.onKey(key)
        except Exception as error:
            logger.warning("key %r: %s", key, _firstLine(error))


def _firstLine(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
