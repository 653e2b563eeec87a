"""An asyncio protoo client (the signaling protocol of mediasoup-demo) on ``websockets``.

Wire format, JSON over a WebSocket with subprotocol ``protoo``:
  request       {"request": true, "id": N, "method": M, "data": {...}}
  response      {"response": true, "id": N, "ok": true, "data": {...}}
                {"response": true, "id": N, "ok": false, "errorCode": C, "errorReason": R}
  notification  {"notification": true, "method": M, "data": {...}}
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..background import BackgroundWork

logger = logging.getLogger(__name__)

RequestHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
NotificationHandler = Callable[[str, dict[str, Any]], Awaitable[None] | None]


class ProtooError(Exception):
    """The server answered a request with an error."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (code {code})")
        self.code = code
        self.reason = reason


class ProtooPeer:
    """One protoo connection. Use ``await ProtooPeer.connect(url)``."""

    def __init__(self, websocket: ClientConnection) -> None:
        self._websocket = websocket
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(random.randint(1, 10_000_000))
        self._requestHandler: RequestHandler | None = None
        self._notificationHandlers: list[NotificationHandler] = []
        self._background = BackgroundWork("protoo")
        self._closed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._readLoop())

    @classmethod
    async def connect(cls, url: str, *, timeout: float = 10.0) -> ProtooPeer:
        """Connect to ``url`` (ws:// or wss://); ``ConnectionError`` when it cannot."""
        try:
            websocket = await asyncio.wait_for(
                connect(url, subprotocols=["protoo"], max_size=None, open_timeout=timeout),  # type: ignore[list-item]
                timeout,
            )
        except (OSError, TimeoutError, ConnectionClosed) as error:
            raise ConnectionError(f"cannot connect to {url}: {error}") from error
        except Exception as error:  # websockets' InvalidURI, InvalidStatus, InvalidHandshake...
            raise ConnectionError(f"cannot connect to {url}: {error}") from error
        return cls(websocket)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def on_request(self, handler: RequestHandler) -> None:
        """Answer the server's requests: return the data to accept, raise to reject."""
        self._requestHandler = handler

    def on_notification(self, handler: NotificationHandler) -> None:
        self._notificationHandlers.append(handler)

    async def request(
        self, method: str, data: dict[str, Any] | None = None, *, timeout: float = 15.0
    ) -> Any:
        """Send a request and return the response data; ``ProtooError`` on an error answer,
        ``TimeoutError`` when none comes, ``ConnectionError`` when the connection is gone."""
        if self.closed:
            raise ConnectionError("protoo connection closed")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        message = {"request": True, "id": request_id, "method": method, "data": data or {}}
        try:
            await self._send(message)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(f"protoo request {method!r} timed out after {timeout} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def notify(self, method: str, data: dict[str, Any] | None = None) -> None:
        await self._send({"notification": True, "method": method, "data": data or {}})

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(Exception):
            await self._websocket.close()
        self._markClosed()

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self._websocket.send(json.dumps(message))
        except ConnectionClosed as error:
            self._markClosed()
            raise ConnectionError("protoo connection closed") from error

    async def _readLoop(self) -> None:
        try:
            async for raw in self._websocket:
                try:
                    message = json.loads(raw)
                except ValueError:
                    logger.warning("protoo: ignoring a message that is not JSON")
                    continue
                if not isinstance(message, dict):
                    continue
                self._dispatch(message)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("protoo: reading failed")
        finally:
            self._markClosed()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("response"):
            future = self._pending.get(message.get("id", -1))
            if future is None or future.done():
                return
            if message.get("ok"):
                future.set_result(message.get("data", {}))
            else:
                future.set_exception(
                    ProtooError(int(message.get("errorCode", 500)), str(message.get("errorReason")))
                )
        elif message.get("request"):
            self._background.spawn(self._answer(message), f"answering {message.get('method')}")
        elif message.get("notification"):
            method, data = str(message.get("method")), message.get("data") or {}
            for handler in list(self._notificationHandlers):
                self._background.spawn(
                    self._notifyHandler(handler, method, data), f"notification {method}"
                )

    async def _answer(self, message: dict[str, Any]) -> None:
        response: dict[str, Any] = {"response": True, "id": message.get("id")}
        try:
            if self._requestHandler is None:
                raise ProtooError(500, "no request handler")
            data = await self._requestHandler(str(message.get("method")), message.get("data") or {})
            response.update(ok=True, data=data if data is not None else {})
        except ProtooError as error:
            response.update(ok=False, errorCode=error.code, errorReason=error.reason)
        except Exception as error:
            logger.warning("protoo: answering %s failed: %s", message.get("method"), error)
            response.update(ok=False, errorCode=500, errorReason=str(error))
        with contextlib.suppress(ConnectionError):
            await self._send(response)

    @staticmethod
    async def _notifyHandler(handler: NotificationHandler, method: str, data: Any) -> None:
        try:
            result = handler(method, data)
            if result is not None:
                await result
        except Exception:
            logger.exception("protoo: notification handler failed for %s", method)

    def _markClosed(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("protoo connection closed"))
