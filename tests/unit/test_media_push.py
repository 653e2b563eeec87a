"""VideoSource and AudioSource: what the application pushes is what recv() delivers, in every
accepted format, with its timestamps; bad input is a TypeError (or UnsupportedError) naming the
problem and the source keeps working; a disabled source delivers black or silence. The audio
clock is a fake one: nothing sleeps."""

from __future__ import annotations

import asyncio
import fractions
from typing import Any

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from mediasoup_client import InvalidStateError, Transport, UnsupportedError
from mediasoup_client.media import AudioSource, VideoSource
from mediasoup_client.media.audio_source import SampleQueue

W, H = 64, 48


def rgb(color: tuple[int, int, int]) -> np.ndarray[Any, Any]:
    return np.tile(np.array(color, dtype=np.uint8), (H, W, 1))


def i420(y: int, u: int, v: int) -> np.ndarray[Any, Any]:
    planes = np.empty((H * 3 // 2, W), dtype=np.uint8)
    planes[:H] = y
    chroma = planes[H:].reshape(-1)
    chroma[: W * H // 4] = u
    chroma[W * H // 4 :] = v
    return planes


def nv12(y: int, u: int, v: int) -> np.ndarray[Any, Any]:
    planes = np.empty((H * 3 // 2, W), dtype=np.uint8)
    planes[:H] = y
    planes[H:, 0::2] = u
    planes[H:, 1::2] = v
    return planes


def meanRgb(frame: av.VideoFrame) -> tuple[int, ...]:
    return tuple(round(c) for c in frame.to_ndarray(format="rgb24").mean(axis=(0, 1)))


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


RED = (200, 30, 40)


@pytest.mark.parametrize(
    ("array", "format"),
    [
        (rgb(RED), None),
        (rgb(RED), "RGB"),
        (rgb(RED)[..., ::-1], "bgr24"),
        (np.dstack([rgb(RED), np.full((H, W), 255, np.uint8)]), None),  # RGBA
        (np.dstack([rgb(RED)[..., ::-1], np.full((H, W), 255, np.uint8)]), "BGRA"),
    ],
)
async def test_rgb_like_arrays_arrive_with_their_colour(array: Any, format: str | None) -> None:
    source = VideoSource(W, H)
    source.captureFrame(array, format=format)
    frame = await source.recv()
    assert (frame.width, frame.height) == (W, H)
    assert close(meanRgb(frame), RED)


@pytest.mark.parametrize("make,format", [(i420, None), (i420, "I420"), (nv12, "NV12")])
async def test_yuv_arrays_arrive_with_their_planes(make: Any, format: str | None) -> None:
    source = VideoSource(W, H)
    source.captureFrame(make(81, 90, 240), format=format)  # a red in BT.601 limited range
    frame = await source.recv()
    planes = frame.reformat(format="yuv420p").to_ndarray()
    assert int(planes[:H].mean()) == 81
    assert int(planes[H:].reshape(-1)[: W * H // 4].mean()) == 90
    assert int(planes[H:].reshape(-1)[W * H // 4 :].mean()) == 240


async def test_an_av_frame_is_copied_and_timestamps_come_from_the_capture_times() -> None:
    source = VideoSource(W, H)
    original = av.VideoFrame.from_ndarray(rgb(RED), format="rgb24")
    source.captureFrame(original, timestamp=10.0)
    first = await source.recv()
    source.captureFrame(rgb(RED), timestamp=10.5)
    second = await source.recv()
    assert first is not original and original.pts is None
    assert (first.pts, second.pts) == (0, 45000)
    assert first.time_base == second.time_base == fractions.Fraction(1, 90000)


async def test_a_slow_reader_gets_the_newest_frame_and_the_others_are_counted() -> None:
    source = VideoSource(W, H)
    for index, color in enumerate([(10, 10, 10), (100, 100, 100), RED]):
        source.captureFrame(rgb(color), timestamp=float(index))
    frame = await source.recv()
    assert close(meanRgb(frame), RED) and frame.pts == 2 * 90000
    assert (source.framesCaptured, source.framesDelivered, source.framesDropped) == (3, 1, 2)


async def test_recv_waits_for_the_next_capture() -> None:
    source = VideoSource(W, H)
    waiting = asyncio.ensure_future(source.recv())
    await asyncio.sleep(0)
    assert not waiting.done()
    source.captureFrame(rgb(RED))
    assert close(meanRgb(await waiting), RED)


async def test_a_capture_from_another_thread_wakes_the_reader() -> None:
    source = VideoSource(W, H)
    waiting = asyncio.ensure_future(source.recv())
    await asyncio.sleep(0)
    await asyncio.get_running_loop().run_in_executor(None, source.captureFrame, rgb(RED))
    assert close(meanRgb(await asyncio.wait_for(waiting, 5)), RED)


@pytest.mark.parametrize(
    ("frame", "format", "error", "words"),
    [
        ("not an array", None, TypeError, "numpy array"),
        (rgb(RED).astype(np.float32), None, TypeError, "dtype uint8, not float32"),
        (np.zeros((H, W, 2), np.uint8), None, TypeError, "shape (48, 64, 2)"),
        (np.zeros((H, W), np.uint8), None, TypeError, "must have shape (72, 64)"),
        (rgb(RED)[:, :32], "rgb24", TypeError, "must have shape (48, 64, 3)"),
        (rgb(RED), "yuv444p", UnsupportedError, "unknown pixel format 'yuv444p'"),
        (av.VideoFrame(32, 24, "yuv420p"), None, TypeError, "frame is 32x24, the source is 64x48"),
    ],
)
async def test_bad_frames_name_the_problem_and_the_source_keeps_working(
    frame: Any, format: str | None, error: type[Exception], words: str
) -> None:
    source = VideoSource(W, H)
    with pytest.raises(error) as raised:
        source.captureFrame(frame, format=format)
    assert words in str(raised.value)
    source.captureFrame(rgb(RED))
    assert close(meanRgb(await source.recv()), RED)


async def test_timestamps_going_backwards_are_refused() -> None:
    source = VideoSource(W, H)
    source.captureFrame(rgb(RED), timestamp=5.0)
    with pytest.raises(TypeError, match="goes backwards"):
        source.captureFrame(rgb(RED), timestamp=4.9)
    with pytest.raises(TypeError, match="seconds"):
        source.captureFrame(rgb(RED), timestamp="5")  # type: ignore[arg-type]
    source.captureFrame(rgb(RED), timestamp=5.1)
    assert (await source.recv()).pts == 9000


@pytest.mark.parametrize(("width", "height"), [(63, 48), (64, 0), (64.0, 48)])
def test_a_source_size_must_be_even_positive_ints(width: Any, height: Any) -> None:
    with pytest.raises(TypeError):
        VideoSource(width, height)


async def test_a_disabled_source_delivers_black_frames() -> None:
    source = VideoSource(W, H)
    source.enabled = False
    source.captureFrame(rgb(RED), timestamp=1.0)
    frame = await source.recv()
    assert frame.pts == 0
    planes = frame.to_ndarray()
    assert int(planes[:H].max()) == 16 and int(planes[H:].min()) == 128
    source.enabled = True
    source.captureFrame(rgb(RED), timestamp=2.0)
    assert close(meanRgb(await source.recv()), RED)


async def test_a_stopped_source_ends_its_reader_and_refuses_frames() -> None:
    source = VideoSource(W, H)
    waiting = asyncio.ensure_future(source.recv())
    await asyncio.sleep(0)
    source.stop()
    with pytest.raises(MediaStreamError):
        await waiting
    with pytest.raises(InvalidStateError):
        source.captureFrame(rgb(RED))


async def test_pausing_a_producer_disables_a_source(sendTransport: Transport) -> None:
    source = VideoSource(W, H)
    producer = await sendTransport.produce(track=source)
    producer.pause()
    assert source.enabled is False
    producer.resume()
    assert source.enabled is True
    await producer._background.drain()


# Audio.


class FakeTime:
    """The audio source's clock: ``sleep`` moves time instead of waiting."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def audioSource(*args: Any, **kwargs: Any) -> tuple[AudioSource, FakeTime]:
    source = AudioSource(*args, **kwargs)
    clock = FakeTime()
    source._now = clock.monotonic
    source._sleep = clock.sleep
    return source, clock


def samplesOf(frame: av.AudioFrame, channels: int = 1) -> np.ndarray[Any, Any]:
    data: np.ndarray[Any, Any] = frame.to_ndarray().reshape(-1, channels)
    return data


async def test_samples_of_any_length_leave_in_frames_of_frame_ms_in_real_time() -> None:
    source, clock = audioSource(16000, 1, frameMs=20)
    ramp = np.arange(1000, dtype=np.int16)
    await source.captureFrame(ramp[:130])  # odd sizes: 130 + 400 + 470
    await source.captureFrame(ramp[130:530])
    await source.captureFrame(ramp[530:])
    frames = [await source.recv() for _ in range(4)]
    assert [f.samples for f in frames] == [320] * 4
    assert [f.pts for f in frames] == [0, 320, 640, 960]
    assert all(f.sample_rate == 16000 and f.format.name == "s16" for f in frames)
    joined = np.concatenate([samplesOf(f)[:, 0] for f in frames])
    assert (joined[:1000] == ramp).all() and not joined[1000:].any()  # then silence
    assert clock.slept == pytest.approx([0.02] * 3)
    assert (source.samplesDelivered, source.silenceSamples) == (1000, 280)


async def test_float32_stereo_is_converted_and_wrong_input_is_named() -> None:
    source, _ = audioSource(48000, 2, frameMs=10)
    stereo = np.stack([np.full(480, 0.5), np.full(480, -1.5)], axis=1).astype(np.float32)
    await source.captureFrame(stereo)
    frame = await source.recv()
    data = samplesOf(frame, 2)
    assert frame.layout.name == "stereo" and data.shape == (480, 2)
    assert (data[:, 0] == 16383).all() and (data[:, 1] == -32767).all()  # clipped
    for bad, words in [
        (np.zeros(480, np.float64), "int16 or float32, not float64"),
        (np.zeros(480, np.int16), "must have shape (n, 2)"),
        (np.zeros((480, 3), np.int16), "got (480, 3)"),
        ([0, 1, 2], "numpy array"),
    ]:
        with pytest.raises(TypeError) as raised:
            await source.captureFrame(bad)
        assert words in str(raised.value)
    await source.captureFrame(stereo)  # still working
    assert samplesOf(await source.recv(), 2)[0, 0] == 16383


async def test_a_full_queue_makes_capture_wait_until_the_clock_takes_samples() -> None:
    source, _ = audioSource(16000, 1, queueMs=40, frameMs=20)  # 640 samples
    pushing = asyncio.ensure_future(source.captureFrame(np.ones(1000, np.int16)))
    await asyncio.sleep(0)
    assert not pushing.done() and source.queuedSamples == 640
    await source.recv()  # 320 leave, 320 more come in, 40 still wait
    await asyncio.sleep(0)
    assert not pushing.done() and source.queuedSamples == 640
    await source.recv()
    await asyncio.sleep(0)
    assert pushing.done() and source.queuedSamples == 360
    await pushing


async def test_clear_queue_is_barge_in_and_wait_for_playout_returns() -> None:
    source, _ = audioSource(16000, 1, queueMs=100, frameMs=20)
    await source.captureFrame(np.ones(1600, np.int16))
    pushing = asyncio.ensure_future(source.captureFrame(np.ones(800, np.int16)))
    playout = asyncio.ensure_future(source.waitForPlayout())
    await asyncio.sleep(0)
    assert not playout.done() and source.queuedDuration == pytest.approx(0.1)
    source.clearQueue()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert playout.done() and pushing.done()
    assert source.samplesCleared == 1600 and source.queuedSamples == 800  # the waiting push
    frame = await source.recv()
    assert samplesOf(frame)[:, 0].all()


async def test_a_disabled_audio_source_delivers_silence_and_keeps_draining() -> None:
    source, _ = audioSource(16000, 1, frameMs=20)
    await source.captureFrame(np.full(640, 1000, np.int16))
    source.enabled = False
    assert not samplesOf(await source.recv()).any()
    source.enabled = True
    assert (samplesOf(await source.recv()) == 1000).all()
    assert source.queuedSamples == 0


async def test_a_late_reader_does_not_burst_to_catch_up() -> None:
    source, clock = audioSource(16000, 1, frameMs=20)
    await source.recv()
    clock.now += 5.0  # the loop stalled
    await source.recv()
    await source.recv()
    assert clock.slept[-1] == pytest.approx(0.02)


@pytest.mark.parametrize(
    "args",
    [(44100, 3), (7000, 1), (16000, 1, 10), (44100, 1, 100, 7), (22050, 1, 1000, 1)],
)
def test_audio_source_settings_are_checked(args: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError):
        if len(args) == 4:
            AudioSource(*args[:3], frameMs=args[3])
        else:
            AudioSource(*args)


async def test_a_stopped_audio_source_ends_and_refuses_samples() -> None:
    source, _ = audioSource(16000, 1)
    source.stop()
    with pytest.raises(MediaStreamError):
        await source.recv()
    with pytest.raises(InvalidStateError):
        await source.captureFrame(np.zeros(10, np.int16))


def test_sample_queue_pads_with_silence_and_splits_chunks() -> None:
    queue = SampleQueue(10, 1)
    assert queue.push(np.arange(1, 8, dtype=np.int16).reshape(-1, 1)) == 7
    assert queue.push(np.arange(1, 8, dtype=np.int16).reshape(-1, 1)) == 3
    out, real = queue.pop(4)
    assert real == 4 and out[:, 0].tolist() == [1, 2, 3, 4]
    out, real = queue.pop(8)
    assert real == 6 and out[:, 0].tolist() == [5, 6, 7, 1, 2, 3, 0, 0]
    assert queue.clear() == 0
