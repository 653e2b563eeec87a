"""VideoStream and AudioStream over a track: arrays in the asked format and size, RTP and
media timestamps, newest-frame delivery for a slow video reader, a bounded and counted drop
for a slow audio reader, the end of the track ending the iteration."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import math
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from mediasoup_client import UnsupportedError
from mediasoup_client.media import AudioStream, VideoStream
from mediasoup_client.media.test_sources import PatternVideoTrack, readFrameNumberFromLuma


class ListTrack:
    """A track that delivers ``frames`` (as fast as it is read, or each when ``release``d),
    then ends; ``captureTimeOf`` as a receive track with sender reports has it."""

    def __init__(self, kind: str, frames: list[Any], *, gated: bool = False) -> None:
        self.kind = kind
        self._frames = list(frames)
        self._gate: asyncio.Semaphore | None = asyncio.Semaphore(0) if gated else None
        self.reads = 0

    def release(self, count: int = 1) -> None:
        assert self._gate is not None
        for _ in range(count):
            self._gate.release()

    async def recv(self) -> Any:
        if self._gate is not None:
            await self._gate.acquire()
        await asyncio.sleep(0)
        if not self._frames:
            raise MediaStreamError
        self.reads += 1
        return self._frames.pop(0)

    def captureTimeOf(self, rtpTimestamp: int) -> float:
        return 1_700_000_000 + rtpTimestamp / 90000


def patternFrames(count: int, width: int = 64, height: int = 48) -> list[av.VideoFrame]:
    track = PatternVideoTrack(width, height, 30, paced=False)
    frames = [track.nextFrame() for _ in range(count)]
    track.stop()
    return frames


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("format", "shape"),
    [("rgb24", (48, 64, 3)), ("bgr24", (48, 64, 3)), ("gray", (48, 64)), ("yuv420p", (72, 64))],
)
async def test_video_frames_come_as_arrays_with_their_timestamps(
    format: str, shape: tuple[int, ...]
) -> None:
    frames = patternFrames(3)
    track = ListTrack("video", frames, gated=True)
    stream = VideoStream(track, format=format)
    track.release()
    item = await stream.__anext__()
    assert item.data.shape == shape and item.data.dtype == np.uint8
    assert (item.width, item.height, item.format) == (64, 48, format)
    assert item.rtpTimestamp == 0 and item.timestamp == 0
    assert item.captureTime == 1_700_000_000
    track.release()
    item = await stream.__anext__()
    assert item.rtpTimestamp == 3000 and item.timestamp == pytest.approx(1 / 30)
    if format == "gray":
        assert readFrameNumberFromLuma(item.data) == 1
    await stream.aclose()


async def test_a_slow_video_reader_gets_the_newest_frame() -> None:
    track = ListTrack("video", patternFrames(20))
    stream = VideoStream(track, format="gray")
    while track.reads < 20:
        await settle()
    await settle()
    item = await stream.__anext__()  # the reader comes late: all 20 were read meanwhile
    assert readFrameNumberFromLuma(item.data) == 19
    assert (stream.framesReceived, stream.framesDropped) == (20, 19)
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_the_stream_ends_with_the_track_after_the_last_frame() -> None:
    track = ListTrack("video", patternFrames(3), gated=True)
    numbers = []

    async def read() -> None:
        async for item in VideoStream(track, format="gray"):
            numbers.append(readFrameNumberFromLuma(item.data))

    reading = asyncio.ensure_future(read())
    for _ in range(4):
        track.release()
        await settle()
    await asyncio.wait_for(reading, 5)
    assert numbers == [0, 1, 2]


def test_video_stream_checks_its_arguments() -> None:
    with pytest.raises(UnsupportedError, match="rgba"):
        VideoStream(ListTrack("video", []), format="rgba")
    with pytest.raises(TypeError, match="audio"):
        VideoStream(ListTrack("audio", []))
    with pytest.raises(TypeError, match="recv"):
        VideoStream(object())


def opusLikeFrames(count: int, frequency: float = 440.0) -> list[av.AudioFrame]:
    """What a receiver decodes: 20 ms of 48 kHz stereo s16, pts in RTP ticks."""
    frames = []
    for index in range(count):
        t = (np.arange(960) + index * 960) / 48000
        tone = (np.sin(2 * math.pi * frequency * t) * 10000).astype(np.int16)
        stereo = np.stack([tone, tone], axis=1).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = 5000 + index * 960
        frame.time_base = fractions.Fraction(1, 48000)
        frames.append(frame)
    return frames


async def test_audio_comes_in_items_of_frame_ms_at_the_asked_rate() -> None:
    track = ListTrack("audio", opusLikeFrames(50))
    items = [item async for item in AudioStream(track, 16000, 1, 20)]
    assert all(item.data.shape == (320, 1) and item.samples == 320 for item in items)
    assert all(item.data.dtype == np.int16 and item.sampleRate == 16000 for item in items)
    assert len(items) >= 48  # the resampler keeps a few samples back
    # Timestamps: RTP ticks (48 kHz) of each item's first sample, 20 ms apart.
    steps = {b.rtpTimestamp - a.rtpTimestamp for a, b in itertools.pairwise(items)}  # type: ignore[operator]
    assert steps == {960} and items[0].rtpTimestamp == 5000
    signal = np.concatenate([item.data[:, 0] for item in items[5:]]).astype(float)
    spectrum = np.abs(np.fft.rfft(signal))
    assert np.argmax(spectrum) * 16000 / len(signal) == pytest.approx(440, abs=5)


async def test_stereo_and_other_frame_sizes() -> None:
    track = ListTrack("audio", opusLikeFrames(10))
    items = [item async for item in AudioStream(track, 48000, 2, 10)]
    assert all(item.data.shape == (480, 2) for item in items) and len(items) >= 19


async def test_a_slow_audio_reader_loses_a_bounded_counted_amount_oldest_first() -> None:
    track = ListTrack("audio", opusLikeFrames(100))  # 2 s
    stream = AudioStream(track, 16000, 1, 20, queueMs=200)
    for _ in range(30):
        await settle()
    assert track.reads == 100
    items = [item async for item in stream]
    assert len(items) == 10  # 200 ms kept
    assert stream.framesDropped >= 85
    assert items[-1].rtpTimestamp - items[0].rtpTimestamp == 9 * 960  # type: ignore[operator]


def test_audio_stream_checks_its_arguments() -> None:
    track = ListTrack("audio", [])
    with pytest.raises(TypeError, match="channels"):
        AudioStream(track, 16000, 3)
    with pytest.raises(TypeError, match="whole number"):
        AudioStream(track, 44100, 1, 7)
    with pytest.raises(TypeError, match="video"):
        AudioStream(ListTrack("video", []))
