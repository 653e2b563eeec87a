"""Decoders through PyAV (FFmpeg's VP8, VP9 and H264 decoders; libopus).

A decoder is used by one consumer at a time (video ones from a worker thread: PyAV releases
the GIL while decoding). Every frame that comes out carries the pts it went in with, in the
RTP clock's time base.
"""

from __future__ import annotations

import fractions
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_SAMPLE_RATE = 48000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_SAMPLE_RATE)

_VIDEO_DECODERS = {"video/vp8": "vp8", "video/vp9": "vp9", "video/h264": "h264"}

DecodeError = av.FFmpegError


class VideoDecoder:
    def __init__(self, mimeType: str) -> None:
        name = _VIDEO_DECODERS.get(mimeType.lower())
        if name is None:
            raise ValueError(f"no decoder for {mimeType}")
        self._context: Any = av.CodecContext.create(name, "r")
        self.implementation = f"FFmpeg ({self._context.codec.name})"

    def decode(self, data: bytes, pts: int) -> list[av.VideoFrame]:
        """Decode one frame; raises ``DecodeError`` for data the decoder rejects."""
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = VIDEO_TIME_BASE
        frames: list[av.VideoFrame] = []
        for frame in self._context.decode(packet):
            frame.pts = pts
            frame.time_base = VIDEO_TIME_BASE
            frames.append(frame)
        return frames


class AudioDecoder:
    """Opus to packed signed 16-bit stereo at 48 kHz (what aiortc's receiver delivered)."""

    def __init__(self) -> None:
        context: Any = av.CodecContext.create("libopus", "r")
        context.format = "s16"
        context.layout = "stereo"
        context.sample_rate = AUDIO_SAMPLE_RATE
        self._context = context
        self.implementation = "libopus"

    def decode(self, data: bytes, pts: int) -> list[av.AudioFrame]:
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = AUDIO_TIME_BASE
        frames: list[av.AudioFrame] = []
        for frame in self._context.decode(packet):
            frame.pts = pts
            frame.time_base = AUDIO_TIME_BASE
            pts += frame.samples
            frames.append(frame)
        return frames


def silence(samples: int, pts: int) -> av.AudioFrame:
    """``samples`` of stereo s16 silence (what fills a lost packet's place)."""
    frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = AUDIO_SAMPLE_RATE
    frame.pts = pts
    frame.time_base = AUDIO_TIME_BASE
    return frame


_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def decodeExecutor() -> ThreadPoolExecutor:
    """Threads for video decoding: each consumer has at most one frame in decoding at a time,
    so the pool's queue stays bounded by the number of consumers."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="msc-video-decode")
        return _executor
