"""One video encoding (simulcast layer): its size, encoder, rate gate, key frames and stream.

Pure decisions: a layer is offered source frames and hands back at most one encode job at a
time. While a job is in flight, the newest offered frame waits (an older waiting one is
dropped and counted), so nothing piles up whatever the source or the CPU does. The job scales,
encodes and packetises in a worker thread; its result comes back through ``onEncoded``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

import av
from av.video.reformatter import VideoReformatter

from .bitrate import LayerRateGate, encoderBitrate
from .clock import FramerateLimiter
from .config import EncodingState
from .encoders import VIDEO_CLOCK_RATE, EncodedFrame, VideoEncoder
from .packetizers import Packetizer, createPacketizer
from .pipeline import EncodeJob, Stats
from .rtp_stream import OutgoingRtp, RtpStream

logger = logging.getLogger(__name__)

# Remote key frame requests closer than this to the last key frame are held back until it has
# passed (one PLI burst from many consumers must not turn into a burst of key frames).
KEY_FRAME_MIN_INTERVAL = 0.3
DEFAULT_FRAMERATE = 30.0


def layerSize(sourceWidth: int, sourceHeight: int, scale: float) -> tuple[int, int]:
    """The layer's resolution: the source divided by ``scale``, rounded down to even."""
    scale = max(1.0, scale)
    width = max(2, int(sourceWidth / scale) & ~1)
    height = max(2, int(sourceHeight / scale) & ~1)
    return width, height


def privateCopy(frame: av.VideoFrame) -> av.VideoFrame:
    """A yuv420p copy of ``frame``, plane by plane (one memcpy each, 2-3x cheaper than a
    numpy round trip), or through numpy when the planes' line sizes differ."""
    copy = av.VideoFrame(frame.width, frame.height, "yuv420p")
    try:
        for target, source in zip(copy.planes, frame.planes, strict=True):
            target.update(source)  # type: ignore[arg-type]  # a plane is a buffer too
    except ValueError:
        return av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
    return copy


@dataclass(slots=True)
class EncodeResult:
    encoded: EncodedFrame | None
    payloads: list[bytes]
    elapsed: float  # seconds spent scaling, encoding and packetising


@dataclass(slots=True)
class _Pending:
    frame: av.VideoFrame
    timestamp: int
    captureTime: float


@dataclass(slots=True)
class _EncodeCall:
    """Scale, encode and packetise one frame: the body of a layer's encode job (runs in a
    worker thread; the layer has at most one in flight)."""

    reformatter: VideoReformatter
    encoder: VideoEncoder
    packetizer: Packetizer
    pending: _Pending
    width: int
    height: int
    keyFrame: bool
    bitrate: int
    framerate: float

    def __call__(self) -> EncodeResult:
        started = time.perf_counter()
        frame = self.pending.frame
        # Each layer has its own reformatter: the one cached on a frame is not safe to share
        # between threads (concurrent use from several layers deadlocks).
        scaled = self.reformatter.reformat(
            frame,
            width=self.width,
            height=self.height,
            format="yuv420p",
            interpolation="AREA",
            threads=1,
        )
        if scaled is frame:
            # The encoder sets pts and picture type on the frame: never on a shared frame.
            scaled = privateCopy(frame)
        encoded = self.encoder.encode(
            scaled,
            pts=self.pending.timestamp,
            keyFrame=self.keyFrame,
            bitrate=self.bitrate,
            framerate=self.framerate,
        )
        payloads = self.packetizer.packetize(encoded) if encoded is not None else []
        return EncodeResult(encoded, payloads, time.perf_counter() - started)


