"""Video: one source track read once, one encoder + RTP stream per encoding (simulcast layer).

The reader task takes each source frame, maps it onto the sender's media clock and offers it to
every layer that is sending. A layer holds at most one waiting frame: if its encoder is still
busy when the next frame arrives, the waiting one is replaced (the oldest frame is dropped), so
nothing piles up whatever the source or the CPU does. Each layer encodes in a worker thread
(scaling included) and sends the packets, in order, from the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError
from av.video.reformatter import VideoReformatter

from ....types import RtpEncodingParameters
from ..rtp_port import RtpPort
from .bitrate import (
    BudgetOptions,
    CongestionTracker,
    LayerDemand,
    LayerRateGate,
    allocate,
    defaultMaxBitrate,
    encoderBitrate,
)
from .clock import FramerateLimiter, MediaClock
from .encoders import VIDEO_CLOCK_RATE, EncodedFrame, VideoEncoder
from .packetizers import createPacketizer
from .rtp_stream import RtpStream
from .workers import videoExecutor

logger = logging.getLogger(__name__)

# Remote key frame requests closer than this to the last key frame are held back until it has
# passed (one PLI burst from many consumers must not turn into a burst of key frames).
KEY_FRAME_MIN_INTERVAL = 0.3
DEFAULT_FRAMERATE = 30.0


@dataclass(slots=True)
class _Pending:
    frame: av.VideoFrame
    timestamp: int
    captureTime: float


def layerSize(sourceWidth: int, sourceHeight: int, scale: float) -> tuple[int, int]:
    """The layer's resolution: the source divided by ``scale``, rounded down to even."""
    scale = max(1.0, scale)
    width = max(2, int(sourceWidth / scale) & ~1)
    height = max(2, int(sourceHeight / scale) & ~1)
    return width, height


def _privateCopy(frame: av.VideoFrame) -> av.VideoFrame:
    """A yuv420p copy of ``frame``, plane by plane (one memcpy each, 2-3x cheaper than a
    numpy round trip), or through numpy when the planes' line sizes differ."""
    copy = av.VideoFrame(frame.width, frame.height, "yuv420p")
    try:
        for target, source in zip(copy.planes, frame.planes, strict=True):
            target.update(source)  # type: ignore[arg-type]  # a plane is a buffer too
    except ValueError:
        return av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
    return copy


def _encodeJob(
    reformatter: VideoReformatter,
    encoder: VideoEncoder,
    packetizer: Any,
    frame: av.VideoFrame,
    width: int,
    height: int,
    pts: int,
    keyFrame: bool,
    bitrate: int,
    framerate: float,
) -> tuple[EncodedFrame | None, list[bytes], float]:
    """Scale, encode and packetise one frame (runs in a worker thread)."""
    started = time.perf_counter()
    # Each layer has its own reformatter: the one cached on a frame is not safe to share
    # between threads (concurrent use from several layers deadlocks).
    scaled = reformatter.reformat(
        frame, width=width, height=height, format="yuv420p", interpolation="AREA", threads=1
    )
    if scaled is frame:
        # The encoder sets pts and picture type on the frame: never on a shared source frame.
        scaled = _privateCopy(frame)
    encoded = encoder.encode(
        scaled, pts=pts, keyFrame=keyFrame, bitrate=bitrate, framerate=framerate
    )
    payloads: list[bytes] = []
    if encoded is not None:
        payloads = packetizer.packetize(
            encoded.data, encoded.keyFrame, encoded.width, encoded.height
        )
    return encoded, payloads, time.perf_counter() - started


