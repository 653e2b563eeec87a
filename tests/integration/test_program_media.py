"""Program-friendly media through the real router: numpy frames pushed at 30 fps decode at a
consumer with their content, 10 ms chunks of 16 kHz audio decode as that signal, AudioStream
yields 320 samples per 20 ms at 16 kHz, and pre-encoded H264 (a file made here) reaches a
consumer and decodes with no encoder opened in this process."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from mediasoup_client import UnsupportedError
from mediasoup_client.media import (
    AudioSource,
    AudioStream,
    EncodedAudioSource,
    EncodedMediaPlayer,
    EncodedVideoSource,
    VideoSource,
    VideoStream,
)
from mediasoup_client.media.bitstream import h264StartsWithSps
from mediasoup_client.media.test_sources import (
    drawFrameNumber,
    readFrameNumberFromLuma,
    writeTestFile,
)
from mediasoup_client.signaling.room_client import RoomClient
from tests.integration.router import consumerOf, routerStreams, waitFor


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("program-media")
    return {
        "h264": Path(writeTestFile(str(folder / "clip.mp4"), width=640, height=480, audio=True)),
        "h264low": Path(writeTestFile(str(folder / "low.mp4"), width=320, height=240)),
        "high": Path(writeTestFile(str(folder / "high.mp4"), seconds=0.5, profile="high")),
        # MPEG-TS: streamable over plain HTTP, Annex B with the parameter sets in-band.
        "ts": Path(writeTestFile(str(folder / "clip.ts"), width=320, height=240)),
    }


async def framesFor(stream: VideoStream, seconds: float) -> list[Any]:
    items = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        items.append(await asyncio.wait_for(stream.__anext__(), 5))
    return items


async def test_numpy_frames_pushed_at_30_fps_arrive_with_their_content(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    source = VideoSource(320, 240)
    pushed = {"count": 0}

    async def push() -> None:
        # A blue-ish RGB picture with the frame number as a barcode, at 30 fps.
        started = time.monotonic()
        while True:
            image = np.empty((240, 320, 3), np.uint8)
            image[:] = (40, 90, 200)
            drawFrameNumber(image, pushed["count"])
            source.captureFrame(image)
            pushed["count"] += 1
            await asyncio.sleep(max(0.0, started + pushed["count"] / 30 - time.monotonic()))

    pusher = asyncio.ensure_future(push())
    try:
        producer = await publisher.produce(source)
        consumer = await consumerOf(subscriber, producer.id)
        async with VideoStream(consumer.track, format="rgb24") as stream:
            await framesFor(stream, 1.0)  # past the first key frame
            items = await framesFor(stream, 3.0)
    finally:
        pusher.cancel()
    luma = [readFrameNumberFromLuma(item.data.mean(axis=2)) for item in items]
    assert luma == sorted(luma) and len(set(luma)) == len(luma), luma
    assert len(items) >= 0.8 * 3 * 30, len(items)  # 30 fps arrive (newest-frame reads)
    assert max(b - a for a, b in itertools.pairwise(luma)) <= 3, luma
    body = items[-1].data[40:, :, :].reshape(-1, 3).mean(axis=0)
    assert np.allclose(body, (40, 90, 200), atol=12), body  # the picture's colour survived
    assert (items[-1].width, items[-1].height) == (320, 240)
    rtp = [item.rtpTimestamp for item in items]
    assert all(b > a for a, b in itertools.pairwise(rtp))
    # Capture times from the router's sender reports (about one a second for video): on our
    # clock, a little before each frame was taken here, and as far apart as the RTP times.
    timed = [item for item in items if item.captureTime is not None]
    assert len(timed) >= len(items) // 2, (len(timed), len(items))
    delays = [item.receivedAt - item.captureTime for item in timed]
    assert all(-0.01 < delay < 0.5 for delay in delays), delays
    for a, b in itertools.pairwise(timed):
        media = (b.rtpTimestamp - a.rtpTimestamp) / 90000  # type: ignore[operator]
        assert abs((b.captureTime - a.captureTime) - media) < 0.03, (a, b)  # type: ignore[operator]


async def test_audio_pushed_in_10_ms_chunks_at_16_khz_decodes_as_that_signal(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    source = AudioSource(16000, 1, queueMs=200)
    frequency, amplitude = 440.0, 0.4

    async def push() -> None:
        position = 0
        while True:  # back-pressure paces this loop: captureFrame waits while the queue is full
            t = (np.arange(160) + position) / 16000
            position += 160
            chunk = (amplitude * np.sin(2 * math.pi * frequency * t)).astype(np.float32)
            await source.captureFrame(chunk)

    pusher = asyncio.ensure_future(push())
    try:
        producer = await publisher.produce(source)
        consumer = await consumerOf(subscriber, producer.id)
        stream = AudioStream(consumer.track, 16000, 1, 20)
        items = []
        async for item in stream:
            items.append(item)
            if len(items) >= 150:  # 3 s
                break
        await stream.aclose()
    finally:
        pusher.cancel()
    assert {item.data.shape for item in items} == {(320, 1)}
    assert {item.samples for item in items} == {320}
    signal = np.concatenate([item.data[:, 0] for item in items[50:]]).astype(float) / 32767
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    peak = np.argmax(spectrum) * 16000 / len(signal)
    assert abs(peak - frequency) < 5, peak
    rms = float(np.sqrt(np.mean(signal**2)))
    assert 0.7 * amplitude / math.sqrt(2) < rms < 1.3 * amplitude / math.sqrt(2), rms
    steps = {b.rtpTimestamp - a.rtpTimestamp for a, b in itertools.pairwise(items)}  # type: ignore[operator]
    assert steps == {960}, steps  # 20 ms of the 48 kHz RTP clock per item
    assert source.samplesDelivered > 3 * 16000


@pytest.fixture
def openedEncoders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every codec this process opens to write (encoders): none for passthrough."""
    opened: list[str] = []
    create = av.CodecContext.create

    def recording(name: Any, mode: Any = "r") -> Any:
        if mode == "w":
            opened.append(str(name))
        return create(name, mode)

    monkeypatch.setattr(av.CodecContext, "create", recording)
    return opened


