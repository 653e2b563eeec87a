"""One contract, both engines: what the API can see of the fake engine and of the aiortc
engine (its real send path on an in-memory port) must be the same."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from mediasoup_client import Device, FakeHandler, Transport, UnsupportedError
from mediasoup_client.handlers.aiortc.handler import AiortcHandler
from mediasoup_client.handlers.handler_interface import NamedHandlerFactory
from tests.fixtures.router_capabilities import routerRtpCapabilities
from tests.unit.conftest import Signaling, remoteTransportParameters
from tests.unit.memory_connection import MemoryConnection

ENGINES = {
    "fake": FakeHandler.createFactory(),
    "aiortc": NamedHandlerFactory("aiortc", lambda: AiortcHandler(MemoryConnection)),
}
SIMULCAST = [{"maxBitrate": 100_000}, {"maxBitrate": 300_000}, {"maxBitrate": 900_000}]


@pytest.fixture(params=list(ENGINES))
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    device = Device(handlerFactory=ENGINES[request.param])
    await device.load(routerRtpCapabilities=routerRtpCapabilities())
    signaling = Signaling()
    transport = device.createSendTransport(**remoteTransportParameters())
    transport.on("connect", signaling.connect)
    transport.on("produce", signaling.produce)
    yield transport
    transport.close()
    await transport.waitClosed()


async def test_producer_parameters_have_one_shape(transport: Transport) -> None:
    video = await transport.produce(track=VideoStreamTrack(), encodings=SIMULCAST)
    audio = await transport.produce(track=AudioStreamTrack())
    params = video.rtpParameters
    assert params["codecs"][0]["mimeType"] == "video/VP8"
    assert params["codecs"][0]["payloadType"] == 101  # the router's
    assert [e["rid"] for e in params["encodings"]] == ["r0", "r1", "r2"]
    ssrcs = [e["ssrc"] for e in params["encodings"]] + [
        e["rtx"]["ssrc"] for e in params["encodings"]
    ]
    ssrcs += [e["ssrc"] for e in audio.rtpParameters["encodings"]]
    assert len(set(ssrcs)) == len(ssrcs) == 7
    assert params["mid"] != audio.rtpParameters["mid"]
    assert params["rtcp"]["cname"] == audio.rtpParameters["rtcp"]["cname"]
    # One MediaStream per transport unless the app names another.
    video_stream, video_track = params["msid"].split()
    audio_stream, audio_track = audio.rtpParameters["msid"].split()
    assert video_stream == audio_stream
    assert (video_track, audio_track) == (video.track.id, audio.track.id)  # type: ignore[union-attr]
    named = await transport.produce(track=VideoStreamTrack(), streamId="screen")
    assert named.rtpParameters["msid"].split()[0] == "screen"


async def test_scalability_modes_are_checked_against_the_engine(transport: Transport) -> None:
    layered = await transport.produce(
        track=VideoStreamTrack(),
        encodings=[{"scalabilityMode": "L1T3"}, {"scalabilityMode": "L1T3"}],
    )
    assert [e["scalabilityMode"] for e in layered.rtpParameters["encodings"]] == ["L1T3", "L1T3"]
    with pytest.raises(UnsupportedError, match="L2T3"):
        await transport.produce(track=VideoStreamTrack(), encodings=[{"scalabilityMode": "L2T3"}])
    with pytest.raises(TypeError, match="scalabilityMode"):
        await transport.produce(track=VideoStreamTrack(), encodings=[{"scalabilityMode": "L1"}])
    h264 = {"kind": "video", "mimeType": "video/H264", "clockRate": 90000,
            "parameters": {"packetization-mode": 1, "profile-level-id": "42e01f",
                           "level-asymmetry-allowed": 1}}  # fmt: skip
    with pytest.raises(UnsupportedError, match="H264"):
        await transport.produce(
            track=VideoStreamTrack(), codec=h264, encodings=[{"scalabilityMode": "L1T3"}]
        )
    # Nothing was left half-made: the transport still produces.
    await transport.produce(track=VideoStreamTrack())


async def test_controls_and_stats(transport: Transport) -> None:
    producer = await transport.produce(track=VideoStreamTrack(), encodings=SIMULCAST)
    stats = await producer.getStats()
    outbound = [s for s in stats.values() if s["type"] == "outbound-rtp"]
    assert sorted(s["ssrc"] for s in outbound) == sorted(
        e["ssrc"] for e in producer.rtpParameters["encodings"]
    )
    assert {s["rid"] for s in outbound} == {"r0", "r1", "r2"}
    assert {s["kind"] for s in outbound} == {"video"}
    producer.pause()
    assert producer.paused
    producer.resume()
    await producer.setMaxSpatialLayer(1)
    assert producer.maxSpatialLayer == 1
    await producer.setRtpEncodingParameters({"maxBitrate": 200_000})
    replacement = VideoStreamTrack()
    await producer.replaceTrack(track=replacement)
    assert producer.track is replacement
    await producer.replaceTrack(track=None)
    assert producer.track is None
    producer.close()
    assert producer.closed


async def test_transport_close_reaches_every_producer(transport: Transport) -> None:
    producers = [
        await transport.produce(track=VideoStreamTrack()),
        await transport.produce(track=AudioStreamTrack()),
    ]
    events: list[str] = []
    for producer in producers:
        producer.on("transportclose", lambda p=producer: events.append(p.kind))
    assert transport.connectionState == "connected"
    transport.close()
    await transport.waitClosed()
    assert sorted(events) == ["audio", "video"]
    assert all(p.closed for p in producers)
    assert transport.connectionState == "closed"


async def test_handler_name_needs_no_handler(transport: Transport) -> None:
    for name, factory in ENGINES.items():
        assert Device(handlerFactory=factory).handlerName == (
            "FakeHandler" if name == "fake" else "aiortc"
        )
