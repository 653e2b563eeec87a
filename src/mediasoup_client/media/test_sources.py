"""Synthetic aiortc tracks: a moving video pattern and a tone (or silence).

Both pace themselves in real time like aiortc's ``VideoStreamTrack`` (``paced=True``), or run
``speed`` times faster, or not at all (``paced=False``: every ``recv()`` returns the next frame
at once, for code that sets its own pace). Frame timestamps always describe media time at the
nominal rate, whatever the pacing.

The video frame number is drawn as a 16-bit barcode in the top rows (``readFrameNumber`` reads
it back from a decoded frame), so a receiver can check order, loss and latency.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK_RATE = 90000
_BARCODE_BITS = 16


class _Pacer:
    """Sleeps until media time ``t`` (seconds) is due, ``speed`` times faster than real.
    ``clock`` and ``sleep`` are time.monotonic and asyncio.sleep unless a test injects its own."""

    def __init__(
        self,
        paced: bool,
        speed: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._paced = paced
        self._speed = speed
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None

    async def wait(self, mediaTime: float) -> None:
        if not self._paced:
            # Still yield, so a reader looping on recv() cannot starve the event loop.
            await self._sleep(0)
            return
        now = self._clock()
        if self._start is None:
            self._start = now - mediaTime / self._speed
        delay = self._start + mediaTime / self._speed - now
        await self._sleep(max(0.0, delay))


class PatternVideoTrack(MediaStreamTrack):
    """A moving, textured yuv420p pattern at ``fps`` (enough detail that encoders need their
    bitrate), with the frame number as a barcode."""

    kind = "video"

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30,
        *,
        paced: bool = True,
        speed: float = 1.0,
        seed: int = 1,
        loop: int | None = None,
    ) -> None:
        """``loop``: the pictures (barcode included) repeat every ``loop`` frames, as a file
        played in a loop would; timestamps keep increasing."""
        super().__init__()
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError("width and height must be even and at least 16")
        if loop is not None and loop < 1:
            raise ValueError("loop must be at least 1 frame")
        self._loopFrames = loop
        self.width = width
        self.height = height
        self.fps = fps
        self._pacer = _Pacer(paced, speed)
        self._index = 0
        rng = np.random.default_rng(seed)
        # Texture twice the frame size, so a moving window over it never wraps visibly.
        # Coarse (8x8-pixel) noise: detail like a real scene, not incompressible static.
        coarse = rng.integers(0, 80, size=(height // 4 + 1, width // 4 + 1), dtype=np.uint8)
        self._texture = np.kron(coarse, np.ones((8, 8), dtype=np.uint8))[: height * 2, : width * 2]
        yy, xx = np.mgrid[0:height, 0:width]
        self._gradient = (
            (xx * 255 // max(1, width - 1) + yy * 255 // max(1, height - 1)) // 2
        ).astype(np.uint8)
        self._chroma_u = np.full((height // 2, width // 2), 128, dtype=np.uint8)
        self._chroma_v = np.full((height // 2, width // 2), 128, dtype=np.uint8)
        self._box = max(8, min(width, height) // 6)

    @property
    def framesGenerated(self) -> int:
        return self._index

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait(self._index / self.fps)
        if self.readyState != "live":
            raise MediaStreamError
        return self.nextFrame()

    def nextFrame(self) -> av.VideoFrame:
        """The next frame at once, whatever the pacing (for code that sets its own pace)."""
        index = self._index
        self._index += 1
        frame = self.frameAt(index if self._loopFrames is None else index % self._loopFrames)
        frame.pts = round(index * VIDEO_CLOCK_RATE / self.fps)
        return frame

    def frameAt(self, index: int) -> av.VideoFrame:
        """Frame number ``index`` (the same pixels every time: a receiver can compare what it
        decoded with the source)."""
        frame = av.VideoFrame.from_ndarray(self._draw(index), format="yuv420p")
        frame.pts = round(index * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return frame

    def _draw(self, index: int) -> np.ndarray:
        w, h = self.width, self.height
        ox = (index * 3) % w
        oy = (index * 2) % h
        y = self._texture[oy : oy + h, ox : ox + w] + (self._gradient // 2)
        # A bright box bouncing across the frame.
        span_x = max(1, w - self._box)
        span_y = max(1, h - self._box)
        bx = abs((index * 7) % (2 * span_x) - span_x)
        by = abs((index * 5) % (2 * span_y) - span_y)
        y[by : by + self._box, bx : bx + self._box] = 235
        self._drawBarcode(y, index)
        shade = np.uint8(64 + (index * 2) % 128)
        self._chroma_u[:, :] = shade
        self._chroma_v[:, :] = 255 - shade
        return np.concatenate(
            [y.reshape(-1), self._chroma_u.reshape(-1), self._chroma_v.reshape(-1)]
        ).reshape(h * 3 // 2, w)

    def _drawBarcode(self, y: np.ndarray, index: int) -> None:
        drawFrameNumber(y, index)


def _barcodeRows(height: int) -> int:
    # Proportional to the height, so a scaled-down copy (a simulcast layer) still reads.
    return max(2, height // 30)


def drawFrameNumber(image: np.ndarray, index: int) -> None:
    """Draw ``index`` as the 16-bit barcode into the top rows of ``image`` (a luma plane, or an
    (h, w, channels) RGB-like array: every channel gets the same value)."""
    height, width = image.shape[0], image.shape[1]
    block = width // _BARCODE_BITS
    rows = _barcodeRows(height)
    for bit in range(_BARCODE_BITS):
        value = 235 if (index >> bit) & 1 else 16
        image[0:rows, bit * block : (bit + 1) * block] = value


def readFrameNumber(frame: av.VideoFrame) -> int:
    """The frame number a ``PatternVideoTrack`` drew into ``frame`` (after decoding)."""
    return readFrameNumberFromLuma(frame.to_ndarray(format="gray"))


def readFrameNumberFromLuma(luma: np.ndarray) -> int:
    """The barcode's number in a decoded luma plane (or a gray image), as ``readFrameNumber``."""
    width = luma.shape[1]
    block = width // _BARCODE_BITS
    rows = _barcodeRows(luma.shape[0])
    number = 0
    for bit in range(_BARCODE_BITS):
        sample = luma[
            rows // 4 : rows - rows // 4, bit * block + block // 4 : (bit + 1) * block - block // 4
        ]
        if sample.size and float(sample.mean()) > 128:
            number |= 1 << bit
    return number


