"""Interactive control of a run: single keys when stdin is a terminal, signals otherwise.

Keys: ``p`` pause/resume, ``0``-``9`` max spatial layer, ``q`` quit.
Signals: SIGUSR1 = ``p``, SIGUSR2 = next max spatial layer (cycling), SIGINT/SIGTERM = quit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

KEYS_HELP = "keys: p pause/resume, 0-9 max spatial layer, q quit"

# The pseudo key SIGUSR2 sends.
NEXT_LAYER = "+"


class Controls:
    """``onKey(key)`` for every key or signal; ``onStop()`` for Ctrl-C, SIGTERM and ``q``."""

    def __init__(self, onKey: Callable[[str], None], onStop: Callable[[], None]) -> None:
        self._onKey = onKey
        self._onStop = onStop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._savedTerminal: Any = None
        self._signals: list[int] = []

    @property
    def keyboard(self) -> bool:
        return self._fd is not None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for signum, handler in (
            (signal.SIGINT, self._onStop),
            (signal.SIGTERM, self._onStop),
            (signal.SIGUSR1, lambda: self._onKey("p")),
            (signal.SIGUSR2, lambda: self._onKey(NEXT_LAYER)),
        ):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(signum, handler)
                self._signals.append(signum)
        self._startKeyboard()

    def stop(self) -> None:
        if self._loop is not None:
            for signum in self._signals:
                with contextlib.suppress(Exception):
                    self._loop.remove_signal_handler(signum)
            self._signals.clear()
        if self._fd is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._fd)
            if self._savedTerminal is not None:
                import termios

                with contextlib.suppress(Exception):
                    termios.tcsetattr(self._fd, termios.TCSADRAIN, self._savedTerminal)
            self._fd = None

    def _startKeyboard(self) -> None:
        try:
            import termios
            import tty
        except ImportError:  # not a POSIX terminal
            return
        try:
            fd = sys.stdin.fileno()
            # Only in the foreground: a background job touching the terminal gets SIGTTOU.
            if not os.isatty(fd) or os.tcgetpgrp(fd) != os.getpgrp():
                return
            self._savedTerminal = termios.tcgetattr(fd)
            # cbreak, not raw: keys arrive one by one and Ctrl-C still sends SIGINT.
            tty.setcbreak(fd)
            assert self._loop is not None
            self._loop.add_reader(fd, self._readKey)
            self._fd = fd
        except (OSError, ValueError, termios.error):
            self._savedTerminal = None

    def _readKey(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 32).decode(errors="ignore")
        except OSError:
            return
        for key in data:
            if key in ("q", "Q"):
                self._onStop()
            else:
                self._onKey(key)
