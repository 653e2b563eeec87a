"""PyAV encoders for the send path: VP8/VP9 (libvpx), H264 (libx264) and Opus (libopus).

Every method here runs in a worker thread (PyAV releases the GIL while encoding), one call at a
time per encoder. libvpx (VP8, VP9) keeps the bitrate it was opened with (measured: PyAV's
``bit_rate`` set on the open encoder changes nothing), so there a new bitrate or resolution
means a new encoder, whose first frame is a key frame: the caller decides how rarely that
happens. libx264 follows a new ``bit_rate`` on the open encoder (FFmpeg reconfigures x264
between frames, no key frame) up to the rate it was opened with (measured: opened with a VBV
maximum above its bitrate, it ignored the changes; with the two equal, it follows within a
few frames), so only rises past the opening rate need a new encoder.
"""

from __future__ import annotations

import fractions
import functools
import math
import os
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from ....media.audio_convert import AudioConverter

VIDEO_CLOCK_RATE = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
OPUS_SAMPLE_RATE = 48000
OPUS_TIME_BASE = fractions.Fraction(1, OPUS_SAMPLE_RATE)
OPUS_FRAME_DURATIONS = (10, 20, 40, 60)

# An audio frame quieter than this (dBov, as the audio-level extension counts: 0 loudest,
# 127 silence) counts as silence for DTX.
SILENCE_LEVEL = 60

_PICTURE_TYPE = av.video.frame.PictureType


@functools.cache
def vp9Available() -> bool:
    """Whether this PyAV build can encode VP9 (libvpx-vp9)."""
    try:
        av.codec.Codec("libvpx-vp9", "w")
    except Exception:
        return False
    return True


def _threads(pixels: int) -> int:
    # Layers already encode in parallel; only large frames get codec threads of their own.
    cpus = os.cpu_count() or 1
    if pixels >= 1920 * 1080 and cpus >= 4:
        return 4
    if pixels > 640 * 480 and cpus >= 3:
        return 2
    return 1


@dataclass(slots=True)
class EncodedFrame:
    data: bytes
    keyFrame: bool
    width: int
    height: int
    temporalLayer: int = 0
    # The frame references only base-layer (TL0) frames: a receiver may switch up here.
    layerSync: bool = True


@dataclass(frozen=True, slots=True)
class TemporalPattern:
    """libvpx's fixed temporal layering (FFmpeg ``ts_layering_mode``): which layer each frame
    of the period belongs to, which frames refer only to TL0, and the cumulative share of the
    bitrate up to each layer (libwebrtc's split)."""

    mode: int
    layerIds: tuple[int, ...]
    sync: tuple[bool, ...]
    cumulativeShare: tuple[float, ...]

    def parameters(self, bitrate: int) -> str:
        kbps = ",".join(str(max(1, int(bitrate * share / 1000))) for share in self.cumulativeShare)
        layers = len(self.cumulativeShare)
        decimators = ",".join(str(2 ** (layers - 1 - i)) for i in range(layers))
        # ts_layering_mode must come last: it completes the configuration.
        return (
            f"ts_number_layers={layers}:ts_target_bitrate={kbps}:"
            f"ts_rate_decimator={decimators}:ts_periodicity={len(self.layerIds)}:"
            f"ts_layer_id={','.join(map(str, self.layerIds))}:ts_layering_mode={self.mode}"
        )


# Mode 2: TL0 refers to TL0, TL1 to TL0 only. Mode 3 (0-2-1-2): TL0 and the first TL2 and the
# TL1 frame refer to TL0 only; the second TL2 frame refers to TL1.
TEMPORAL_PATTERNS: dict[int, TemporalPattern] = {
    2: TemporalPattern(2, (0, 1), (True, True), (0.6, 1.0)),
    3: TemporalPattern(3, (0, 2, 1, 2), (True, True, True, False), (0.4, 0.6, 1.0)),
}