class ToneAudioTrack(MediaStreamTrack):
    """A sine tone (``channels`` 2: the right channel a fifth higher, so it is really stereo),
    or digital silence while ``silent`` is true (it can be switched at any time)."""

    kind = "audio"

    def __init__(
        self,
        frequency: float = 440.0,
        sample_rate: int = 48000,
        channels: int = 1,
        silent: bool = False,
        *,
        paced: bool = True,
        speed: float = 1.0,
        ptime: float = 0.02,
        amplitude: float = 0.3,
    ) -> None:
        super().__init__()
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self.frequency = frequency
        self.sample_rate = sample_rate
        self.channels = channels
        self.silent = silent
        self.amplitude = amplitude
        self._samples_per_frame = max(1, round(sample_rate * ptime))
        self._pacer = _Pacer(paced, speed)
        self._position = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait(self._position / self.sample_rate)
        if self.readyState != "live":
            raise MediaStreamError
        return self.nextFrame()

    def nextFrame(self) -> av.AudioFrame:
        """The next frame at once, whatever the pacing (for code that sets its own pace)."""
        start = self._position
        count = self._samples_per_frame
        self._position += count
        layout = "stereo" if self.channels == 2 else "mono"
        if self.silent:
            data = np.zeros((1, count * self.channels), dtype=np.int16)
        else:
            t = (np.arange(start, start + count) / self.sample_rate).astype(np.float64)
            scale = 32767 * self.amplitude
            left = np.sin(2 * math.pi * self.frequency * t) * scale
            if self.channels == 2:
                right = np.sin(2 * math.pi * self.frequency * 1.5 * t) * scale
                data = np.stack([left, right], axis=1).reshape(1, -1).astype(np.int16)
            else:
                data = left.reshape(1, -1).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
        frame.sample_rate = self.sample_rate
        frame.pts = start
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        return frame


def writeTestFile(
    path: str,
    *,
    codec: str = "h264",
    width: int = 320,
    height: int = 240,
    fps: int = 30,
    seconds: float = 3.0,
    gop: int = 30,
    profile: str = "baseline",
    bframes: int = 0,
    bitrate: int = 600_000,
    audio: bool = False,
) -> str:
    """Write ``seconds`` of the moving pattern (frame numbers as barcodes) to ``path`` with PyAV:
    ``codec`` h264 (libx264, ``profile``, ``bframes``) or vp8 (libvpx), a key frame every
    ``gop`` frames; ``audio`` adds a 440 Hz Opus tone. The container follows the extension
    (.mp4, .mkv, .webm, .ivf...). For tests, examples and benchmarks: media is made, never
    committed."""
    container: Any = av.open(path, "w")
    try:
        encoder = {"h264": "libx264", "vp8": "libvpx"}[codec]
        stream: Any = container.add_stream(encoder, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = bitrate
        options = {"g": str(gop), "keyint_min": str(gop)}
        if codec == "h264":
            options.update(
                {"profile": profile, "bf": str(bframes), "preset": "veryfast", "sc_threshold": "0"}
            )
        stream.codec_context.options = options
        tone: Any = None
        if audio:
            tone = container.add_stream("libopus", rate=48000)
            tone.layout = "mono"
        pattern = PatternVideoTrack(width, height, fps, paced=False)
        sound = ToneAudioTrack(440, 48000, 1, paced=False)
        frames = round(seconds * fps)
        audio_frames = round(seconds * 50)
        for index in range(frames):
            frame = pattern.nextFrame()
            frame.pts = index
            frame.time_base = fractions.Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
            while tone is not None and sound._position < (index + 1) * 48000 / fps:
                if sound._position >= audio_frames * 960:
                    break
                for packet in tone.encode(sound.nextFrame()):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if tone is not None:
            for packet in tone.encode(None):
                container.mux(packet)
    finally:
        container.close()
    return path