class VideoLayer:
    """One encoding: its scaled size, encoder, rate gate and RTP stream."""

    def __init__(
        self,
        *,
        index: int,
        defaultScale: float,
        encoding: RtpEncodingParameters,
        stream: RtpStream,
        mimeType: str,
        port: RtpPort,
    ) -> None:
        self.index = index
        self.encoding = encoding
        self.stream = stream
        self._default_scale = defaultScale
        self._port = port
        self._reformatter = VideoReformatter()
        self._encoder = VideoEncoder(mimeType)
        self._packetizer = createPacketizer(mimeType)
        self.gate = LayerRateGate()
        self.limiter = FramerateLimiter(VIDEO_CLOCK_RATE)
        self.width = 0
        self.height = 0
        self.sending = False
        self.maxBitrate = 0  # the ceiling used for allocation (encoding's or default)
        self._pending: _Pending | None = None
        self._wakeup = asyncio.Event()
        self._epoch = 0
        self._key_requested = False
        self._key_forced = False
        self._encode_failures = 0
        self._last_key_frame = float("-inf")
        self._task: asyncio.Task[None] | None = None
        # Stats.
        self.framesEncoded = 0
        self.keyFramesEncoded = 0
        self.framesDropped = 0  # dropped because the encoder was behind
        self.totalEncodeTime = 0.0
        self.lastEncodedWidth = 0
        self.lastEncodedHeight = 0
        self._sent_times: deque[float] = deque(maxlen=240)

    @property
    def scale(self) -> float:
        value = self.encoding.get("scaleResolutionDownBy")
        return float(value) if value else self._default_scale

    @property
    def maxFramerate(self) -> float | None:
        value = self.encoding.get("maxFramerate")
        return float(value) if value else None

    @property
    def implementation(self) -> str:
        return self._encoder.implementation

    @property
    def framesPerSecond(self) -> float:
        now = time.monotonic()
        return float(sum(1 for t in self._sent_times if now - t <= 1.0))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._epoch += 1
        self._pending = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
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

    def dropPending(self) -> None:
        self._pending = None

    def offer(self, frame: av.VideoFrame, timestamp: int, captureTime: float) -> None:
        if self._pending is not None:
            self.framesDropped += 1
        self._pending = _Pending(frame, timestamp, captureTime)
        self._wakeup.set()

    def _takeKeyRequest(self, now: float) -> bool:
        if self._key_forced or (
            self._key_requested and now - self._last_key_frame >= KEY_FRAME_MIN_INTERVAL
        ):
            self._key_forced = self._key_requested = False
            return True
        return False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        executor = videoExecutor()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            pending, self._pending = self._pending, None
            if pending is None or not self.sending or not self._port.connected:
                continue
            bitrate = self.gate.current
            if bitrate <= 0:
                continue
            epoch = self._epoch
            key = self._takeKeyRequest(time.monotonic())
            try:
                encoded, payloads, elapsed = await loop.run_in_executor(
                    executor,
                    _encodeJob,
                    self._reformatter,
                    self._encoder,
                    self._packetizer,
                    pending.frame,
                    self.width,
                    self.height,
                    pending.timestamp,
                    key,
                    encoderBitrate(bitrate),
                    self.maxFramerate or DEFAULT_FRAMERATE,
                )
            except Exception:
                # A broken frame or encoder must not end the stream: start afresh next frame
                # (logged once per run of failures, not once per frame).
                if not self._encode_failures:
                    logger.exception("video encoding failed (layer %d)", self.index)
                self._encode_failures += 1
                self._encoder.close()
                continue
            self._encode_failures = 0
            if epoch != self._epoch or encoded is None:
                if key:
                    self._key_forced = True
                continue
            self.framesEncoded += 1
            self.totalEncodeTime += elapsed
            self.lastEncodedWidth = encoded.width
            self.lastEncodedHeight = encoded.height
            if encoded.keyFrame:
                self.keyFramesEncoded += 1
                self._last_key_frame = time.monotonic()
            try:
                sent = await self.stream.sendFrame(
                    payloads, timestamp=pending.timestamp, captureTime=pending.captureTime
                )
            except Exception:
                logger.exception("sending a video frame failed (layer %d)", self.index)
                sent = False
            if sent:
                self._sent_times.append(time.monotonic())


