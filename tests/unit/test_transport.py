"""Transport-level behaviour: connect once, states, stats, ICE, close cascade, events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from mediasoup_client import Device, InvalidStateError, Transport
from mediasoup_client.enhanced_events import EnhancedEventEmitter
from tests.unit.conftest import remoteTransportParameters
from tests.unit.loop_turns import nextTurn


async def test_connect_emitted_once_on_first_use(sendTransport: Transport, signaling: Any) -> None:
    assert signaling.connects == []
    await sendTransport.produce(track=AudioStreamTrack())
    await sendTransport.produce(track=VideoStreamTrack())
    await sendTransport.produceData()
    assert len(signaling.connects) == 1


async def test_ice_gathering_state_events(sendTransport: Transport) -> None:
    states: list[str] = []
    sendTransport.on("icegatheringstatechange", states.append)
    await sendTransport.produce(track=AudioStreamTrack())
    assert states == ["gathering", "complete"]
    assert sendTransport.iceGatheringState == "complete"


async def test_get_stats(sendTransport: Transport) -> None:
    stats = await sendTransport.getStats()
    assert any(s["type"] == "transport" for s in stats.values())
    sendTransport.close()
    with pytest.raises(InvalidStateError, match="closed"):
        await sendTransport.getStats()


async def test_restart_ice_and_update_ice_servers(sendTransport: Transport) -> None:
    params = {"usernameFragment": "new", "password": "newpwd", "iceLite": True}
    await sendTransport.restartIce(iceParameters=params)  # type: ignore[arg-type]
    handler: Any = sendTransport.handler
    assert handler.iceRestarts == [params]
    with pytest.raises(TypeError, match="missing iceParameters"):
        await sendTransport.restartIce()
    servers: Any = [{"urls": "stun:127.0.0.1:3478"}]
    await sendTransport.updateIceServers(iceServers=servers)
    assert handler.iceServers == servers
    with pytest.raises(TypeError, match="missing iceServers"):
        await sendTransport.updateIceServers(iceServers="stun:x")  # type: ignore[arg-type]
    sendTransport.close()
    with pytest.raises(InvalidStateError, match="closed"):
        await sendTransport.restartIce(iceParameters=params)  # type: ignore[arg-type]


async def test_close_cascade(
    device: Device, sendTransport: Transport, recvTransport: Transport
) -> None:
    producer = await sendTransport.produce(track=VideoStreamTrack())
    dataProducer = await sendTransport.produceData()
    events: list[str] = []
    producer.on("transportclose", lambda: events.append("producer"))
    dataProducer.on("transportclose", lambda: events.append("dataProducer"))
    sendTransport.observer.on("close", lambda: events.append("transport"))
    states: list[str] = []
    sendTransport.on("connectionstatechange", states.append)
    sendTransport.close()
    assert sendTransport.closed
    assert sendTransport.connectionState == "closed"
    assert sorted(events) == ["dataProducer", "producer", "transport"]
    assert sendTransport.handler.closed
    sendTransport.close()  # idempotent


async def test_close_while_produce_is_queued_fails_it(sendTransport: Transport) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slowConnect(dtlsParameters: Any) -> None:
        started.set()
        await release.wait()

    sendTransport.remove_all_listeners("connect")
    sendTransport.on("connect", slowConnect)
    first = asyncio.ensure_future(sendTransport.produce(track=AudioStreamTrack()))
    await started.wait()
    second_track = VideoStreamTrack()
    second = asyncio.ensure_future(sendTransport.produce(track=second_track))
    await nextTurn()  # the second produce() is queued behind the first
    sendTransport.close()
    release.set()
    with pytest.raises(InvalidStateError):
        await first
    with pytest.raises(InvalidStateError, match="closed"):
        await second
    assert second_track.readyState == "ended"


async def test_listener_exceptions_do_not_break_emitters() -> None:
    emitter = EnhancedEventEmitter()
    seen: list[int] = []

    def bad(value: int) -> None:
        raise RuntimeError("listener bug")

    async def bad_async(value: int) -> None:
        raise RuntimeError("async listener bug")

    emitter.on("x", bad)
    emitter.on("x", bad_async)
    emitter.on("x", seen.append)
    assert emitter.safeEmit("x", 1) is True
    await emitter.waitForListeners()  # the failing async listener ran and was logged
    assert seen == [1]
    # An "error" event nobody listens to is not raised.
    assert emitter.safeEmit("error", RuntimeError("unheard")) is False


async def test_emit_and_wait_returns_first_answer_and_raises_first_error() -> None:
    emitter = EnhancedEventEmitter()

    async def answer(value: int) -> int:
        return value * 2

    emitter.on("ask", lambda value: None)
    emitter.on("ask", answer)
    assert await emitter.emitAndWait("ask", value=21) == 42

    def refuse(value: int) -> int:
        raise ValueError("refused")

    emitter.on("fail", refuse)
    with pytest.raises(ValueError, match="refused"):
        await emitter.emitAndWait("fail", value=1)


def test_create_transport_app_data(device: Device) -> None:
    transport = device.createRecvTransport(**remoteTransportParameters(), appData={"k": 1})
    transport.appData = {"k": 2}
    assert transport.appData == {"k": 2}
    transport.close()
