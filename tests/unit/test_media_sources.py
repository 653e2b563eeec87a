"""The synthetic sources: pacing, frame shape, barcode, end of track."""

from __future__ import annotations

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from mediasoup_client.media.test_sources import (
    PatternVideoTrack,
    ToneAudioTrack,
    _Pacer,
    readFrameNumber,
)
from tests.unit.fake_clock import FakeClock


async def test_video_frames_pace_at_the_requested_speed():
    track = PatternVideoTrack(160, 120, 30, speed=3.0)
    clock = FakeClock()
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        clock.advance(delay)

    track._pacer = _Pacer(True, 3.0, clock=clock.now, sleep=sleep)
    started = clock.now()
    frames = [await track.recv() for _ in range(31)]
    assert clock.now() - started == pytest.approx(1.0 / 3.0)  # 1 s of media at 3x
    assert waits[1:] == pytest.approx([1 / 90] * 30)
    assert [f.pts for f in frames[:3]] == [0, 3000, 6000]
    assert float(frames[30].pts * frames[30].time_base) == pytest.approx(1.0)
    assert (frames[0].width, frames[0].height, frames[0].format.name) == (160, 120, "yuv420p")


async def test_unpaced_video_and_barcode_survive_encoding():
    track = PatternVideoTrack(320, 240, 30, paced=False)
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.bit_rate = 500_000
    decoder = av.CodecContext.create("libvpx", "r")
    decoded = []
    for _ in range(12):
        frame = await track.recv()
        frame.pict_type = av.video.frame.PictureType.NONE
        for packet in encoder.encode(frame):
            decoded += decoder.decode(packet)
    assert track.framesGenerated == 12
    assert [readFrameNumber(f) for f in decoded] == list(range(len(decoded)))
    # The picture moves: consecutive frames differ.
    first = await track.recv()
    second = await track.recv()
    assert not np.array_equal(first.to_ndarray(), second.to_ndarray())


async def test_tone_and_silence():
    tone = ToneAudioTrack(440, 48000, 2, paced=False)
    frame = await tone.recv()
    assert (frame.samples, frame.sample_rate, frame.layout.name, frame.format.name) == (
        960,
        48000,
        "stereo",
        "s16",
    )
    samples = frame.to_ndarray().reshape(-1, 2)
    assert np.abs(samples).max() > 8000
    assert not np.array_equal(samples[:, 0], samples[:, 1])  # really stereo
    tone.silent = True
    assert not (await tone.recv()).to_ndarray().any()
    assert (await tone.recv()).pts == 2 * 960


async def test_stopped_sources_raise_media_stream_error():
    for track in (PatternVideoTrack(16, 16, paced=False), ToneAudioTrack(paced=False)):
        await track.recv()
        track.stop()
        with pytest.raises(MediaStreamError):
            await track.recv()


def test_frame_at_regenerates_any_frame_of_the_pattern() -> None:
    track = PatternVideoTrack(64, 48, 30, paced=False)
    frames = [track.nextFrame() for _ in range(5)]
    again = PatternVideoTrack(64, 48, 30, paced=False)
    for index in (3, 0, 4):
        assert np.array_equal(again.frameAt(index).to_ndarray(), frames[index].to_ndarray())
        assert again.frameAt(index).pts == frames[index].pts
        assert readFrameNumber(again.frameAt(index)) == index
    assert not np.array_equal(frames[1].to_ndarray(), frames[2].to_ndarray())


def test_a_looped_pattern_repeats_its_pictures_with_rising_timestamps() -> None:
    track = PatternVideoTrack(64, 48, 30, paced=False, loop=3)
    frames = [track.nextFrame() for _ in range(7)]
    assert [readFrameNumber(f) for f in frames] == [0, 1, 2, 0, 1, 2, 0]
    assert np.array_equal(frames[4].to_ndarray(), frames[1].to_ndarray())
    assert [f.pts for f in frames] == sorted({f.pts for f in frames})
    with pytest.raises(ValueError):
        PatternVideoTrack(64, 48, loop=0)
