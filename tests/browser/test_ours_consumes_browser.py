"""Our consumer decodes what Chromium's mediasoup-client produces: VP8 simulcast (each layer
at its size), H264 and Opus from the fake camera and microphone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest

from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.browser.peer import BrowserPeer, Chromium
from tests.integration.router import waitFor
from tests.integration.test_receive_path import consumerOf, drain, frameOfSize, nextVideoFrame

SIMULCAST = [
    {"maxBitrate": 100_000, "scaleResolutionDownBy": 4},
    {"maxBitrate": 300_000, "scaleResolutionDownBy": 2},
    {"maxBitrate": 900_000},
]


@pytest.fixture
async def room(sfu: LocalSfu, chromium: Chromium) -> AsyncIterator[tuple[BrowserPeer, RoomClient]]:
    """A producing browser and our subscriber, in a new room."""
    roomId = uuid.uuid4().hex[:8]
    browser = await BrowserPeer.join(chromium, sfu.port, roomId, consume=False)
    subscriber = await RoomClient.join(sfu.url_for(roomId, "python"), produce=False)
    yield browser, subscriber
    await subscriber.close()
    await browser.close()


async def test_we_decode_each_layer_of_the_browsers_vp8_simulcast_at_its_size(
    room: tuple[BrowserPeer, RoomClient],
) -> None:
    browser, subscriber = room
    producer = await browser.produceVideo(encodings=SIMULCAST)
    consumer = await consumerOf(subscriber, producer["id"])

    async def allLayersScored() -> bool:
        streams = await browser.request("getProducerStats", {"producerId": producer["id"]})
        return len(streams) == 3 and all(s["score"] >= 9 for s in streams)

    # Chromium ramps its layers up with its bandwidth estimate.
    await waitFor(allLayersScored, 15, "the browser's three scored simulcast streams")
    await asyncio.sleep(2.5)  # mediasoup's StreamMinActiveMs
    for layer, size in ((0, (160, 120)), (2, (640, 480)), (1, (320, 240))):
        await drain(consumer)
        await subscriber.setConsumerPreferredLayers(consumer, spatialLayer=layer)
        frame = await frameOfSize(consumer, size, timeout=10)
        # The fake camera's picture moves: not a uniform frame.
        assert frame.to_ndarray(format="gray").std() > 5
    outbound = [s for s in await browser.stats(producer["id"]) if s["type"] == "outbound-rtp"]
    assert sorted((s.get("frameWidth"), s.get("frameHeight")) for s in outbound) == [
        (160, 120),
        (320, 240),
        (640, 480),
    ], outbound


async def test_we_decode_the_browsers_h264(room: tuple[BrowserPeer, RoomClient]) -> None:
    """Constrained baseline: our device receives H264 42e01f only (the router's first H264,
    Main 4d0032, which mediasoup-demo's forceH264 would pick, is not consumable by us)."""
    browser, subscriber = room
    producer = await browser.produceVideo(
        codec="H264", codecParameters={"profile-level-id": "42e01f"}
    )
    consumer = await consumerOf(subscriber, producer["id"])
    assert consumer.rtpParameters["codecs"][0]["mimeType"].lower() == "video/h264"
    frames = [await nextVideoFrame(consumer, timeout=10) for _ in range(30)]
    assert {(f.width, f.height) for f in frames[-10:]} == {(640, 480)}
    assert frames[-1].to_ndarray(format="gray").std() > 5


async def test_we_decode_the_browsers_opus(room: tuple[BrowserPeer, RoomClient]) -> None:
    browser, subscriber = room
    producer = await browser.produceAudio()
    consumer = await consumerOf(subscriber, producer["id"])
    assert consumer.rtpParameters["codecs"][0]["mimeType"].lower() == "audio/opus"
    peaks = []
    # Chromium's fake microphone beeps once a second: 2.5 s of audio hold beeps.
    for _ in range(125):
        frame = await asyncio.wait_for(consumer.track.recv(), 5)
        assert isinstance(frame, av.AudioFrame)
        assert frame.sample_rate == 48000
        peaks.append(int(np.abs(frame.to_ndarray()).max()))
    assert max(peaks) > 1000, peaks
    assert sum(p > 1000 for p in peaks) < len(peaks), "no silence between the beeps"
