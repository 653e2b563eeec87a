"""Encode once for many through the real router: one VideoSource (or one tone track) produced
by two clients (two send transports, each with its own congestion controller and SRTP context)
runs one encoder in this process, and a consumer of each producer decodes the source."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from mediasoup_client import Consumer
from mediasoup_client.handlers.aiortc.send import encoders
from mediasoup_client.media import AudioStream, VideoSource, VideoStream
from mediasoup_client.media.test_sources import (
    ToneAudioTrack,
    drawFrameNumber,
    readFrameNumberFromLuma,
)
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.integration.router import routerStreams, waitFor


@pytest.fixture
async def room(sfu: LocalSfu) -> AsyncIterator[list[RoomClient]]:
    name = uuid.uuid4().hex[:8]
    clients = [
        await RoomClient.join(sfu.url_for(name, "publisher-a"), consume=False),
        await RoomClient.join(sfu.url_for(name, "publisher-b"), consume=False),
        await RoomClient.join(sfu.url_for(name, "subscriber"), produce=False),
    ]
    yield clients
    for client in reversed(clients):
        await client.close()


@pytest.fixture
def encodersOpened(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The video encoders that opened a codec in this process (a rebuild counts once)."""
    seen: list[int] = []
    original = encoders.VideoEncoder._open

    def recording(self: encoders.VideoEncoder, *args: Any, **kwargs: Any) -> None:
        if id(self) not in seen:
            seen.append(id(self))
        original(self, *args, **kwargs)

    monkeypatch.setattr(encoders.VideoEncoder, "_open", recording)
    return seen


async def consumerOf(subscriber: RoomClient, producerId: str) -> Consumer:
    async def present() -> bool:
        return any(c.producerId == producerId for c in subscriber.consumers.values())

    await waitFor(present, 10, "the server's newConsumer")
    return next(c for c in subscriber.consumers.values() if c.producerId == producerId)


async def frameNumbers(consumer: Consumer, seconds: float) -> list[int]:
    numbers: list[int] = []
    async with VideoStream(consumer.track, format="gray") as stream:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            item = await asyncio.wait_for(stream.__anext__(), 5)
            numbers.append(readFrameNumberFromLuma(item.data.astype(np.float64)))
    return numbers


async def test_one_source_on_two_transports_runs_one_encoder_and_both_decode(
    room: list[RoomClient], encodersOpened: list[int]
) -> None:
    first, second, subscriber = room
    source = VideoSource(320, 240)
    pushed = 0

    async def push() -> None:
        nonlocal pushed
        started = time.monotonic()
        while True:
            image = np.full((240, 320, 3), (40, 90, 200), np.uint8)
            drawFrameNumber(image, pushed)
            source.captureFrame(image)
            pushed += 1
            await asyncio.sleep(max(0.0, started + pushed / 30 - time.monotonic()))

    pusher = asyncio.ensure_future(push())
    try:
        # Well below the transports' start estimate (300 kbps): their budgets agree, and
        # one transport's estimate would have to fall under ~120 kbps to split them.
        producers = [
            await client.produce(source, encodings=[{"maxBitrate": 150_000}])
            for client in (first, second)
        ]
        consumers = [await consumerOf(subscriber, p.id) for p in producers]
        await asyncio.gather(*(frameNumbers(c, 1.0) for c in consumers))  # past key frames
        results = await asyncio.gather(*(frameNumbers(c, 3.0) for c in consumers))
        stats = [await p.getStats() for p in producers]
        publishers = (first, second)
        router = [await routerStreams(c, p) for c, p in zip(publishers, producers, strict=True)]
    finally:
        pusher.cancel()
    for numbers in results:
        assert len(numbers) >= 0.8 * 3 * 30, numbers  # the full rate on each, not half
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
        assert max(b - a for a, b in itertools.pairwise(numbers)) <= 3, numbers
    assert len(encodersOpened) == 1  # encoded once, for both transports
    outbound = [
        next(e for e in report.values() if e.get("type") == "outbound-rtp") for report in stats
    ]
    assert [e["encoderShared"] for e in outbound] == [2, 2]
    assert outbound[0]["ssrc"] != outbound[1]["ssrc"]
    # The router's own numbers: each producer's stream arrived whole.
    for streams in router:
        [inbound] = streams.values()
        assert inbound["packetCount"] > 100 and inbound.get("packetsLost", 0) == 0


async def test_one_tone_on_two_transports_runs_one_opus_encoder_and_both_hear_it(
    room: list[RoomClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[int] = []
    original = encoders.OpusEncoder.__init__

    def recording(self: encoders.OpusEncoder, *args: Any, **kwargs: Any) -> None:
        opened.append(id(self))
        original(self, *args, **kwargs)

    monkeypatch.setattr(encoders.OpusEncoder, "__init__", recording)
    first, second, subscriber = room
    tone = ToneAudioTrack(440)
    try:
        producers = [await client.produce(tone) for client in (first, second)]
        consumers = [await consumerOf(subscriber, p.id) for p in producers]

        async def hear(consumer: Consumer) -> float:
            chunks = []
            async with AudioStream(consumer.track, 16000, 1, 20) as sound:
                async for item in sound:
                    chunks.append(item.data[:, 0])
                    if len(chunks) >= 100:
                        break
            signal = np.concatenate(chunks[50:]).astype(float)
            return float(np.argmax(np.abs(np.fft.rfft(signal))) * 16000 / len(signal))

        peaks = await asyncio.gather(*(hear(c) for c in consumers))
        publishers = (first, second)
        router = [await routerStreams(c, p) for c, p in zip(publishers, producers, strict=True)]
    finally:
        tone.stop()
    assert all(abs(peak - 440) < 10 for peak in peaks), peaks
    assert len(opened) == 1  # one Opus encoder for both transports
    for streams in router:
        [inbound] = streams.values()
        assert inbound["packetCount"] > 100
