"""Event emitters for the user-facing objects (pyee underneath).

Two things differ from a plain pyee emitter, both as mediasoup-client's EnhancedEventEmitter:
- A listener that raises (or whose coroutine fails) is logged and never disturbs the emitter
  or the other listeners; ``error`` stays an ordinary event (DataProducer emits real errors
  with it) instead of pyee's "raise when unhandled" special case.
- ``emitAndWait`` runs the listeners of a signaling event (``connect``, ``produce``,
  ``producedata``) with keyword arguments, awaits them and hands back the answer, so the app's
  async handler can return the server's reply or raise the server's error.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from pyee.asyncio import AsyncIOEventEmitter

logger = logging.getLogger(__name__)


class EnhancedEventEmitter(AsyncIOEventEmitter):
    def _emit_run(
        self, f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        try:
            result = f(*args, **kwargs)
        except Exception:
            logger.exception("event listener %r raised", f)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            task.add_done_callback(_log_listener_failure)

    def _emit_handle_potential_error(self, event: str, error: Any) -> None:
        # An "error" event nobody listens to is not a crash of the emitter.
        return None

    def safeEmit(self, event: str, *args: Any, **kwargs: Any) -> bool:
        """Emit ``event``; never raises. True when it had listeners."""
        try:
            return bool(self.emit(event, *args, **kwargs))
        except Exception:
            logger.exception("emitting %r failed", event)
            return False

    def listenerCount(self, event: str) -> int:
        return len(self.listeners(event))

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


def _log_listener_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("async event listener failed", exc_info=task.exception())
