"""Transport.consume() and the Consumer on the fake engine."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from mediasoup_client import (
    Consumer,
    Device,
    FakeHandler,
    InvalidStateError,
    Transport,
    UnsupportedError,
)
from tests.fixtures.router_capabilities import routerRtpCapabilities
from tests.unit.conftest import remoteTransportParameters


def consumerRtpParameters(kind: str, mimeType: str) -> dict[str, Any]:
    """What the server's consume answer carries (router payload types)."""
    codec = next(
        c for c in routerRtpCapabilities()["codecs"] if c["mimeType"].lower() == mimeType.lower()
    )
    params: dict[str, Any] = {
        "mid": "0",
        "codecs": [
            {
                "mimeType": codec["mimeType"],
                "payloadType": codec["preferredPayloadType"],
                "clockRate": codec["clockRate"],
                **({"channels": codec["channels"]} if "channels" in codec else {}),
                "parameters": codec.get("parameters", {}),
                "rtcpFeedback": codec.get("rtcpFeedback", []),
            }
        ],
        "headerExtensions": [],
        "encodings": [{"ssrc": 123456}],
        "rtcp": {"cname": "remote", "reducedSize": True, "mux": True},
    }
    return params


def consumeOptions(mediaKind: str = "audio", **overrides: Any) -> dict[str, Any]:
    mime = "audio/opus" if mediaKind == "audio" else "video/VP8"
    options: dict[str, Any] = {
        "id": f"consumer-{mediaKind}",
        "producerId": f"producer-{mediaKind}",
        "kind": mediaKind,
        "rtpParameters": consumerRtpParameters(mediaKind, mime),
    }
    options.update(overrides)
    return options


async def test_consume_audio_and_video(recvTransport: Transport, signaling: Any) -> None:
    seen: list[Consumer] = []
    recvTransport.observer.on("newconsumer", seen.append)
    options = consumeOptions("audio", appData={"bar": "BAR"})
    given = copy.deepcopy(options["rtpParameters"])
    audio = await recvTransport.consume(**options)
    video = await recvTransport.consume(**consumeOptions("video"))
    assert options["rtpParameters"] == given  # not modified
    assert audio.id == "consumer-audio"
    assert audio.producerId == "producer-audio"
    assert audio.kind == "audio" and video.kind == "video"
    assert audio.track.kind == "audio" and video.track.kind == "video"
    assert audio.track.readyState == "live"
    assert audio.paused is False
    assert audio.closed is False
    assert audio.appData == {"bar": "BAR"}
    assert audio.rtpParameters["codecs"][0]["mimeType"].lower() == "audio/opus"
    assert seen == [audio, video]
    assert len(signaling.connects) == 1
    assert recvTransport.connectionState == "connected"


async def test_concurrent_consume_calls_all_work(recvTransport: Transport) -> None:
    consumers = await asyncio.gather(
        *(
            recvTransport.consume(**consumeOptions("video", id=f"c{i}", producerId=f"p{i}"))
            for i in range(8)
        )
    )
    assert [c.id for c in consumers] == [f"c{i}" for i in range(8)]
    assert len({c.localId for c in consumers}) == 8


async def test_consumer_pause_resume_close_and_stats(recvTransport: Transport) -> None:
    consumer = await recvTransport.consume(**consumeOptions("video"))
    handler: FakeHandler = recvTransport.handler
    consumer.pause()
    assert consumer.paused
    await consumer._background.drain()
    assert handler.receiverState(consumer.localId).paused
    consumer.resume()
    await consumer._background.drain()
    assert not handler.receiverState(consumer.localId).paused
    stats = await consumer.getStats()
    [inbound] = [s for s in stats.values() if s["type"] == "inbound-rtp"]
    assert inbound["ssrc"] == 123456
    track = consumer.track
    consumer.close()
    assert consumer.closed and track.readyState == "ended"
    with pytest.raises(InvalidStateError, match="closed"):
        await consumer.getStats()
    await recvTransport._background.drain()
    with pytest.raises(InvalidStateError):
        handler.receiverState(consumer.localId)


async def test_transport_close_emits_transportclose_on_consumers(recvTransport: Transport) -> None:
    consumer = await recvTransport.consume(**consumeOptions("audio"))
    seen: list[str] = []
    consumer.on("transportclose", lambda: seen.append("transportclose"))
    consumer.observer.on("close", lambda: seen.append("close"))
    recvTransport.close()
    assert seen == ["transportclose", "close"]
    assert consumer.closed


async def test_consumer_trackended(recvTransport: Transport) -> None:
    consumer = await recvTransport.consume(**consumeOptions("audio"))
    seen: list[str] = []
    consumer.on("trackended", lambda: seen.append("trackended"))
    consumer.track.stop()
    assert seen == ["trackended"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"id": None}, "missing id"),
        ({"producerId": 3}, "missing producerId"),
        ({"kind": "data"}, "invalid kind"),
        ({"appData": "x"}, "appData"),
        ({"rtpParameters": None}, "rtpParameters"),
    ],
)
async def test_consume_bad_input_raises_type_error(
    recvTransport: Transport, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        await recvTransport.consume(**consumeOptions("audio", **overrides))


async def test_consume_unsupported_codec(recvTransport: Transport) -> None:
    options = consumeOptions("video")
    # The router's payload types decide (as in mediasoup-client): one it never offered.
    options["rtpParameters"]["codecs"][0]["mimeType"] = "video/AV2"
    options["rtpParameters"]["codecs"][0]["payloadType"] = 77
    with pytest.raises(UnsupportedError, match="cannot consume"):
        await recvTransport.consume(**options)


async def test_consume_on_send_transport(sendTransport: Transport) -> None:
    with pytest.raises(UnsupportedError, match="not a receiving transport"):
        await sendTransport.consume(**consumeOptions("audio"))


async def test_consume_on_closed_transport(recvTransport: Transport) -> None:
    recvTransport.close()
    with pytest.raises(InvalidStateError, match="closed"):
        await recvTransport.consume(**consumeOptions("audio"))


async def test_consume_without_connect_listener(device: Device) -> None:
    transport = device.createRecvTransport(**remoteTransportParameters())
    with pytest.raises(TypeError, match='no "connect" listener'):
        await transport.consume(**consumeOptions("audio"))
    transport.close()
