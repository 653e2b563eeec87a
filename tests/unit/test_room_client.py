"""RoomClient on the fake engine against an in-process protoo server: the join sequence,
producing, server-pushed consumers (a raising listener does not reject them), notifications
and a lost connection."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc.mediastreams import VideoStreamTrack

from mediasoup_client import FakeHandler
from mediasoup_client.signaling.room_client import RoomClient
from tests.fixtures.router_capabilities import routerRtpCapabilities
from tests.unit.conftest import remoteTransportParameters
from tests.unit.protoo_server import ProtooServer


@pytest.fixture
async def server() -> AsyncIterator[ProtooServer]:
    server = await ProtooServer().start()
    ids = itertools.count(1)
    server.answers.update(
        {
            "getRouterRtpCapabilities": lambda data: routerRtpCapabilities(),
            "createWebRtcTransport": lambda data: remoteTransportParameters(),
            "connectWebRtcTransport": lambda data: {},
            "join": lambda data: {"peers": [{"id": "other", "displayName": "Other"}]},
            "produce": lambda data: {"id": f"producer-{next(ids)}"},
            "produceData": lambda data: {"id": f"dataproducer-{next(ids)}"},
            "closeProducer": lambda data: {},
            "pauseProducer": lambda data: {},
            "resumeProducer": lambda data: {},
        }
    )
    yield server
    await server.stop()


async def join(server: ProtooServer, **options: Any) -> RoomClient:
    return await RoomClient.join(
        server.url, handlerFactory=FakeHandler.createFactory(), **options
    )


def consumerRequest(producerId: str = "producer-x") -> dict[str, Any]:
    return {
        "peerId": "other",
        "producerId": producerId,
        "id": f"consumer-of-{producerId}",
        "kind": "video",
        "rtpParameters": {
            "mid": "0",
            "codecs": [
                {
                    "mimeType": "video/VP8",
                    "payloadType": 101,
                    "clockRate": 90000,
                    "parameters": {},
                    "rtcpFeedback": [],
                }
            ],
            "headerExtensions": [],
            "encodings": [{"ssrc": 1234}],
            "rtcp": {"cname": "other-cname"},
            "msid": "other-stream other-track",
        },
        "type": "simple",
        "appData": {"source": "webcam"},
        "producerPaused": False,
    }


async def test_join_follows_mediasoup_demo_and_produce_signals(server: ProtooServer) -> None:
    client = await join(server, displayName="bot")
    methods = [method for method, _ in server.requests]
    assert methods == [
        "getRouterRtpCapabilities",
        "createWebRtcTransport",
        "createWebRtcTransport",
        "join",
    ]
    joined = dict(server.requests)["join"]
    assert joined["displayName"] == "bot" and joined["rtpCapabilities"]["codecs"]
    assert client.peers == {"other": {"id": "other", "displayName": "Other"}}
    producer = await client.produce(VideoStreamTrack(), appData={"source": "bot"})
    produced = [data for method, data in server.requests if method == "produce"]
    assert produced[0]["kind"] == "video" and produced[0]["appData"] == {"source": "bot"}
    assert produced[0]["rtpParameters"]["msid"].endswith(producer.track.id)  # type: ignore[union-attr]
    assert client.producers == {producer.id: producer}
    await client.pauseProducer(producer)
    assert producer.paused and server.requests[-1][0] == "pauseProducer"
    await client.closeProducer(producer)
    assert producer.closed and client.producers == {}
    await client.close()


async def test_a_pushed_consumer_is_accepted_even_if_a_listener_raises(
    server: ProtooServer,
) -> None:
    client = await join(server)
    received: list[Any] = []

    def broken(consumer: Any) -> None:
        raise RuntimeError("an app bug")

    client.on("newconsumer", broken)
    client.on("newconsumer", received.append)
    assert await server.request("newConsumer", consumerRequest()) == {}
    [consumer] = received
    assert consumer.producerId == "producer-x" and consumer.kind == "video"
    assert consumer.streamId == "other-stream"
    assert consumer.appData == {"source": "webcam", "peerId": "other", "producerPaused": False}
    assert client.consumers == {consumer.id: consumer}
    await client.close()


async def test_notifications_update_the_room(server: ProtooServer) -> None:
    client = await join(server)
    await server.request("newConsumer", consumerRequest())
    seen: list[str] = []
    closed = asyncio.Event()
    client.on("notification", lambda method, data: seen.append(method))
    client.on("consumerclosed", lambda consumer: closed.set())
    await server.notify("producerScore", {"producerId": "p", "score": [{"score": 10}]})
    await server.notify("consumerLayersChanged", {"consumerId": "c", "spatialLayer": 1})
    await server.notify("newPeer", {"id": "late", "displayName": "Late"})
    await server.notify("consumerClosed", {"consumerId": "consumer-of-producer-x"})
    await asyncio.wait_for(closed.wait(), 5)
    assert client.producerScores == {"p": [{"score": 10}]}
    assert client.consumerLayers["c"] == {"spatialLayer": 1, "temporalLayer": None}
    assert "late" in client.peers and client.consumers == {}
    assert seen == ["producerScore", "consumerLayersChanged", "newPeer", "consumerClosed"]
    await client.close()


async def test_a_lost_connection_is_reported(server: ProtooServer) -> None:
    client = await join(server)
    lost = asyncio.Event()
    client.on("disconnected", lost.set)
    await server.dropClient()
    await asyncio.wait_for(lost.wait(), 5)
    await client.close()


async def test_a_refused_join_leaves_nothing_open(server: ProtooServer) -> None:
    from tests.unit import protoo_server

    def refuse(data: dict[str, Any]) -> None:
        raise protoo_server.ProtooError(403, "room full")

    server.answers["join"] = refuse
    with pytest.raises(Exception, match="room full"):
        await join(server)
