"""Pre-encoded media: access units in, RTP out, with no decoder and no encoder.

Pure, like the other pipelines (``pipeline.MediaPipeline``): an ``EncodedPacket`` from a
pre-encoded track is mapped onto the producer's media clock, packetised by the same packetizers
the encoders' output goes through, and sent on its rendition's RTP stream (simulcast: rendition
i on encoding i). What an encoder would do on demand cannot be done here, so:

- a layer starts, and restarts after a pause, a mute, a replaced track or coming back active,
  at the source's next key frame (the frames before it are dropped, counted), and asks the
  source for one;
- key-frame requests (PLI/FIR) go to the source (``EncodedStreamInfo.onKeyFrameRequest``),
  at most one per layer per KEY_FRAME_REQUEST_INTERVAL; the source's next key frame answers;
- a muted (disabled) video track sends nothing, as there is no encoder for black frames; muted
  audio sends Opus silence packets in place of the source's, so the stream stays alive;
- encodings cannot change bitrate, frame rate or size (``setParameters`` refuses them);
- under congestion the only lever is which renditions are sent: each claims what it has
  been sending (else its ``maxBitrate``), the transport's allocator keeps the lowest one and
  suspends the ones above it that do not fit (``bitrate.allocate``), and a suspended one
  comes back, at its next key frame, only with the same hysteresis as encoded layers.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from ....errors import UnsupportedError
from ....media.bitstream import (
    h264IsKeyFrame,
    h264StartsWithSps,
    opusPacketSamples,
    opusSilence,
    vp8IsKeyFrame,
    vp8Size,
)
from ....media.encoded import EncodedPacket, EncodedStreamInfo
from .bitrate import (
    RESUME_FACTOR,
    RESUME_HOLD,
    BudgetOptions,
    LayerDemand,
    ProducerDemand,
    allocate,
    defaultMaxBitrate,
)
from .config import EncodingState, SendConfig
from .encoders import OPUS_SAMPLE_RATE, VIDEO_CLOCK_RATE, EncodedFrame
from .packetizers import createPacketizer
from .pipeline import EncodeJob, RunState, SendActions, Stats
from .rtp_stream import RtpStream
from .stats import outboundStats

logger = logging.getLogger(__name__)

# Requests closer than this (per layer) are one request: a burst of PLIs from many consumers
# must not become a burst of events for the application.
KEY_FRAME_REQUEST_INTERVAL = 0.3
# Audio: a source time this far (seconds) from where the counted samples say is a gap (DTX,
# loss) or a fault, not rounding of the container's timestamps.
AUDIO_TIMESTAMP_TOLERANCE = 0.03
# A rendition's rate is measured over this window (seconds): several GOPs' worth of frames
# would be better, but a key frame every 1-2 s is what live sources use.
RATE_WINDOW = 2.0
NO_BOUNDS = BudgetOptions()  # renditions have no videoGoogle* bounds: their rate is the source's
PASSTHROUGH_AUDIO_DEFAULT = 40_000  # Opus at its usual 32 kbps, with packet overhead


class SourceClock:
    """Source times (seconds) onto an unwrapped RTP timestamp in ``rate`` units, keeping the
    source's spacing exactly; frames of several renditions with one source time get one
    timestamp. After a discontinuity (pause, new track) it continues from where it was,
    advanced by the wall time that passed."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._anchor_source: float | None = None
        self._anchor_timestamp = 0
        self._last_timestamp: int | None = None
        self._last_wall = 0.0

    def discontinuity(self) -> None:
        self._anchor_source = None

    def map(self, sourceTime: float, wallTime: float) -> int:
        if self._anchor_source is None:
            previous = self._last_timestamp
            timestamp = (
                0
                if previous is None
                else previous + max(1, round((wallTime - self._last_wall) * self.rate))
            )
            self._anchor_source = sourceTime
            self._anchor_timestamp = timestamp
        else:
            timestamp = self._anchor_timestamp + round(
                (sourceTime - self._anchor_source) * self.rate
            )
        if self._last_timestamp is None or timestamp > self._last_timestamp:
            self._last_timestamp = timestamp
            self._last_wall = wallTime
        return timestamp


