"""Producer methods, events and errors on the fake engine."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from mediasoup_client import FakeHandler, InvalidStateError, Producer, Transport, UnsupportedError
from tests.unit.test_produce import SIMULCAST


async def produceVideo(transport: Transport, **options: Any) -> Producer:
    return await transport.produce(track=VideoStreamTrack(), encodings=SIMULCAST, **options)


def senderState(transport: Transport, producer: Producer) -> Any:
    handler: FakeHandler = transport.handler
    return handler.senderState(producer.localId)


async def settle(producer: Producer) -> None:
    await producer._background.drain()


async def test_pause_and_resume(sendTransport: Transport) -> None:
    producer = await produceVideo(sendTransport)
    events: list[str] = []
    producer.observer.on("pause", lambda: events.append("pause"))
    producer.observer.on("resume", lambda: events.append("resume"))
    producer.pause()
    assert producer.paused is True
    await settle(producer)
    assert senderState(sendTransport, producer).paused is True
    producer.resume()
    assert producer.paused is False
    await settle(producer)
    assert senderState(sendTransport, producer).paused is False
    assert events == ["pause", "resume"]


async def test_pause_and_resume_when_closed_do_nothing(sendTransport: Transport) -> None:
    producer = await produceVideo(sendTransport)
    producer.close()
    producer.pause()
    assert producer.paused is False
    producer.resume()


async def test_replace_track_needs_no_signaling(sendTransport: Transport, signaling: Any) -> None:
    producer = await produceVideo(sendTransport)
    old = producer.track
    new = VideoStreamTrack()
    await producer.replaceTrack(track=new)
    assert producer.track is new
    assert senderState(sendTransport, producer).track is new
    assert old is not None and old.readyState == "ended"  # stopTracks defaults to true
    assert len(signaling.produces) == 1
    await producer.replaceTrack(track=None)
    assert producer.track is None
    assert senderState(sendTransport, producer).track is None
    assert new.readyState == "ended"


async def test_replace_track_with_stop_tracks_false_keeps_old_track(
    sendTransport: Transport,
) -> None:
    producer = await produceVideo(sendTransport, stopTracks=False)
    old = producer.track
    await producer.replaceTrack(track=VideoStreamTrack())
    assert old is not None and old.readyState == "live"


async def test_replace_track_with_ended_track(sendTransport: Transport) -> None:
    producer = await produceVideo(sendTransport)
    ended = VideoStreamTrack()
    ended.stop()
    with pytest.raises(InvalidStateError, match="track ended"):
        await producer.replaceTrack(track=ended)
    assert producer.track is not None and producer.track.readyState == "live"


async def test_replace_track_when_closed_stops_given_track(sendTransport: Transport) -> None:
    producer = await produceVideo(sendTransport)
    producer.close()
    given = VideoStreamTrack()
    with pytest.raises(InvalidStateError, match="closed"):
        await producer.replaceTrack(track=given)
    assert given.readyState == "ended"


async def test_set_max_spatial_layer(sendTransport: Transport) -> None:
    producer = await produceVideo(sendTransport)
    await producer.setMaxSpatialLayer(0)
    assert producer.maxSpatialLayer == 0
    state = senderState(sendTransport, producer)
    assert [e["active"] for e in state.encodings] == [True, False, False]
    await producer.setMaxSpatialLayer(2)
    assert producer.maxSpatialLayer == 2
    assert [e["active"] for e in state.encodings] == [True, True, True]
    # The signalled parameters are what the server knows; they do not change.
    assert all("active" not in e or e["active"] for e in producer.rtpParameters["encodings"])


async def test_set_max_spatial_layer_errors(sendTransport: Transport) -> None:
    audio = await sendTransport.produce(track=AudioStreamTrack())
    with pytest.raises(UnsupportedError, match="not a video Producer"):
        await audio.setMaxSpatialLayer(1)
    video = await produceVideo(sendTransport)
    for bad in ("1", 1.5, None, True, -1):
        with pytest.raises(TypeError, match="invalid spatialLayer"):
            await video.setMaxSpatialLayer(bad)  # type: ignore[arg-type]
    video.close()
    with pytest.raises(InvalidStateError, match="closed"):
        await video.setMaxSpatialLayer(1)


async def test_set_rtp_encoding_parameters(sendTransport: Transport) -> None:
    producer = await produceVideo(sendTransport)
    await producer.setRtpEncodingParameters({"maxFramerate": 15})
    assert all(e["maxFramerate"] == 15 for e in senderState(sendTransport, producer).encodings)
    with pytest.raises(TypeError, match="invalid params"):
        await producer.setRtpEncodingParameters("fast")  # type: ignore[arg-type]
    producer.close()
    with pytest.raises(InvalidStateError, match="closed"):
        await producer.setRtpEncodingParameters({"maxFramerate": 15})


async def test_get_stats_has_outbound_rtp_per_encoding(sendTransport: Transport) -> None:
    producer = await produceVideo(sendTransport)
    stats = await producer.getStats()
    outbound = [s for s in stats.values() if s["type"] == "outbound-rtp"]
    assert sorted(s["rid"] for s in outbound) == ["r0", "r1", "r2"]
    assert {s["ssrc"] for s in outbound} == {e["ssrc"] for e in producer.rtpParameters["encodings"]}
    producer.close()
    with pytest.raises(InvalidStateError, match="closed"):
        await producer.getStats()


async def test_app_data_is_assignable(sendTransport: Transport) -> None:
    producer = await produceVideo(sendTransport)
    assert producer.appData == {}
    producer.appData = {"baz": "BAZ"}
    assert producer.appData == {"baz": "BAZ"}


async def test_close_stops_sending_and_track(sendTransport: Transport) -> None:
    producer = await produceVideo(sendTransport)
    track = producer.track
    closes: list[bool] = []
    producer.observer.on("close", lambda: closes.append(True))
    producer.close()
    assert producer.closed
    assert closes == [True]
    assert track is not None and track.readyState == "ended"
    await sendTransport._background.drain()
    handler: FakeHandler = sendTransport.handler
    with pytest.raises(InvalidStateError):
        handler.senderState(producer.localId)
    producer.close()  # idempotent


async def test_trackended_event(sendTransport: Transport) -> None:
    producer = await produceVideo(sendTransport)
    ended: list[str] = []
    producer.on("trackended", lambda: ended.append("event"))
    producer.observer.on("trackended", lambda: ended.append("observer"))
    assert producer.track is not None
    producer.track.stop()
    assert ended == ["event", "observer"]
    assert not producer.closed  # as in mediasoup-client: the app decides


async def test_transport_close_emits_transportclose(sendTransport: Transport) -> None:
    producers = [
        await produceVideo(sendTransport),
        await sendTransport.produce(track=AudioStreamTrack()),
    ]
    seen: list[str] = []
    for producer in producers:
        producer.on("transportclose", lambda p=producer: seen.append(p.id))
    sendTransport.close()
    assert sorted(seen) == sorted(p.id for p in producers)
    assert all(p.closed for p in producers)