class VideoLayer:
    """One encoding's state. ``encoding`` is the only copy of its settings."""

    def __init__(
        self, *, encoding: EncodingState, defaultScale: float, stream: RtpStream, mimeType: str
    ) -> None:
        self.encoding = encoding
        self.stream = stream
        self._default_scale = defaultScale
        self._reformatter = VideoReformatter()
        self._encoder = VideoEncoder(mimeType, temporalLayers=encoding.temporalLayers)
        self._packetizer = createPacketizer(mimeType)
        self.gate = LayerRateGate(inPlace=self._encoder.changesBitrateLive)
        self.limiter = FramerateLimiter(VIDEO_CLOCK_RATE)
        self.width = 0
        self.height = 0
        self.sending = False
        self.maxBitrate = 0  # the ceiling used for allocation (encoding's or default)
        self._pending: _Pending | None = None
        self._inflight: _EncodeCall | None = None
        self._epoch = 0
        self._key_requested = False
        self._key_forced = False
        self._encode_failures = 0
        self._last_key_frame = float("-inf")
        # Stats.
        self.framesEncoded = 0
        self.keyFramesEncoded = 0
        self.framesDropped = 0  # dropped because the encoder was behind
        self.totalEncodeTime = 0.0
        self.lastEncodedWidth = 0
        self.lastEncodedHeight = 0
        self._sent_times: deque[float] = deque(maxlen=240)

    @property
    def index(self) -> int:
        return self.encoding.index

    @property
    def scale(self) -> float:
        return self.encoding.scaleResolutionDownBy or self._default_scale

    @property
    def maxFramerate(self) -> float | None:
        return self.encoding.maxFramerate

    @property
    def busy(self) -> bool:
        return self._inflight is not None

    def framesPerSecond(self, now: float) -> float:
        return float(sum(1 for t in self._sent_times if now - t <= 1.0))

    def close(self) -> None:
        """Forget everything in flight and release the encoder (a new one opens on demand)."""
        self._epoch += 1
        self._pending = None
        self._encoder.close()

    def resize(self, sourceWidth: int, sourceHeight: int) -> bool:
        size = layerSize(sourceWidth, sourceHeight, self.scale)
        if size == (self.width, self.height):
            return False
        self.width, self.height = size
        return True

    def setSending(self, sending: bool) -> None:
        if sending == self.sending:
            return
        self.sending = sending
        if sending:
            # Coming back (resume, higher max spatial layer, bandwidth): decodable at once.
            self.requestKeyFrame()
            self.limiter.reset()
        else:
            # Stop at once: the waiting frame and any frame being encoded are not sent.
            self.discard()

    def discard(self) -> None:
        """Drop the waiting frame and whatever is being encoded now."""
        self._epoch += 1
        self._pending = None

    def requestKeyFrame(self, *, remote: bool = False) -> None:
        """Make the next frame a key frame. Remote requests (PLI/FIR) are held back while the
        last key frame is younger than KEY_FRAME_MIN_INTERVAL; our own (resume, new track,
        layer back on) are not: the receiver may have lost the encoder's reference."""
        if remote:
            self._key_requested = True
        else:
            self._key_forced = True

    def offer(
        self, frame: av.VideoFrame, timestamp: int, captureTime: float, now: float
    ) -> EncodeJob | None:
        """A source frame for this layer: a job to run now, or None (busy, or not sending)."""
        if not self.sending:
            return None
        if self._pending is not None:
            self.framesDropped += 1
        self._pending = _Pending(frame, timestamp, captureTime)
        return None if self.busy else self._nextJob(now)

    def onEncoded(
        self, job: EncodeJob, result: EncodeResult | None, error: BaseException | None, now: float
    ) -> tuple[list[OutgoingRtp], EncodeJob | None]:
        """The result of this layer's job: the packets to send, and the next job if a frame
        is waiting."""
        call, self._inflight = self._inflight, None
        packets: list[OutgoingRtp] = []
        if call is None:
            return packets, None
        if error is not None or result is None:
            # A broken frame or encoder must not end the stream: start afresh next frame
            # (logged once per run of failures, not once per frame).
            if not self._encode_failures:
                logger.error("video encoding failed (layer %d)", self.index, exc_info=error)
            self._encode_failures += 1
            self._encoder.close()
        else:
            self._encode_failures = 0
            encoded = result.encoded
            if job.epoch != self._epoch or encoded is None:
                if call.keyFrame:
                    self._key_forced = True
            else:
                packets = self._packets(call.pending, result, encoded, now)
        return packets, (self._nextJob(now) if self.sending else None)

    def stats(self, now: float) -> Stats:
        """The encoder side of this layer's outbound-rtp entry."""
        entry: Stats = {
            "framesEncoded": self.framesEncoded,
            "keyFramesEncoded": self.keyFramesEncoded,
            "framesSent": self.stream.framesSent,
            "frameWidth": self.lastEncodedWidth,
            "frameHeight": self.lastEncodedHeight,
            "framesPerSecond": self.framesPerSecond(now),
            "targetBitrate": self.gate.current,
            "totalEncodeTime": self.totalEncodeTime,
            "framesDropped": self.framesDropped,
            "pliCount": self.stream.pliCount,
            "firCount": self.stream.firCount,
            "encoderImplementation": self._encoder.implementation,
            # Library figures: how often the target changed, and how (a rebuilt encoder
            # starts with a key frame; a live change does not).
            "encoderRebuilds": self._encoder.rebuilds,
            "encoderBitrateChanges": self._encoder.liveChanges,
            "scaleResolutionDownBy": self.scale,
        }
        if self.maxFramerate:
            entry["maxFramerate"] = self.maxFramerate
        if self.encoding.scalabilityMode:
            entry["scalabilityMode"] = self.encoding.scalabilityMode
        return entry

    def _packets(
        self, pending: _Pending, result: EncodeResult, encoded: EncodedFrame, now: float
    ) -> list[OutgoingRtp]:
        self.framesEncoded += 1
        self.totalEncodeTime += result.elapsed
        self.lastEncodedWidth = encoded.width
        self.lastEncodedHeight = encoded.height
        if encoded.keyFrame:
            self.keyFramesEncoded += 1
            self._last_key_frame = now
        self._sent_times.append(now)
        return self.stream.framePackets(
            result.payloads,
            timestamp=pending.timestamp,
            captureTime=pending.captureTime,
            now=now,
        )

    def _takeKeyRequest(self, now: float) -> bool:
        # With temporal layers a key frame may only start a pattern period: one elsewhere
        # would leave the lower layers referencing frames they never received.
        if not self._encoder.atPatternStart:
            return False
        if self._key_forced or (
            self._key_requested and now - self._last_key_frame >= KEY_FRAME_MIN_INTERVAL
        ):
            self._key_forced = self._key_requested = False
            return True
        return False

    def _nextJob(self, now: float) -> EncodeJob | None:
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        bitrate = self.gate.current
        if bitrate <= 0:
            return None
        key = self._takeKeyRequest(now)
        call = self._inflight = _EncodeCall(
            self._reformatter,
            self._encoder,
            self._packetizer,
            pending,
            self.width,
            self.height,
            key,
            encoderBitrate(bitrate),
            self.maxFramerate or DEFAULT_FRAMERATE,
        )
        return EncodeJob(owner=self, epoch=self._epoch, run=call)
