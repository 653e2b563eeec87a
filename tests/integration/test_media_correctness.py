"""Media facts a real peer relies on, checked through the router: temporal layers the router
can really drop, and the stream id receivers group a peer's tracks by."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from mediasoup_client import Consumer
from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack, readFrameNumber
from mediasoup_client.signaling.protoo import ProtooError
from mediasoup_client.signaling.room_client import RoomClient
from tests.integration.router import consumerOf


async def decodedFrames(consumer: Consumer, seconds: float) -> list[int]:
    """The source frame numbers of the frames decoded during ``seconds``."""
    numbers: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = await asyncio.wait_for(consumer.track.recv(), 2)
        numbers.append(readFrameNumber(frame))
    return numbers


async def settle(consumer: Consumer) -> None:
    """Read until the decoded frames are live (the queue of older ones is drained)."""
    await decodedFrames(consumer, 1.5)


async def test_l1t3_temporal_layers_lower_one_consumers_frame_rate(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    layers = [
        {"maxBitrate": 200_000, "scaleResolutionDownBy": 2, "scalabilityMode": "L1T3"},
        {"maxBitrate": 700_000, "scalabilityMode": "L1T3"},
    ]
    producer = await publisher.produce(PatternVideoTrack(320, 240, 30), encodings=layers)
    consumer = await consumerOf(subscriber, producer.id)
    spatial = len(layers) - 1
    await asyncio.sleep(2.5)  # mediasoup switches only to streams active for 2 s or more
    steps = {}
    for temporal, step in ((0, 4), (1, 2), (2, 1)):
        await subscriber.setConsumerPreferredLayers(consumer, spatial, temporal)
        await settle(consumer)
        numbers = await decodedFrames(consumer, 2)
        fps = len(numbers) / 2
        expected = 30 / step
        assert 0.7 * expected <= fps <= 1.3 * expected, (temporal, fps, numbers)
        # The frames decoded are the layer's frames (every 4th, 2nd, each), all decodable:
        # their barcodes read back in steps of the layer's period.
        gaps = [b - a for a, b in itertools.pairwise(numbers)]
        steps[temporal] = max(set(gaps), key=gaps.count)
        assert steps[temporal] == step, (temporal, gaps)
    assert subscriber.consumerLayers[consumer.id]["temporalLayer"] == 2


async def test_this_router_refuses_temporal_layers_without_simulcast(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    # mediasoup 3.8.4 makes a single encoding with temporal layers an SVC producer, which it
    # supports for VP9 only ("video/VP8 codec not supported for svc"); newer routers accept it
    # as a one-stream simulcast. We tell the router the truth and let it decide.
    publisher, _ = peers
    with pytest.raises(ProtooError):
        await publisher.produce(
            PatternVideoTrack(160, 120, 15), encodings=[{"scalabilityMode": "L1T3"}]
        )
    # The transport is still good.
    await publisher.produce(PatternVideoTrack(160, 120, 15))


async def test_one_peers_audio_and_video_share_a_stream_id(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    video = await publisher.produce(PatternVideoTrack(160, 120, 15))
    audio = await publisher.produce(ToneAudioTrack())
    other = await publisher.produce(PatternVideoTrack(160, 120, 15), streamId="screen")
    stream = video.rtpParameters["msid"].split()[0]
    assert audio.rtpParameters["msid"].split()[0] == stream
    consumers = [await consumerOf(subscriber, p.id) for p in (video, audio, other)]
    # The router (as mediasoup 3.2x does) hands the producer's msid to its consumers.
    assert [c.rtpParameters.get("msid") for c in consumers] == [
        p.rtpParameters["msid"] for p in (video, audio, other)
    ]
    assert [c.streamId for c in consumers] == [stream, stream, "screen"]


async def test_every_layer_of_the_default_simulcast_keeps_its_frame_rate(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    # The CLI's `produce --simulcast 3` at 640x480: 160x120 gets ~57 kbps. The lowest layer
    # must lose quality before frames (it ran at 13-17 fps), and stay within its maxBitrate.
    from mediasoup_client.cli.options import defaultMaxBitrate, simulcastEncodings
    from tests.integration.router import measure

    publisher, _ = peers
    encodings = simulcastEncodings(3, defaultMaxBitrate(640, 480, 30), width=640, height=480)
    producer = await publisher.produce(PatternVideoTrack(640, 480, 30), encodings=encodings)
    await asyncio.sleep(4)
    routerRates = await measure(publisher, producer, 4)
    stats = await producer.getStats()
    layers = sorted(
        (s for s in stats.values() if s["type"] == "outbound-rtp"), key=lambda s: s["rid"]
    )
    for index, layer in enumerate(layers):
        cap = encodings[index]["maxBitrate"]
        assert layer["framesPerSecond"] >= 25, (layer["rid"], layer["framesPerSecond"])
        assert routerRates[layer["rid"]]["bitrate"] <= cap * 1.1, (layer["rid"], routerRates)
