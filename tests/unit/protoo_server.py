"""An in-process protoo server on 127.0.0.1 for unit tests of ProtooPeer and RoomClient:
scripted answers per method, and a way to send the client requests and notifications."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

Answer = Callable[[dict[str, Any]], Any]


class ProtooError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ProtooServer:
    """``answers[method](data)`` returns the response data or raises ``ProtooError``."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.requestArrived = asyncio.Event()
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self._server: Server | None = None
        self._client: ServerConnection | None = None
        self._connected = asyncio.Event()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> ProtooServer:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, subprotocols=["protoo"]  # type: ignore[list-item]
        )
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/?roomId=room&peerId=me"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def dropClient(self) -> None:
        """The connection goes away, as when the server restarts."""
        if self._client is not None:
            await self._client.close()

    async def request(self, method: str, data: dict[str, Any]) -> Any:
        """Ask the client; the data it accepts with, or ``ProtooError``."""
        await asyncio.wait_for(self._connected.wait(), 5)
        assert self._client is not None
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await self._client.send(
            json.dumps({"request": True, "id": request_id, "method": method, "data": data})
        )
        return await asyncio.wait_for(future, 5)

    async def notify(self, method: str, data: dict[str, Any]) -> None:
        await asyncio.wait_for(self._connected.wait(), 5)
        assert self._client is not None
        await self._client.send(json.dumps({"notification": True, "method": method, "data": data}))

    async def _handle(self, connection: ServerConnection) -> None:
        self._client = connection
        self._connected.set()
        async for raw in connection:
            message = json.loads(raw)
            if message.get("request"):
                task = asyncio.ensure_future(self._answer(connection, message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif message.get("response"):
                future = self._pending.pop(message["id"])
                if message.get("ok"):
                    future.set_result(message.get("data"))
                else:
                    future.set_exception(
                        ProtooError(message["errorCode"], message["errorReason"])
                    )
            elif message.get("notification"):
                self.notifications.append((message["method"], message.get("data") or {}))

    async def _answer(self, connection: ServerConnection, message: dict[str, Any]) -> None:
        method, data = message["method"], message.get("data") or {}
        self.requests.append((method, data))
        self.requestArrived.set()
        response: dict[str, Any] = {"response": True, "id": message["id"]}
        try:
            answer = self.answers.get(method)
            if answer is None:
                raise ProtooError(400, f"unknown method {method}")
            result = answer(data)
            if asyncio.iscoroutine(result):
                result = await result
            response.update(ok=True, data=result if result is not None else {})
        except ProtooError as error:
            response.update(ok=False, errorCode=error.code, errorReason=error.reason)
        await connection.send(json.dumps(response))