class RateMeter:
    """What a source has been sending (bps, wire estimate) over the last RATE_WINDOW."""

    def __init__(self) -> None:
        self._sent: deque[tuple[float, int]] = deque()
        self._last: int | None = None  # the last rate measured: kept while nothing is sent

    def add(self, now: float, size: int) -> None:
        self._sent.append((now, size))

    def measured(self, now: float) -> bool:
        """Whether there is half a window of history to measure from."""
        while self._sent and now - self._sent[0][0] > RATE_WINDOW:
            self._sent.popleft()
        return bool(self._sent) and now - self._sent[0][0] >= RATE_WINDOW / 2

    def bitrate(self, now: float, *, default: int, frozen: bool = False) -> int:
        """The measured rate, else (or when ``frozen``: a suspended rendition sends nothing,
        but its source still makes what it made) the last one measured, else ``default``."""
        if frozen or not self.measured(now):
            return default if self._last is None else self._last
        span = now - self._sent[0][0]
        # Payloads only: RTP headers, extensions and descriptors add about 10 %.
        self._last = int(sum(size for _, size in self._sent) * 8 / span * 1.1)
        return self._last


class PassthroughLayer:
    """One rendition on one encoding's RTP stream."""

    def __init__(self, encoding: EncodingState, stream: RtpStream, mimeType: str) -> None:
        self.encoding = encoding
        self.stream = stream
        self.mimeType = mimeType
        self._packetizer = createPacketizer(mimeType)
        self.sending = False
        self.waitingForKeyFrame = True
        self.lastTimestamp: int | None = None
        self.width = 0
        self.height = 0
        self._last_request = float("-inf")
        self._warned_no_sps = False
        # Stats.
        self.framesPassed = 0
        self.keyFramesPassed = 0
        self.framesDropped = 0  # before a key frame, or while the layer does not send
        self.framesRejected = 0  # timestamps not increasing
        self.keyFrameRequests = 0
        self._sent_times: deque[float] = deque(maxlen=240)
        self._rate = RateMeter()
        # Suspended by the transport's allocator (bandwidth), and since when.
        self.suspendedAt: float | None = None

    @property
    def index(self) -> int:
        return self.encoding.index

    def isKeyFrame(self, packet: EncodedPacket) -> bool:
        if packet.keyFrame is not None:
            return packet.keyFrame
        if self.mimeType == "video/h264":
            return h264IsKeyFrame(packet.data)
        return vp8IsKeyFrame(packet.data)

    def takeRequest(self, now: float, *, force: bool = False) -> bool:
        """Whether a key-frame request goes to the source now (throttled unless forced)."""
        if not force and now - self._last_request < KEY_FRAME_REQUEST_INTERVAL:
            return False
        self._last_request = now
        self.keyFrameRequests += 1
        return True

    def packets(self, packet: EncodedPacket, key: bool, timestamp: int, now: float) -> Any:
        if key and self.mimeType == "video/vp8":
            size = vp8Size(packet.data)
            if size is not None:
                self.width, self.height = size
        if (
            key
            and self.mimeType == "video/h264"
            and not self._warned_no_sps
            and not h264StartsWithSps(packet.data)
        ):
            self._warned_no_sps = True
            logger.warning(
                "H264 key frame of layer %d has no SPS in front: mediasoup will not see "
                "it as a key frame (put SPS and PPS before every IDR)",
                self.index,
            )
        encoded = EncodedFrame(data=packet.data, keyFrame=key, width=self.width, height=self.height)
        payloads = self._packetizer.packetize(encoded)
        self.framesPassed += 1
        if key:
            self.keyFramesPassed += 1
            self.waitingForKeyFrame = False
        self.lastTimestamp = timestamp
        self._sent_times.append(now)
        self._rate.add(now, len(packet.data))
        return self.stream.framePackets(payloads, timestamp=timestamp, captureTime=now, now=now)

    def framesPerSecond(self, now: float) -> float:
        return float(sum(1 for t in self._sent_times if now - t <= 1.0))

    def rateMeasured(self, now: float) -> bool:
        return self._rate.measured(now)

    def bitrate(self, now: float) -> int:
        """What this rendition claims (bps): its measured payload rate once it has sent for a
        while, else its ``maxBitrate`` (else a default for its size)."""
        configured = self.encoding.maxBitrate
        default = configured or defaultMaxBitrate(self.width or 640, self.height or 360)
        return self._rate.bitrate(now, default=default, frozen=self.suspendedAt is not None)


