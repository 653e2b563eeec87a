"""Event emitters for the user-facing objects, as mediasoup-client's EnhancedEventEmitter.

Built by composition over pyee (its listener registry: ``on``, ``once``, decorators,
removal), with our own emission:
- A listener that raises, or whose coroutine fails, is logged and never disturbs the emitter,
  the caller of ``emit`` or the other listeners; ``error`` is an ordinary event (DataProducer
  emits real errors with it), not pyee's "raise when unhandled".
- Listeners may be plain or ``async``: the tasks of async listeners are held until they finish
  (pyee's asyncio emitter only keeps weak references) and ``waitForListeners()`` awaits them.
- ``emitAndWait`` runs the listeners of a signaling event (``connect``, ``produce``,
  ``producedata``) with keyword arguments, awaits them and hands back the answer, so the app's
  async handler can return the server's reply or raise the server's error.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pyee.base import EventEmitter

from .background import BackgroundWork

logger = logging.getLogger(__name__)

Listener = TypeVar("Listener", bound=Callable[..., Any])


class _Registry(EventEmitter):
    """pyee's registry with our emission step: run each listener safely."""

    def __init__(self, owner: EnhancedEventEmitter) -> None:
        super().__init__()
        self._owner = owner

    def _emit_run(
        self, f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        try:
            result = f(*args, **kwargs)
        except Exception:
            logger.exception("event listener %r raised", f)
            return
        if inspect.isawaitable(result):
            self._owner._listenerTasks.spawn(result, f"event listener {f!r}")

    def _emit_handle_potential_error(self, event: str, error: Any) -> None:
        # An "error" event nobody listens to is not a crash of the emitter.
        return None


class EnhancedEventEmitter:
    def __init__(self) -> None:
        self._listenerTasks = BackgroundWork(type(self).__name__)
        self._registry = _Registry(self)

    # Listening (pyee's semantics, decorator form included: ``@emitter.on("event")``).

    def on(self, event: str, f: Listener | None = None) -> Any:
        if f is None:
            return self._registry.on(event)
        return self._registry.on(event, f)

    def once(self, event: str, f: Listener | None = None) -> Any:
        if f is None:
            return self._registry.once(event)
        return self._registry.once(event, f)

    add_listener = on

    def remove_listener(self, event: str, f: Callable[..., Any]) -> None:
        """Remove ``f``; nothing happens when it is not listening."""
        if f in self._registry.listeners(event):
            self._registry.remove_listener(event, f)

    off = remove_listener

    def remove_all_listeners(self, event: str | None = None) -> None:
        self._registry.remove_all_listeners(event)

    def listeners(self, event: str) -> list[Callable[..., Any]]:
        return self._registry.listeners(event)

    def listenerCount(self, event: str) -> int:
        return len(self._registry.listeners(event))

    def event_names(self) -> set[str]:
        return self._registry.event_names()

    # Emitting.

    def emit(self, event: str, *args: Any, **kwargs: Any) -> bool:
        """Call every listener of ``event``; never raises. True when it had listeners."""
        try:
            return bool(self._registry.emit(event, *args, **kwargs))
        except Exception:
            logger.exception("emitting %r failed", event)
            return False

    safeEmit = emit

    async def emitAndWait(self, event: str, **kwargs: Any) -> Any:
        """Call every listener of ``event`` in order, awaiting each; return the first answer
        that is not None. The first listener to raise ends the call with its error."""
        answer: Any = None
        for listener in self.listeners(event):
            result = listener(**kwargs)
            if inspect.isawaitable(result):
                result = await result
            if answer is None:
                answer = result
        return answer

    async def waitForListeners(self) -> None:
        """Wait for the async listeners started so far (and those they start)."""
        await self._listenerTasks.drain()