async def test_an_h264_file_passes_through_to_a_consumer_with_no_encoder(
    peers: tuple[RoomClient, RoomClient], media: dict[str, Path], openedEncoders: list[str]
) -> None:
    publisher, subscriber = peers
    player = EncodedMediaPlayer(media["h264"], loop=True)
    assert player.video is not None and player.audio is not None
    video = await publisher.produce(player.video)
    audio = await publisher.produce(player.audio)
    assert video.rtpParameters["codecs"][0]["mimeType"] == "video/H264"
    consumer = await consumerOf(subscriber, video.id)
    audioConsumer = await consumerOf(subscriber, audio.id)
    async with VideoStream(consumer.track, format="gray") as stream:
        items = await framesFor(stream, 4.0)  # the 3 s file, looping
    numbers = [readFrameNumberFromLuma(item.data) for item in items]
    assert len(items) >= 60, len(items)
    assert (items[-1].width, items[-1].height) == (640, 480)
    # In file order (0..89, then again from 0 after the loop), never scrambled.
    steps = [(b - a) % 90 for a, b in itertools.pairwise(numbers)]
    assert all(1 <= s <= 3 for s in steps), numbers
    async with AudioStream(audioConsumer.track, 16000, 1, 20) as sound:
        chunks = [item.data[:, 0] async for item in _take(sound, 50)]
    signal = np.concatenate(chunks).astype(float)
    peak = np.argmax(np.abs(np.fft.rfft(signal))) * 16000 / len(signal)
    assert abs(peak - 440) < 10, peak
    streams = await routerStreams(publisher, video)
    assert [s["score"] for s in streams.values()] == [10]
    stats = [s for s in (await video.getStats()).values() if s["type"] == "outbound-rtp"]
    assert stats[0]["encoderImplementation"] == "passthrough"
    assert openedEncoders == [], openedEncoders