def _refuseRateChanges(changes: list[dict[str, Any]]) -> None:
    fields = sorted({key for change in changes for key in change if key != "active"})
    if fields:
        raise UnsupportedError(
            f"a pre-encoded source is sent as it is: cannot apply {', '.join(fields)}"
        )


class PassthroughVideoPipeline:
    def __init__(
        self, config: SendConfig, streams: list[RtpStream], info: EncodedStreamInfo
    ) -> None:
        self.info = info
        self.layers = [
            PassthroughLayer(encoding, stream, config.mimeType)
            for encoding, stream in zip(config.encodings, streams, strict=True)
        ]
        for layer, rendition in zip(self.layers, info.renditions, strict=False):
            layer.width, layer.height = rendition.width or 0, rendition.height or 0
        self._clock = SourceClock(VIDEO_CLOCK_RATE)
        self._run = RunState()
        self.framesIgnored = 0  # not an EncodedPacket, or for a layer that does not exist
        self._bitrate_budget: int | None = None
        # Set by the transport's allocator: called when the renditions wanted change.
        self.onDemandChanged: Any = None

    @property
    def paused(self) -> bool:
        return self._run.paused

    # MediaPipeline.

    def start(self, now: float) -> None:
        self._run.started = True
        self._changed(now)

    def stop(self) -> None:
        self._run.started = False
        for layer in self.layers:
            layer.sending = False

    def onFrame(self, frame: Any, now: float) -> SendActions:
        actions = SendActions()
        if not isinstance(frame, EncodedPacket) or not 0 <= frame.layer < len(self.layers):
            self.framesIgnored += 1
            return actions
        layer = self.layers[frame.layer]
        if not layer.sending:
            layer.framesDropped += 1
            return actions
        key = layer.isKeyFrame(frame)
        if layer.waitingForKeyFrame and not key:
            layer.framesDropped += 1
            return actions
        timestamp = self._clock.map(frame.timestamp, now)
        if layer.lastTimestamp is not None and timestamp <= layer.lastTimestamp:
            layer.framesRejected += 1
            return actions
        actions.packets.extend(layer.packets(frame, key, timestamp, now))
        return actions

    def onEncoded(
        self, job: EncodeJob, result: Any, error: BaseException | None, now: float
    ) -> SendActions:
        return SendActions()  # nothing is ever encoded here

    def pause(self, now: float) -> None:
        self._run.paused = True
        self._clock.discontinuity()
        self._changed(now)

    def resume(self, now: float) -> None:
        self._run.paused = False
        self._changed(now)

    def mute(self, muted: bool, now: float) -> None:
        if muted == self._run.muted:
            return
        self._run.muted = muted
        if muted:
            self._clock.discontinuity()
        self._changed(now)

    def replaceTrack(self, present: bool, now: float) -> None:
        self._run.hasTrack = present
        self._clock.discontinuity()
        for layer in self.layers:
            layer.lastTimestamp = None
            if layer.sending:
                # The new source's first frame must be a key frame.
                layer.waitingForKeyFrame = True
                self._request(layer, now, force=True)
        self._changed(now)

    def setKeyFrameListener(self, info: EncodedStreamInfo) -> None:
        """A replaced track: its requests go to the new source."""
        self.info = info

    def setParameters(self, changes: list[dict[str, Any]], now: float) -> None:
        _refuseRateChanges(changes)
        for layer, change in zip(self.layers, changes, strict=False):
            layer.encoding.update(change)
        self._changed(now)

    def requestKeyFrame(self, ssrc: int | None, now: float) -> None:
        for layer in self.layers:
            if (ssrc is None or layer.stream.ssrc == ssrc) and layer.sending:
                self._request(layer, now)

    def demand(self, now: float) -> ProducerDemand:
        """Each wanted rendition at the rate it sends: it cannot be sent at less, so its
        minimum is its maximum (more, with a wait, to come back after a suspension)."""
        demand = ProducerDemand(key=self)
        if not (self._run.flowing and not self._run.muted):
            return demand
        for layer in self.layers:
            if not layer.encoding.active:
                continue
            rate = layer.bitrate(now)
            if layer.suspendedAt is not None:
                if now - layer.suspendedAt < RESUME_HOLD:
                    break  # not yet, and nothing above it either
                rate = int(rate * RESUME_FACTOR)  # coming back claims the headroom too
            demand.layers.append(LayerDemand(layer.index, rate, rate))
        return demand

    def setBitrateBudget(
        self, budget: int | None, now: float, *, congested: bool = False,
        resumeBudget: int | None = None,
    ) -> None:  # fmt: skip
        """Suspend the renditions the budget cannot carry, from the top; bring back the ones
        it can (the lowest wanted one is always sent)."""
        self._bitrate_budget = budget
        layers = self.demand(now).layers
        targets = allocate(layers, budget, NO_BOUNDS)
        # Coming back takes what the link has proven it carries, not just the estimate.
        proven = targets if resumeBudget is None else allocate(layers, resumeBudget, NO_BOUNDS)
        blocked = False  # every rendition above a suspended one is off too
        for layer in self.layers:
            suspended = layer.suspendedAt is not None
            if layer.index not in targets:
                blocked = blocked or (suspended and layer.encoding.active)
                continue
            fits = targets[layer.index] > 0 and (not suspended or proven[layer.index] > 0)
            # Until a rendition has been measured its rate is a guess: it is not suspended on
            # one (its first second shows what it sends).
            if not blocked and (fits or (not suspended and not layer.rateMeasured(now))):
                layer.suspendedAt = None
            else:
                blocked = True
                if not suspended:
                    layer.suspendedAt = now
        self._refresh(now)

    def stats(self, now: float, timestamp: float, codecId: str) -> list[Stats]:
        entries: list[Stats] = []
        for layer in self.layers:
            entry = outboundStats(
                layer.stream, kind="video", codecId=codecId, timestamp=timestamp,
                active=layer.sending,
            )  # fmt: skip
            entry.update(
                {
                    "framesEncoded": 0,
                    "framesSent": layer.stream.framesSent,
                    "framesPassedThrough": layer.framesPassed,
                    "keyFramesPassedThrough": layer.keyFramesPassed,
                    "framesPerSecond": layer.framesPerSecond(now),
                    "framesDropped": layer.framesDropped,
                    "framesRejected": layer.framesRejected,
                    "keyFrameRequests": layer.keyFrameRequests,
                    "pliCount": layer.stream.pliCount,
                    "firCount": layer.stream.firCount,
                    "encoderImplementation": "passthrough",
                    "qualityLimitationReason": (
                        "bandwidth" if layer.suspendedAt is not None else "none"
                    ),
                }
            )
            if layer.width and layer.height:
                entry["frameWidth"] = layer.width
                entry["frameHeight"] = layer.height
            entries.append(entry)
        return entries

    # Internals.

    def _request(self, layer: PassthroughLayer, now: float, *, force: bool = False) -> None:
        listener = self.info.onKeyFrameRequest
        if layer.takeRequest(now, force=force) and listener is not None:
            listener(layer.index)

    def _changed(self, now: float) -> None:
        """The renditions wanted changed: send what is wanted and ask for a new budget."""
        self._refresh(now)
        if self.onDemandChanged is not None:
            self.onDemandChanged(now)

    def _refresh(self, now: float) -> None:
        for layer in self.layers:
            sending = (
                self._run.flowing
                and not self._run.muted
                and layer.encoding.active
                and layer.suspendedAt is None
            )
            if sending == layer.sending:
                continue
            layer.sending = sending
            if sending:
                layer.waitingForKeyFrame = True
                self._request(layer, now, force=True)


