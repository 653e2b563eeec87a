"""ProtooPeer against an in-process protoo server: requests both ways, errors, notifications,
a connection that goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mediasoup_client.signaling.protoo import ProtooError, ProtooPeer
from tests.unit import protoo_server
from tests.unit.protoo_server import ProtooServer


@pytest.fixture
async def server() -> AsyncIterator[ProtooServer]:
    server = await ProtooServer().start()
    yield server
    await server.stop()


async def test_requests_get_their_answers_or_their_errors(server: ProtooServer) -> None:
    server.answers["echo"] = lambda data: {"got": data}

    def refuse(data: dict[str, Any]) -> None:
        raise protoo_server.ProtooError(403, "not allowed")

    server.answers["refuse"] = refuse
    peer = await ProtooPeer.connect(server.url)
    assert await peer.request("echo", {"a": 1}) == {"got": {"a": 1}}
    with pytest.raises(ProtooError) as failure:
        await peer.request("refuse")
    assert (failure.value.code, failure.value.reason) == (403, "not allowed")
    with pytest.raises(ProtooError):
        await peer.request("nobody-knows")
    await peer.close()


async def test_server_requests_are_answered_by_the_handler(server: ProtooServer) -> None:
    peer = await ProtooPeer.connect(server.url)

    async def handler(method: str, data: dict[str, Any]) -> Any:
        if method == "newConsumer":
            return {"accepted": data["id"]}
        raise ProtooError(404, f"no {method}")

    peer.on_request(handler)
    assert await server.request("newConsumer", {"id": "c1"}) == {"accepted": "c1"}
    with pytest.raises(protoo_server.ProtooError) as failure:
        await server.request("other", {})
    assert failure.value.code == 404
    await peer.close()


async def test_notifications_reach_every_handler_in_order(server: ProtooServer) -> None:
    peer = await ProtooPeer.connect(server.url)
    seen: list[tuple[str, Any]] = []
    done = asyncio.Event()

    def handler(method: str, data: dict[str, Any]) -> None:
        seen.append((method, data["n"]))
        if len(seen) == 3:
            done.set()

    def broken(method: str, data: dict[str, Any]) -> None:
        raise RuntimeError("a buggy handler")

    peer.on_notification(broken)
    peer.on_notification(handler)
    for n in range(3):
        await server.notify("tick", {"n": n})
    await asyncio.wait_for(done.wait(), 5)
    assert seen == [("tick", 0), ("tick", 1), ("tick", 2)]
    await peer.notify("hello", {"x": 1})
    await peer.close()


async def test_a_lost_connection_fails_pending_requests(server: ProtooServer) -> None:
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    server.answers["slow"] = lambda data: never
    peer = await ProtooPeer.connect(server.url)
    pending = asyncio.ensure_future(peer.request("slow"))
    await asyncio.wait_for(server.requestArrived.wait(), 5)
    await server.dropClient()
    with pytest.raises(ConnectionError):
        await pending
    await asyncio.wait_for(peer.wait_closed(), 5)
    with pytest.raises(ConnectionError):
        await peer.request("anything")
    never.cancel()


async def test_unreachable_server_is_a_connection_error() -> None:
    with pytest.raises(ConnectionError):
        await ProtooPeer.connect("ws://127.0.0.1:9/?roomId=r&peerId=p", timeout=2)
