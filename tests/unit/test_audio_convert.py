"""The one-thread audio converter behind the Opus encoder and AudioStream."""

from __future__ import annotations

import fractions
import os

import av
import numpy as np

from mediasoup_client.media.audio_convert import AudioConverter


def tone(samples: int, rate: int, layout: str = "stereo", fmt: str = "s16") -> av.AudioFrame:
    channels = 2 if layout == "stereo" else 1
    wave = (np.sin(np.arange(samples) / 7) * 8000).astype(np.int16)
    if fmt == "s16":
        data = np.tile(wave, channels).reshape(1, -1)  # packed
    else:  # fltp: a plane per channel
        data = np.tile(wave.astype(np.float32) / 32768, (channels, 1))
    frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
    frame.sample_rate = rate
    frame.pts = 0
    frame.time_base = fractions.Fraction(1, rate)
    return frame


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_converts_rate_layout_and_format_into_frames_of_the_size_asked_for() -> None:
    converter = AudioConverter("s16", "mono", 48000, 960)
    before = threads()
    out: list[av.AudioFrame] = []
    for _ in range(10):  # 10 x 441 samples at 44.1 kHz = 100 ms
        out += converter.convert(tone(441, 44100, "stereo", "fltp"))
    assert threads() == before  # no thread pool for the graph
    assert out and all(f.samples == 960 for f in out)
    assert {(f.format.name, f.layout.name, f.sample_rate) for f in out} == {("s16", "mono", 48000)}
    # What is not out yet waits for the next frame: 100 ms in, at most one frame short.
    assert 4800 - 960 <= sum(f.samples for f in out) <= 4800


def test_a_frame_already_right_passes_untouched_and_a_new_input_format_starts_over() -> None:
    converter = AudioConverter("s16", "stereo", 48000)
    frame = tone(960, 48000)
    assert converter.convert(frame) == [frame]
    # PyAV's resampler raises on a change of input; a track may change format mid-stream.
    [converted] = converter.convert(tone(480, 24000, "mono"))
    assert (converted.format.name, converted.layout.name, converted.sample_rate) == (
        "s16", "stereo", 48000,
    )  # fmt: skip
    assert converter.convert(frame) == [frame]