class PassthroughAudioPipeline:
    """Opus packets as they are. RTP timestamps count each packet's samples (from its TOC), so
    they stay exact whatever the container's timestamp precision (WebM: milliseconds); a
    source time well past the count is a gap (DTX, loss) and moves the timestamps on, with
    the marker bit as a new talk spurt."""

    def __init__(self, config: SendConfig, stream: RtpStream, info: EncodedStreamInfo) -> None:
        self.stream = stream
        self.encoding = config.encodings[0]
        self.info = info
        self._clock = SourceClock(OPUS_SAMPLE_RATE)
        self._next_timestamp: int | None = None  # where the counted samples say we are
        self._floor = 0  # the end of the last packet sent: never go below it
        self._last_source: float | None = None
        self._run = RunState()
        self._talk_spurt = True
        self._rate = RateMeter()
        # Stats.
        self.packetsPassed = 0
        self.packetsRejected = 0  # malformed, or timestamps going backwards
        self.silencePacketsSent = 0
        self.packetsIgnored = 0

    @property
    def paused(self) -> bool:
        return self._run.paused

    @property
    def sending(self) -> bool:
        return self._run.flowing and self.encoding.active

    def start(self, now: float) -> None:
        self._run.started = True

    def stop(self) -> None:
        self._run.started = False

    def onFrame(self, frame: Any, now: float) -> SendActions:
        actions = SendActions()
        if not isinstance(frame, EncodedPacket):
            self.packetsIgnored += 1
            return actions
        if not self.sending:
            return actions
        try:
            samples = opusPacketSamples(frame.data)
        except TypeError:
            self.packetsRejected += 1
            return actions
        if self._last_source is not None and frame.timestamp < self._last_source:
            self.packetsRejected += 1
            return actions
        self._last_source = frame.timestamp
        mapped = self._clock.map(frame.timestamp, now)
        expected = self._next_timestamp
        talk_spurt = self._talk_spurt
        if expected is None:
            timestamp = max(mapped, self._floor)
        elif mapped > expected + AUDIO_TIMESTAMP_TOLERANCE * OPUS_SAMPLE_RATE:
            timestamp, talk_spurt = mapped, True
        else:
            # Within the tolerance, or a source slightly behind its own packet durations:
            # the count is exact.
            timestamp = expected
        self._talk_spurt = False
        self._next_timestamp = self._floor = timestamp + samples
        payload = opusSilence(samples) if self._run.muted else frame.data
        self._rate.add(now, len(payload))
        if self._run.muted:
            self.silencePacketsSent += 1
        else:
            self.packetsPassed += 1
        actions.packets.extend(
            self.stream.framePackets(
                [payload],
                timestamp=timestamp,
                captureTime=now,
                now=now,
                talkSpurtStart=talk_spurt,
                audioLevel=127 if self._run.muted and self.stream.writesAudioLevel else None,
            )
        )
        return actions

    def onEncoded(
        self, job: EncodeJob, result: Any, error: BaseException | None, now: float
    ) -> SendActions:
        return SendActions()

    def pause(self, now: float) -> None:
        self._run.paused = True
        self._gap()

    def resume(self, now: float) -> None:
        self._run.paused = False

    def mute(self, muted: bool, now: float) -> None:
        self._run.muted = muted

    def replaceTrack(self, present: bool, now: float) -> None:
        self._run.hasTrack = present
        self._gap()

    def setKeyFrameListener(self, info: EncodedStreamInfo) -> None:
        self.info = info

    def setParameters(self, changes: list[dict[str, Any]], now: float) -> None:
        _refuseRateChanges(changes)
        if changes:
            was_sending = self.sending
            self.encoding.update(changes[0])
            if was_sending and not self.sending:
                self._gap()

    def requestKeyFrame(self, ssrc: int | None, now: float) -> None:
        return None  # every Opus packet decodes on its own

    def demand(self, now: float) -> ProducerDemand:
        """Served first, like encoded audio, at what the source sends (its packets cannot be
        re-encoded), or Opus's usual 32 kbps before it has sent."""
        if not self.sending:
            return ProducerDemand(key=self)
        return ProducerDemand(
            key=self, reserved=self._rate.bitrate(now, default=PASSTHROUGH_AUDIO_DEFAULT)
        )

    def setBitrateBudget(
        self, budget: int | None, now: float, *, congested: bool = False,
        resumeBudget: int | None = None,
    ) -> None:  # fmt: skip
        return None  # the source's packets are sent as they are

    def stats(self, now: float, timestamp: float, codecId: str) -> list[Stats]:
        entry = outboundStats(
            self.stream, kind="audio", codecId=codecId, timestamp=timestamp, active=self.sending
        )
        entry.update(
            {
                "packetsPassedThrough": self.packetsPassed,
                "packetsRejected": self.packetsRejected,
                "silencePacketsSent": self.silencePacketsSent,
                "encoderImplementation": "passthrough",
            }
        )
        return [entry]

    def _gap(self) -> None:
        self._clock.discontinuity()
        self._next_timestamp = None
        self._last_source = None
        self._talk_spurt = True
