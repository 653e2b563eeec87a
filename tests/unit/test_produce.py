"""Transport.produce() and the Producer on the fake engine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from mediasoup_client import (
    Device,
    FakeHandler,
    InvalidStateError,
    Producer,
    Transport,
    UnsupportedError,
)
from tests.fixtures.router_capabilities import routerRtpCapabilities
from tests.unit.conftest import Signaling, remoteTransportParameters

SIMULCAST = [
    {"maxBitrate": 100_000, "scaleResolutionDownBy": 4},
    {"maxBitrate": 300_000, "scaleResolutionDownBy": 2},
    {"maxBitrate": 900_000},
]


def routerPayloadType(mimeType: str) -> int:
    return next(
        c["preferredPayloadType"]
        for c in routerRtpCapabilities()["codecs"]
        if c["mimeType"].lower() == mimeType.lower()
    )


async def test_produce_audio(
    sendTransport: Transport, signaling: Signaling, audioTrack: AudioStreamTrack
) -> None:
    connection_states: list[str] = []
    sendTransport.on("connectionstatechange", connection_states.append)
    new_producers: list[Producer] = []
    sendTransport.observer.on("newproducer", new_producers.append)

    producer = await sendTransport.produce(track=audioTrack, appData={"foo": "FOO"})

    assert len(signaling.connects) == 1
    assert signaling.connects[0]["role"] in ("client", "server")
    assert connection_states == ["connecting", "connected"]
    assert sendTransport.connectionState == "connected"
    assert signaling.produces[0]["kind"] == "audio"
    assert signaling.produces[0]["appData"] == {"foo": "FOO"}
    assert producer.id == "producer-1"
    assert producer.closed is False
    assert producer.kind == "audio"
    assert producer.track is audioTrack
    assert producer.paused is False
    assert producer.maxSpatialLayer is None
    assert producer.appData == {"foo": "FOO"}
    assert new_producers == [producer]

    params = producer.rtpParameters
    assert params is signaling.produces[0]["rtpParameters"]
    assert isinstance(params["mid"], str)
    assert params["codecs"][0]["mimeType"].lower() == "audio/opus"
    assert params["codecs"][0]["payloadType"] == routerPayloadType("audio/opus")
    assert len(params["codecs"]) == 1  # opus has no rtx
    [encoding] = params["encodings"]
    assert isinstance(encoding["ssrc"], int)
    assert "rid" not in encoding
    assert "rtx" not in encoding
    assert params["rtcp"]["cname"]
    uris = {ext["uri"] for ext in params["headerExtensions"]}
    assert "urn:ietf:params:rtp-hdrext:sdes:mid" in uris


async def test_produce_simulcast_video(
    sendTransport: Transport, signaling: Signaling, videoTrack: VideoStreamTrack
) -> None:
    producer = await sendTransport.produce(track=videoTrack, encodings=SIMULCAST)
    params = producer.rtpParameters
    assert producer.kind == "video"
    # The router's payload types, media codec then its rtx.
    [media, rtx] = params["codecs"]
    assert media["mimeType"].lower() == "video/vp8"
    assert media["payloadType"] == routerPayloadType("video/VP8")
    assert rtx["mimeType"].lower() == "video/rtx"
    assert rtx["parameters"]["apt"] == media["payloadType"]
    encodings = params["encodings"]
    assert [e["rid"] for e in encodings] == ["r0", "r1", "r2"]
    assert [e["maxBitrate"] for e in encodings] == [100_000, 300_000, 900_000]
    ssrcs = [e["ssrc"] for e in encodings] + [e["rtx"]["ssrc"] for e in encodings]
    assert len(set(ssrcs)) == 6
    assert all(isinstance(s, int) for s in ssrcs)
    assert params["mid"]
    assert params["rtcp"]["cname"]
    uris = {ext["uri"] for ext in params["headerExtensions"]}
    assert "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" in uris
    assert "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id" in uris


async def test_simulcast_encodings_get_l1t3_as_mediasoup_client_gives_them_in_chrome(
    device: Device, sendTransport: Transport, videoTrack: VideoStreamTrack
) -> None:
    # The router then knows of three temporal layers per stream and can keep a consumer on a
    # spatial layer by dropping frames (issue 18 item 1: recorders on a PlainTransport).
    producer = await sendTransport.produce(track=videoTrack, encodings=SIMULCAST)
    assert [e["scalabilityMode"] for e in producer.rtpParameters["encodings"]] == ["L1T3"] * 3
    mixed = [{"scalabilityMode": "L1T1"}, {"scalabilityMode": "L1T2"}]
    producer = await sendTransport.produce(track=videoTrack, encodings=mixed)
    assert [e["scalabilityMode"] for e in producer.rtpParameters["encodings"]] == ["L1T2"] * 2
    single = await sendTransport.produce(track=videoTrack)
    assert "scalabilityMode" not in single.rtpParameters["encodings"][0]
    # H264: the engine has no temporal layers, so the default is one.
    h264 = next(
        c
        for c in device.sendRtpCapabilities["codecs"]
        if c["mimeType"].lower() == "video/h264"
        and c.get("parameters", {}).get("profile-level-id") == "42e01f"
    )
    producer = await sendTransport.produce(track=videoTrack, codec=h264, encodings=[{}, {}])
    assert [e["scalabilityMode"] for e in producer.rtpParameters["encodings"]] == ["L1T1"] * 2
    with pytest.raises(UnsupportedError):
        await sendTransport.produce(
            track=videoTrack, codec=h264, encodings=[{"scalabilityMode": "L1T3"}, {}]
        )


async def test_produce_user_rid_and_ssrc_are_ignored(
    sendTransport: Transport, videoTrack: VideoStreamTrack
) -> None:
    encodings: list[Any] = [{"rid": "high", "ssrc": 1, "maxBitrate": 1000}, {"rid": "low"}]
    producer = await sendTransport.produce(track=videoTrack, encodings=encodings)
    assert [e["rid"] for e in producer.rtpParameters["encodings"]] == ["r0", "r1"]
    assert producer.rtpParameters["encodings"][0]["ssrc"] != 1


async def test_produce_with_codec_selects_it(
    device: Device, sendTransport: Transport, videoTrack: VideoStreamTrack
) -> None:
    h264 = next(
        c
        for c in device.sendRtpCapabilities["codecs"]
        if c["mimeType"].lower() == "video/h264"
        and c.get("parameters", {}).get("profile-level-id") == "42e01f"
    )
    producer = await sendTransport.produce(track=videoTrack, codec=h264)
    assert producer.rtpParameters["codecs"][0]["mimeType"].lower() == "video/h264"
    assert producer.rtpParameters["codecs"][0]["parameters"]["profile-level-id"] == "42e01f"


async def test_produce_codec_options_are_signalled(
    sendTransport: Transport, audioTrack: AudioStreamTrack, videoTrack: VideoStreamTrack
) -> None:
    audio = await sendTransport.produce(
        track=audioTrack,
        codecOptions={
            "opusStereo": True,
            "opusFec": True,
            "opusDtx": True,
            "opusMaxPlaybackRate": 24000,
            "opusMaxAverageBitrate": 64000,
            "opusPtime": 40,
        },
    )
    parameters = audio.rtpParameters["codecs"][0]["parameters"]
    assert parameters["stereo"] == 1 and parameters["sprop-stereo"] == 1
    assert parameters["useinbandfec"] == 1
    assert parameters["usedtx"] == 1
    assert parameters["maxplaybackrate"] == 24000
    assert parameters["maxaveragebitrate"] == 64000
    assert parameters["ptime"] == 40
    video = await sendTransport.produce(
        track=videoTrack,
        codecOptions={"videoGoogleStartBitrate": 500, "videoGoogleMaxBitrate": 300},
    )
    vparams = video.rtpParameters["codecs"][0]["parameters"]
    assert vparams["x-google-start-bitrate"] == 500
    assert vparams["x-google-max-bitrate"] == 300


async def test_concurrent_produce_calls_all_work(
    sendTransport: Transport, signaling: Signaling
) -> None:
    tracks = [AudioStreamTrack() if i % 2 else VideoStreamTrack() for i in range(6)]
    producers = await asyncio.gather(*(sendTransport.produce(track=t) for t in tracks))
    assert len({p.id for p in producers}) == 6
    assert len({p.rtpParameters["mid"] for p in producers}) == 6
    assert len(signaling.connects) == 1


async def test_produce_with_sync_handlers_and_dict_answer(
    device: Device, videoTrack: VideoStreamTrack
) -> None:
    transport = device.createSendTransport(**remoteTransportParameters())
    transport.on("connect", lambda dtlsParameters: None)
    transport.on("produce", lambda kind, rtpParameters, appData: {"id": "from-demo"})
    producer = await transport.produce(track=videoTrack)
    assert producer.id == "from-demo"
    transport.close()


# Bad input: the contract's errors, first failing check wins.


async def test_produce_on_closed_transport(sendTransport: Transport, videoTrack: Any) -> None:
    sendTransport.close()
    with pytest.raises(InvalidStateError, match="closed"):
        await sendTransport.produce(track=videoTrack)


async def test_produce_without_track(sendTransport: Transport) -> None:
    with pytest.raises(TypeError, match="missing track"):
        await sendTransport.produce()


async def test_produce_on_recv_transport(recvTransport: Transport, videoTrack: Any) -> None:
    with pytest.raises(UnsupportedError, match="not a sending transport"):
        await recvTransport.produce(track=videoTrack)


async def test_produce_kind_the_device_cannot_send(videoTrack: Any) -> None:
    device = Device(handlerFactory=FakeHandler.createFactory())
    caps = routerRtpCapabilities()
    caps["codecs"] = [c for c in caps["codecs"] if c["kind"] == "audio"]
    await device.load(routerRtpCapabilities=caps)
    transport = device.createSendTransport(**remoteTransportParameters())
    transport.on("connect", lambda dtlsParameters: None)
    transport.on("produce", lambda kind, rtpParameters, appData: "x")
    with pytest.raises(UnsupportedError, match="cannot produce video"):
        await transport.produce(track=videoTrack)
    transport.close()


async def test_produce_ended_track(sendTransport: Transport, videoTrack: Any) -> None:
    videoTrack.stop()
    with pytest.raises(InvalidStateError, match="track ended"):
        await sendTransport.produce(track=videoTrack)


async def test_produce_without_connect_listener(device: Device, videoTrack: Any) -> None:
    transport = device.createSendTransport(**remoteTransportParameters())
    transport.on("produce", lambda kind, rtpParameters, appData: "x")
    with pytest.raises(TypeError, match='no "connect" listener'):
        await transport.produce(track=videoTrack)
    transport.close()


async def test_produce_without_produce_listener(device: Device, videoTrack: Any) -> None:
    transport = device.createSendTransport(**remoteTransportParameters())
    transport.on("connect", lambda dtlsParameters: None)
    with pytest.raises(TypeError, match='no "produce" listener'):
        await transport.produce(track=videoTrack)
    transport.close()


async def test_produce_with_non_dict_app_data(sendTransport: Transport, videoTrack: Any) -> None:
    with pytest.raises(TypeError, match="appData"):
        await sendTransport.produce(track=videoTrack, appData="foo")  # type: ignore[arg-type]


async def test_produce_with_non_list_encodings_stops_track(
    sendTransport: Transport, videoTrack: Any
) -> None:
    with pytest.raises(TypeError, match="encodings"):
        await sendTransport.produce(track=videoTrack, encodings={"maxBitrate": 1})  # type: ignore[arg-type]
    assert videoTrack.readyState == "ended"


async def test_produce_with_unknown_codec(sendTransport: Transport, videoTrack: Any) -> None:
    codec: Any = {"kind": "video", "mimeType": "video/AV2", "clockRate": 90000}
    with pytest.raises(TypeError, match="no matching codec found"):
        await sendTransport.produce(track=videoTrack, codec=codec)


async def test_produce_handler_error_propagates_stops_track_and_leaves_no_sender(
    device: Device, videoTrack: Any
) -> None:
    transport = device.createSendTransport(**remoteTransportParameters())
    transport.on("connect", lambda dtlsParameters: None)

    async def failingProduce(kind: str, rtpParameters: Any, appData: Any) -> str:
        raise RuntimeError("server said no")

    transport.on("produce", failingProduce)
    handler: FakeHandler = transport.handler
    with pytest.raises(RuntimeError, match="server said no"):
        await transport.produce(track=videoTrack)
    assert videoTrack.readyState == "ended"
    assert handler._senders == {}
    # The transport is still usable.
    transport.remove_all_listeners("produce")
    transport.on("produce", lambda kind, rtpParameters, appData: "ok")
    producer = await transport.produce(track=VideoStreamTrack())
    assert producer.id == "ok"
    transport.close()


async def test_produce_handler_error_keeps_track_with_stop_tracks_false(
    device: Device, videoTrack: Any
) -> None:
    transport = device.createSendTransport(**remoteTransportParameters())
    transport.on("connect", lambda dtlsParameters: None)

    def failingProduce(kind: str, rtpParameters: Any, appData: Any) -> str:
        raise RuntimeError("nope")

    transport.on("produce", failingProduce)
    with pytest.raises(RuntimeError):
        await transport.produce(track=videoTrack, stopTracks=False)
    assert videoTrack.readyState == "live"
    transport.close()


async def test_connect_handler_error_fails_produce(device: Device, videoTrack: Any) -> None:
    transport = device.createSendTransport(**remoteTransportParameters())

    async def failingConnect(dtlsParameters: Any) -> None:
        raise ConnectionError("dtls refused")

    transport.on("connect", failingConnect)
    transport.on("produce", lambda kind, rtpParameters, appData: "x")
    with pytest.raises(ConnectionError, match="dtls refused"):
        await transport.produce(track=videoTrack)
    transport.close()