class VideoPipeline:
    """Reads the track, keeps the layers' sending state and bitrates, hands frames out."""

    def __init__(
        self,
        *,
        port: RtpPort,
        track: Any,
        encodings: list[RtpEncodingParameters],
        streams: list[RtpStream],
        mimeType: str,
        budget: BudgetOptions,
        onTrackEnded: Callable[[Any], None],
    ) -> None:
        self._port = port
        self._track = track
        self._budget = budget
        self._on_track_ended = onTrackEnded
        count = len(encodings)
        self.layers = [
            VideoLayer(
                index=index,
                # libwebrtc's default for simulcast without scaleResolutionDownBy: 4, 2, 1.
                defaultScale=float(2 ** (count - 1 - index)),
                encoding=encoding,
                stream=stream,
                mimeType=mimeType,
                port=port,
            )
            for index, (encoding, stream) in enumerate(zip(encodings, streams, strict=True))
        ]
        self._clock = MediaClock(VIDEO_CLOCK_RATE)
        self._paused = False
        self._started = False
        self._congestion = CongestionTracker()
        self._source_size: tuple[int, int] | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def estimate(self) -> int | None:
        return self._congestion.estimate

    def start(self) -> None:
        self._started = True
        for layer in self.layers:
            layer.start()
        self._startReader()

    async def stop(self) -> None:
        self._started = False
        await self._stopReader()
        for layer in self.layers:
            await layer.stop()

    def pause(self) -> None:
        self._paused = True
        self._clock.discontinuity()
        self._refresh(time.monotonic())

    def resume(self) -> None:
        self._paused = False
        self._refresh(time.monotonic())

    async def replaceTrack(self, track: Any) -> None:
        await self._stopReader()
        self._track = track
        self._clock.discontinuity()
        self._refresh(time.monotonic())
        for layer in self.layers:
            # The key frame must be the new track's first frame, not a leftover of the old one.
            layer.dropPending()
            layer.requestKeyFrame()
        self._startReader()

    def setMaxSpatialLayer(self, spatialLayer: int) -> None:
        # As mediasoup-client does: the layers up to spatialLayer are active, the others not.
        for layer in self.layers:
            layer.encoding["active"] = layer.index <= spatialLayer
        self._reallocate(time.monotonic(), forceResuming=True)

    def setEncodingParameters(self, params: dict[str, Any]) -> None:
        for layer in self.layers:
            layer.encoding.update(params)  # type: ignore[typeddict-item]
            if self._source_size is not None:
                layer.resize(*self._source_size)
        self._reallocate(time.monotonic(), force=True)

    def requestKeyFrame(self, ssrc: int) -> None:
        """A PLI or FIR for one layer's SSRC."""
        for layer in self.layers:
            if layer.stream.ssrc == ssrc:
                layer.requestKeyFrame(remote=True)

    def onRemb(self, bitrate: int, ssrcs: list[int]) -> None:
        mine = {layer.stream.ssrc for layer in self.layers}
        if not mine.intersection(ssrcs):
            return
        active = [layer for layer in self.layers if layer.encoding.get("active", True) is not False]
        sending = sum(layer.gate.current for layer in active if layer.sending)
        demand = sum(layer.maxBitrate for layer in active)
        self._congestion.update(bitrate, sending, demand)
        self._reallocate(time.monotonic())

    def _startReader(self) -> None:
        if self._started and self._track is not None and self._reader is None:
            self._reader = asyncio.ensure_future(self._read(self._track))

    async def _stopReader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    def _reallocate(self, now: float, *, force: bool = False, forceResuming: bool = False) -> None:
        """Split the budget again. ``force``: every layer takes its new target now (explicit
        parameter change, new resolution); ``forceResuming``: only layers coming back do."""
        demands: list[LayerDemand] = []
        for layer in self.layers:
            if layer.encoding.get("active", True) is False or layer.width == 0:
                continue
            configured = layer.encoding.get("maxBitrate")
            layer.maxBitrate = (
                int(configured) if configured else defaultMaxBitrate(layer.width, layer.height)
            )
            demands.append(LayerDemand(layer.index, layer.maxBitrate))
        options = self._budget
        if self._congestion.estimate is not None:
            # The start bitrate only bridges the time before the router's first estimate;
            # kept on, it would cap the producer for good (the router's codec parameters
            # carry x-google-start-bitrate, 1 Mbps in mediasoup-demo).
            options = replace(options, startBitrate=None)
        targets = allocate(demands, self._congestion.budget, options)
        for layer in self.layers:
            if layer.index in targets:
                layer.gate.update(
                    targets[layer.index],
                    now,
                    force=force or (forceResuming and not layer.sending),
                )
        self._refresh(now)

    def _refresh(self, now: float) -> None:
        for layer in self.layers:
            layer.setSending(
                not self._paused
                and self._track is not None
                and layer.encoding.get("active", True) is not False
                and layer.width > 0
                and layer.gate.current > 0
            )

    async def _read(self, track: Any) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self._on_track_ended(track)
                return
            except Exception:
                # A broken source is as good as ended: say so rather than die silently.
                logger.exception("reading the %s track failed", track.kind)
                self._on_track_ended(track)
                return
            if not isinstance(frame, av.VideoFrame):
                continue
            if self._paused or not self._port.connected:
                continue
            now = time.monotonic()
            source_time = (
                float(frame.pts * frame.time_base)
                if frame.pts is not None and frame.time_base is not None
                else None
            )
            timestamp = self._clock.map(source_time, now)
            size = (frame.width, frame.height)
            if size != self._source_size:
                self._source_size = size
                for layer in self.layers:
                    layer.resize(*size)
                self._reallocate(now, force=True)
            for layer in self.layers:
                if layer.sending and layer.limiter.accept(timestamp, layer.maxFramerate):
                    layer.offer(frame, timestamp, now)