async def _take(stream: AudioStream, count: int) -> AsyncIterator[Any]:
    async for item in stream:
        yield item
        count -= 1
        if count <= 0:
            return


async def test_two_renditions_are_simulcast_layers_at_the_router(
    peers: tuple[RoomClient, RoomClient], media: dict[str, Path]
) -> None:
    publisher, subscriber = peers
    source = EncodedVideoSource(media["h264low"], media["h264"], loop=True)
    producer = await publisher.produce(source)
    assert [e["rid"] for e in producer.rtpParameters["encodings"]] == ["r0", "r1"]
    # The renditions have no temporal layers, and the producer says so.
    assert {e.get("scalabilityMode") for e in producer.rtpParameters["encodings"]} == {"L1T1"}

    async def bothScored() -> bool:
        streams = await routerStreams(publisher, producer)
        return sorted(streams) == ["r0", "r1"] and all(s["score"] > 0 for s in streams.values())

    await waitFor(bothScored, 10, "both renditions at the router")
    consumer = await consumerOf(subscriber, producer.id)
    async with VideoStream(consumer.track, format="gray") as stream:
        # Both estimates start low and probe up, as libwebrtc's do: ours (300 kbps, paced,
        # so the unadaptable top rendition waits for the probes) and the router's toward
        # the consumer. The router then moves to the top layer on its next key frame.
        sizes: set[tuple[int, int]] = set()
        for _ in range(6):
            sizes |= {(item.width, item.height) for item in await framesFor(stream, 1.0)}
            if (640, 480) in sizes:
                break
        assert (640, 480) in sizes
        await subscriber.setConsumerPreferredLayers(consumer, 0)

        async def onTheLowLayer() -> bool:
            return (subscriber.consumerLayers.get(consumer.id) or {}).get("spatialLayer") == 0

        # mediasoup switches on a key frame of the layer (the files have one a second).
        await waitFor(onTheLowLayer, 10, "the switch to the low rendition")
        await framesFor(stream, 0.5)
        items = await framesFor(stream, 1.0)
    assert {(item.width, item.height) for item in items} == {(320, 240)}


async def test_a_profile_the_router_lacks_is_refused_and_the_transport_goes_on(
    peers: tuple[RoomClient, RoomClient], media: dict[str, Path]
) -> None:
    publisher, subscriber = peers
    with pytest.raises(UnsupportedError, match=r"\(High\).*none has that profile"):
        await publisher.produce(EncodedVideoSource(media["high"]))
    audio = await publisher.produce(EncodedAudioSource(media["h264"], loop=True))
    await consumerOf(subscriber, audio.id)


async def test_a_stream_url_is_demuxed_in_a_thread(media: dict[str, Path]) -> None:
    """A network source (here MPEG-TS over HTTP from 127.0.0.1) is read in a thread as packets
    come; its profile comes from the first in-band SPS."""
    import functools
    import http.server
    import threading

    from aiortc.mediastreams import MediaStreamError

    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(media["ts"].parent)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{media['ts'].name}"
        source = EncodedVideoSource(url)
        assert source.encodedStream.mimeType == "video/H264"
        assert (source.encodedStream.profileLevelId or "")[:2] == "42"
        packets = []
        with pytest.raises(MediaStreamError):
            while True:
                packets.append(await asyncio.wait_for(source.recv(), 10))
        assert len(packets) == 90 and packets[0].keyFrame
        steps = {round((b.timestamp - a.timestamp) * 30) for a, b in itertools.pairwise(packets)}
        assert steps == {1}
        assert all(h264StartsWithSps(p.data) for p in packets if p.keyFrame)
        await asyncio.sleep(0.1)
        assert not any(t.name.startswith("msc-demux") for t in threading.enumerate())
    finally:
        server.shutdown()
        server.server_close()