class VideoEncoder:
    """One video encoder for one layer; reopened when the size or the bitrate changes.

    With ``temporalLayers`` > 1 (VP8 only) libvpx cycles through a fixed pattern of temporal
    layers, one step per frame handed to it, starting afresh whenever it is (re)opened; the
    encoder counts the frames to label each output with its layer."""

    def __init__(self, mimeType: str, *, temporalLayers: int = 1) -> None:
        name = mimeType.lower()
        if name not in ("video/vp8", "video/vp9", "video/h264"):
            raise ValueError(f"cannot encode {mimeType}")
        if temporalLayers > 1 and (
            name != "video/vp8" or temporalLayers not in TEMPORAL_PATTERNS
        ):
            raise ValueError(f"cannot encode {temporalLayers} temporal layers with {mimeType}")
        self.mimeType = name
        self._pattern = TEMPORAL_PATTERNS.get(temporalLayers)
        self._codec: Any = None
        self._width = 0
        self._height = 0
        self._bitrate = 0
        self._opened_bitrate = 0  # the VBV maximum of an open libx264 encoder
        self._frame_index = 0  # frames handed to the open encoder
        self.rebuilds = 0  # encoders opened (each starts with a key frame)
        self.liveChanges = 0  # bitrate changes applied to the open encoder
        self.implementation = {
            "video/vp8": "libvpx",
            "video/vp9": "libvpx-vp9",
            "video/h264": "libx264",
        }[name]

    @property
    def bitrate(self) -> int:
        return self._bitrate

    @property
    def changesBitrateLive(self) -> bool:
        """Whether a new bitrate applies to the open encoder (no new encoder, no key frame)."""
        return self.mimeType == "video/h264"

    @property
    def atPatternStart(self) -> bool:
        """The next frame starts a temporal pattern period (always true without layers, and
        when the encoder is closed: opening starts a period)."""
        pattern = self._pattern
        if pattern is None or self._codec is None:
            return True
        return self._frame_index % len(pattern.layerIds) == 0

    def close(self) -> None:
        self._codec = None

    def encode(
        self, frame: av.VideoFrame, *, pts: int, keyFrame: bool, bitrate: int, framerate: float
    ) -> EncodedFrame | None:
        """Encode ``frame`` (yuv420p, owned by the caller: its pts and picture type are set
        here). ``pts`` is in 1/90000 s and must increase."""
        width, height = frame.width, frame.height
        if (
            self._codec is not None
            and (width, height) == (self._width, self._height)
            and bitrate != self._bitrate
            and self.changesBitrateLive
            and bitrate <= self._opened_bitrate
        ):
            self._codec.bit_rate = bitrate
            self._bitrate = bitrate
            self.liveChanges += 1
        if self._codec is None or (width, height, bitrate) != (
            self._width,
            self._height,
            self._bitrate,
        ):
            self._open(width, height, bitrate, framerate)
        codec = self._codec
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        # Reset the picture type: libvpx keeps the source's, which can make every frame a key
        # frame (ENGINE_NOTES "VP8 trap").
        frame.pict_type = _PICTURE_TYPE.I if keyFrame else _PICTURE_TYPE.NONE
        slot = self._frame_index
        self._frame_index += 1
        data = b""
        key = False
        for packet in codec.encode(frame):
            data += bytes(packet)
            key = key or bool(packet.is_keyframe)
        if not data:
            return None
        encoded = EncodedFrame(data=data, keyFrame=key, width=width, height=height)
        pattern = self._pattern
        if pattern is not None:
            position = slot % len(pattern.layerIds)
            encoded.temporalLayer = 0 if key else pattern.layerIds[position]
            encoded.layerSync = key or pattern.sync[position]
        return encoded

    def _open(self, width: int, height: int, bitrate: int, framerate: float) -> None:
        # Typed as Any: PyAV's stubs describe the generic CodecContext, not the video one.
        codec: Any = av.CodecContext.create(self.implementation, "w")
        codec.width = width
        codec.height = height
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = bitrate
        codec.time_base = VIDEO_TIME_BASE
        codec.framerate = fractions.Fraction(max(1, round(framerate)), 1)
        # Key frames only on demand (PLI/FIR, new encoder), as browsers do.
        codec.gop_size = 3000
        codec.thread_count = _threads(width * height)
        rate = str(bitrate)
        if self.mimeType == "video/vp8":
            codec.qmin = 2
            # The whole quantizer range: at a low layer's rate (160x120 at ~57 kbps) quality
            # must be able to fall before frames are dropped; capped at 56 (libwebrtc's
            # default), libvpx kept such a layer at 13-17 fps.
            codec.qmax = 63
            codec.options = {
                "deadline": "realtime",
                "cpu-used": "-6",
                "lag-in-frames": "0",
                "error-resilient": "default",
                "auto-alt-ref": "0",
                "static-thresh": "1",
                "undershoot-pct": "100",
                "overshoot-pct": "15",
                # Like libwebrtc: skip frames rather than overshoot when the rate is too low.
                "drop-threshold": "30",
                # minrate == maxrate == bitrate makes libvpx run CBR; bufsize = 1 s of data.
                "minrate": rate,
                "maxrate": rate,
                "bufsize": rate,
            }
        elif self.mimeType == "video/vp9":
            codec.qmin = 2
            codec.qmax = 63
            codec.options = {
                "deadline": "realtime",
                "cpu-used": "8",
                "lag-in-frames": "0",
                "error-resilient": "1",
                "auto-alt-ref": "0",
                "row-mt": "1",
                "aq-mode": "3",
                "undershoot-pct": "50",
                "overshoot-pct": "50",
                "minrate": rate,
                "maxrate": rate,
                "bufsize": rate,
            }
        else:
            codec.options = {
                "preset": "ultrafast",
                "tune": "zerolatency",
                "profile": "baseline",
                "forced-idr": "1",
                "x264-params": "scenecut=0:repeat-headers=1",
                "maxrate": rate,
                "bufsize": str(bitrate // 2),
            }
        if self._pattern is not None:
            codec.options = {**codec.options, "ts-parameters": self._pattern.parameters(bitrate)}
        codec.open()
        self._codec = codec
        self._frame_index = 0
        self._width, self._height, self._bitrate = width, height, bitrate
        self._opened_bitrate = bitrate
        self.rebuilds += 1


def opusFrameDuration(ptime: int | float | None) -> int:
    """The Opus frame duration (ms) used for a requested ptime: the largest supported one not
    above it (default 20)."""
    if not ptime:
        return 20
    allowed = [d for d in OPUS_FRAME_DURATIONS if d <= ptime]
    return allowed[-1] if allowed else OPUS_FRAME_DURATIONS[0]


def opusCutoff(maxPlaybackRate: int | None) -> int | None:
    """libopus ``cutoff`` (Hz) for an ``opusMaxPlaybackRate`` (narrow/medium/wide/super-wide)."""
    if not maxPlaybackRate:
        return None
    for rate, cutoff in ((8000, 4000), (12000, 6000), (16000, 8000), (24000, 12000)):
        if maxPlaybackRate <= rate:
            return cutoff
    return 20000


def opusDefaultBitrate(channels: int, maxPlaybackRate: int | None) -> int:
    """What libwebrtc uses when maxaveragebitrate is not given (per channel)."""
    if maxPlaybackRate and maxPlaybackRate <= 8000:
        per_channel = 12000
    elif maxPlaybackRate and maxPlaybackRate <= 16000:
        per_channel = 20000
    else:
        per_channel = 32000
    return per_channel * channels


@dataclass(slots=True)
class OpusSettings:
    channels: int = 1
    frameDuration: int = 20  # ms
    bitrate: int = 32000
    fec: bool = False
    cutoff: int | None = None

    @property
    def frameSamples(self) -> int:
        return OPUS_SAMPLE_RATE * self.frameDuration // 1000


@dataclass(slots=True)
class EncodedAudio:
    payload: bytes
    samples: int
    level: int  # dBov, 0 (loudest) .. 127 (silence)
    silent: bool


def audioLevel(samples: np.ndarray[Any, Any]) -> int:
    """The RFC 6464 level (-dBov, 0..127) of s16 samples."""
    if samples.size == 0:
        return 127
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    if rms <= 0:
        return 127
    return max(0, min(127, round(-20 * math.log10(rms / 32767))))


class OpusEncoder:
    """Resamples any input to 48 kHz s16 in frames of ``frameDuration`` and encodes them."""

    def __init__(self, settings: OpusSettings) -> None:
        self.settings = settings
        self._layout = "stereo" if settings.channels == 2 else "mono"
        self._codec = self._open()
        self._resampler = self._newResampler()
        self._pts = 0

    def _open(self) -> Any:
        s = self.settings
        codec: Any = av.CodecContext.create("libopus", "w")
        codec.sample_rate = OPUS_SAMPLE_RATE
        codec.layout = self._layout
        codec.format = "s16"
        codec.bit_rate = s.bitrate
        codec.time_base = OPUS_TIME_BASE
        options = {
            # libwebrtc's choice: VoIP tuning for mono, general audio for stereo.
            "application": "audio" if s.channels == 2 else "voip",
            "frame_duration": str(s.frameDuration),
            "vbr": "on",
        }
        if s.fec:
            # libopus only adds in-band FEC when it expects some loss.
            options["fec"] = "1"
            options["packet_loss"] = "10"
        if s.cutoff:
            options["cutoff"] = str(s.cutoff)
        codec.options = options
        codec.open()
        return codec

    def _newResampler(self) -> AudioConverter:
        return AudioConverter("s16", self._layout, OPUS_SAMPLE_RATE, self.settings.frameSamples)

    def reset(self) -> None:
        """Forget buffered input (new track, resume): the next frame starts afresh."""
        self._resampler = self._newResampler()

    def encode(self, frame: av.AudioFrame) -> list[EncodedAudio]:
        # The source frame is left untouched (it may be shared, e.g. by a MediaRelay); the
        # resampler's output frames get our own pts.
        out: list[EncodedAudio] = []
        for chunk in self._resampler.convert(frame):
            samples = chunk.to_ndarray()
            level = audioLevel(samples)
            chunk.pts = self._pts
            chunk.time_base = OPUS_TIME_BASE
            self._pts += chunk.samples
            for packet in self._codec.encode(chunk):
                out.append(
                    EncodedAudio(
                        payload=bytes(packet),
                        samples=self.settings.frameSamples,
                        level=level,
                        silent=level >= SILENCE_LEVEL,
                    )
                )
        return out
