"""Encode once for many: one video encoder feeding every layer that sends the same source
with the same settings, on any producer and any transport.

Pure. A ``LayerEncoder`` is the encoding half of a simulcast layer (scaler, encoder,
packetiser, the frame waiting and the one in flight, key frames, frame-rate limit); its
members are ``VideoLayer``s, each with its own RTP stream (SSRC, sequence numbers; SRTP is its
transport's). Every layer has a private one; layers of one source (``EncoderKey``) join a
shared one from the ``EncoderHub`` instead, so N producers of one track cost one scale and one
encode per frame plus N packetisations.

Rules that keep every receiver decodable and honest:
- A member sends an encoded frame only if it sent the frame that frame refers to (the
  encoder's previous output) or the frame is a key frame; otherwise it waits for a key frame
  (asked for at once). So a member joining mid-stream starts its receiver with a key frame.
- Remote key-frame requests (PLI/FIR) of all members are one request: one key frame answers
  every request that came within ``KEY_FRAME_MIN_INTERVAL`` of the last, for every member.
- The encoder runs at the lowest rate its members' transports allow, so no transport gets
  more than its congestion controller granted. Members share only while their rates agree
  within ``SHARE_TOLERANCE``: a member outside it moves at once to another shared encoder
  whose rate fits or to a new one; a member alone in one joins a fitting one again once
  ``REGROUP_HOLD`` has passed since its last move (each move costs its receiver a key frame,
  so a member never moves twice within that).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import av
from av.video.reformatter import VideoReformatter

from .audio_fanout import OpusHub
from .bitrate import encoderBitrate
from .clock import FramerateLimiter, MediaClock, RateControlClock
from .encoders import VIDEO_CLOCK_RATE, EncodedFrame, VideoEncoder
from .packetizers import Packetizer, createPacketizer
from .pipeline import EncodeJob
from .rtp_stream import OutgoingRtp

if TYPE_CHECKING:
    from .video_layer import VideoLayer

logger = logging.getLogger(__name__)

# Remote key frame requests closer than this to the last key frame are held back until it has
# passed (one PLI burst from many consumers must not turn into a burst of key frames).
KEY_FRAME_MIN_INTERVAL = 0.3
DEFAULT_FRAMERATE = 30.0
# Members share an encoder while the lowest rate among them is at least this share of the
# highest (the encoder runs at the lowest).
SHARE_TOLERANCE = 0.8
# Merging back into a fuller shared encoder waits this long after a member's last move (s).
REGROUP_HOLD = 2.0


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


def sourceTime(frame: av.VideoFrame) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


@dataclass(frozen=True, slots=True)
class EncoderKey:
    """What layers must have in common to share an encoder: the source (the track object)
    and every setting the encoder or packetiser depends on."""

    source: object
    mimeType: str
    width: int
    height: int
    maxFramerate: float | None
    temporalLayers: int


@dataclass(slots=True)
class EncodeResult:
    encoded: EncodedFrame | None
    payloads: list[bytes]
    elapsed: float  # seconds spent scaling, encoding and packetising


@dataclass(slots=True)
class Stamp:
    """One member's RTP timing of a source frame (its own media clock)."""

    timestamp: int
    captureTime: float


@dataclass(slots=True)
class _Pending:
    frame: av.VideoFrame
    pts: int  # the encoder's own clock
    stamps: dict[VideoLayer, Stamp] = field(default_factory=dict)


@dataclass(slots=True)
class _EncodeCall:
    """Scale, encode and packetise one frame: the body of an encode job (runs in a worker
    thread; an encoder has at most one in flight)."""

    reformatter: VideoReformatter
    encoder: VideoEncoder
    packetizer: Packetizer
    pending: _Pending
    previousPts: int | None  # the encoder's last output: what this frame refers to
    encoderPts: int  # the pts its rate control sees (RateControlClock)
    width: int
    height: int
    keyFrame: bool
    bitrate: int
    framerate: float

    def __call__(self) -> EncodeResult:
        started = time.perf_counter()
        frame = self.pending.frame
        # Each encoder has its own reformatter: the one cached on a frame is not safe to
        # share between threads (concurrent use from several layers deadlocks).
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
            pts=self.encoderPts,
            keyFrame=self.keyFrame,
            bitrate=self.bitrate,
            framerate=self.framerate,
        )
        payloads = self.packetizer.packetize(encoded) if encoded is not None else []
        return EncodeResult(encoded, payloads, time.perf_counter() - started)


@dataclass(slots=True)
class _Done:
    """The last frame encoded: a member offering it late (the result came back before its
    producer saw the frame) still gets it."""

    frame: av.VideoFrame
    call: _EncodeCall
    result: EncodeResult
    encoded: EncodedFrame


Delivery = tuple["VideoLayer", list[OutgoingRtp]]


class LayerEncoder:
    """One encoder and the layers it feeds (see the module doc)."""

    def __init__(
        self, mimeType: str, temporalLayers: int = 1, *, key: EncoderKey | None = None
    ) -> None:
        self.key = key  # None: a layer's private encoder
        self.members: list[VideoLayer] = []
        self.encoder = VideoEncoder(mimeType, temporalLayers=temporalLayers)
        self._reformatter = VideoReformatter()
        self._packetizer = createPacketizer(mimeType)
        self._clock = MediaClock(VIDEO_CLOCK_RATE)
        self._limiter = FramerateLimiter(VIDEO_CLOCK_RATE)
        self._rate_clock: RateControlClock | None = None
        self._pending: _Pending | None = None
        self._inflight: _EncodeCall | None = None
        # The last frame the rate limit skipped, and who offered it.
        self._rejected: tuple[av.VideoFrame, set[VideoLayer]] | None = None
        self._done: _Done | None = None
        self._last_output_pts: int | None = None
        self._epoch = 0
        self._key_requested = False
        self._key_forced = False
        self._last_key_frame = float("-inf")
        self._encode_failures = 0
        self.framesEncoded = 0  # encodes run (each fanned out to every member)
        self.keyFramesEncoded = 0

    @property
    def busy(self) -> bool:
        return self._inflight is not None

    @property
    def rate(self) -> int:
        """The bitrate the encoder runs at: the lowest its members' transports allow."""
        rates = [m.gate.current for m in self.members if m.gate.current > 0]
        return min(rates) if rates else 0

    def fits(self, member: VideoLayer) -> bool:
        """Whether ``member`` (its rate now) and the others agree within SHARE_TOLERANCE."""
        rates = [m.gate.current for m in self.members if m is not member]
        rates.append(member.gate.current)
        return min(rates) >= SHARE_TOLERANCE * max(rates)

    # Membership.

    def join(self, member: VideoLayer) -> None:
        if member in self.members:
            return
        # No key frame asked for yet: the member's first frame from here may be one anyway
        # (its first frame, or other members joined along); if it is not, ``deliver`` skips
        # it and asks for one.
        self.members.append(member)

    def leave(self, member: VideoLayer) -> None:
        if member not in self.members:
            return
        self.members.remove(member)
        self.discard(member)
        if not self.members:
            self.reset()
            if self.key is not None:
                self.encoder.close()

    def discard(self, member: VideoLayer) -> None:
        """Drop ``member``'s share of the waiting frame and of the one being encoded."""
        pending = self._pending
        if pending is not None:
            pending.stamps.pop(member, None)
            if not pending.stamps:
                self._pending = None
        if self._inflight is not None:
            self._inflight.pending.stamps.pop(member, None)
        if self._done is not None:
            self._done.call.pending.stamps.pop(member, None)

    def close(self) -> None:
        """Forget everything in flight and release the encoder (a new one opens on demand)."""
        self.reset()
        self.encoder.close()

    # Key frames.

    def requestKeyFrame(self, *, remote: bool = False) -> None:
        """Make the next frame a key frame. Remote requests (PLI/FIR) are held back while the
        last key frame is younger than KEY_FRAME_MIN_INTERVAL; our own (resume, new track,
        a member joining or missing a frame) are not: a receiver lacks the references."""
        if remote:
            self._key_requested = True
        else:
            self._key_forced = True

    # Frames.

    def offer(
        self, member: VideoLayer, frame: av.VideoFrame, stamp: Stamp, now: float
    ) -> tuple[EncodeJob | None, list[OutgoingRtp]]:
        """``member``'s producer has source frame ``frame``: a job to run now (or None), and
        packets at once when the frame was encoded before this member saw it."""
        if member not in self.members:
            return None, []
        # Another member's producer already offered this frame object: the same frame. (The
        # same member offering it again, e.g. a reused black frame, is a new frame.)
        pending = self._pending
        if pending is not None and pending.frame is frame and member not in pending.stamps:
            pending.stamps[member] = stamp
            return None, []
        call = self._inflight
        if call is not None and call.pending.frame is frame and member not in call.pending.stamps:
            call.pending.stamps[member] = stamp  # read back on the event loop only
            return None, []
        done = self._done
        if done is not None and done.frame is frame and member not in done.call.pending.stamps:
            done.call.pending.stamps[member] = stamp
            return None, member.deliver(done.call, done.result, done.encoded, stamp, now)
        rejected = self._rejected
        if rejected is not None and rejected[0] is frame and member not in rejected[1]:
            rejected[1].add(member)
            return None, []
        pts = self._clock.map(sourceTime(frame), now)
        if not self._limiter.accept(pts, member.maxFramerate):
            self._rejected = (frame, {member})
            return None, []
        if pending is not None:
            for waiting in pending.stamps:
                waiting.framesDropped += 1  # replaced before the encoder was free
        self._pending = _Pending(frame, pts, {member: stamp})
        return (None if self.busy else self._nextJob(now)), []

    def onEncoded(
        self, job: EncodeJob, result: EncodeResult | None, error: BaseException | None, now: float
    ) -> tuple[list[Delivery], EncodeJob | None]:
        """The job's result: the packets for each member, and the next job if a frame waits."""
        call, self._inflight = self._inflight, None
        deliveries: list[Delivery] = []
        if call is None:
            return deliveries, None
        if error is not None or result is None:
            # A broken frame or encoder must not end the stream: start afresh next frame
            # (logged once per run of failures, not once per frame).
            if not self._encode_failures:
                logger.error("video encoding failed", exc_info=error)
            self._encode_failures += 1
            self.encoder.close()
            self._last_output_pts = None
        else:
            self._encode_failures = 0
            encoded = result.encoded
            if job.epoch != self._epoch or encoded is None:
                if call.keyFrame:
                    self._key_forced = True
            else:
                self._last_output_pts = call.pending.pts
                self.framesEncoded += 1
                if encoded.keyFrame:
                    self.keyFramesEncoded += 1
                    self._last_key_frame = now
                self._done = _Done(call.pending.frame, call, result, encoded)
                for member, stamp in list(call.pending.stamps.items()):
                    if member in self.members:
                        deliveries.append(
                            (member, member.deliver(call, result, encoded, stamp, now))
                        )
        return deliveries, (self._nextJob(now) if self.members else None)

    # Internals.

    def reset(self) -> None:
        """Forget the waiting frame and whatever is being encoded (for every member)."""
        self._epoch += 1
        self._pending = None
        self._done = None
        self._rejected = None

    def _takeKeyRequest(self, now: float) -> bool:
        # With temporal layers a key frame may only start a pattern period: one elsewhere
        # would leave the lower layers referencing frames they never received.
        if not self.encoder.atPatternStart:
            return False
        if self._key_forced or (
            self._key_requested and now - self._last_key_frame >= KEY_FRAME_MIN_INTERVAL
        ):
            self._key_forced = self._key_requested = False
            return True
        return False

    def _nextJob(self, now: float) -> EncodeJob | None:
        pending, self._pending = self._pending, None
        if pending is None or not pending.stamps:
            return None
        bitrate = self.rate
        if bitrate <= 0:
            return None
        first = next(iter(pending.stamps))
        framerate = first.maxFramerate or DEFAULT_FRAMERATE
        if self._rate_clock is None:
            self._rate_clock = RateControlClock(framerate, VIDEO_CLOCK_RATE)
        key = self._takeKeyRequest(now)
        call = self._inflight = _EncodeCall(
            self._reformatter,
            self.encoder,
            self._packetizer,
            pending,
            self._last_output_pts,
            self._rate_clock.map(pending.pts, now),
            first.width,
            first.height,
            key,
            encoderBitrate(bitrate),
            framerate,
        )
        return EncodeJob(owner=self, epoch=self._epoch, run=call, shared=self.key is not None)


class EncoderHub:
    """The shared video encoders of a process, by key, and the Opus ones (``opus``); pure (one
    event loop uses it)."""

    def __init__(self) -> None:
        self._groups: dict[EncoderKey, list[LayerEncoder]] = {}
        self.opus = OpusHub()  # the audio side (``audio_fanout.py``)

    def encoders(self, key: EncoderKey) -> list[LayerEncoder]:
        return list(self._groups.get(key, ()))

    @property
    def encoderCount(self) -> int:
        return sum(len(groups) for groups in self._groups.values())

    def place(self, member: VideoLayer, key: EncoderKey, mimeType: str) -> LayerEncoder:
        """A shared encoder for ``member``: the fullest whose rate fits it, else a new one."""
        groups = self._groups.setdefault(key, [])
        fitting = [g for g in groups if g is not member.encoder and g.fits(member)]
        if fitting:
            return max(fitting, key=lambda g: len(g.members))
        encoder = LayerEncoder(mimeType, key.temporalLayers, key=key)
        groups.append(encoder)
        return encoder

    def better(self, member: VideoLayer) -> LayerEncoder | None:
        """For a member alone in its shared encoder: a fuller one of its key that fits it."""
        current = member.encoder
        if current.key is None or len(current.members) > 1:
            return None
        fitting = [
            g for g in self._groups.get(current.key, ())
            if g is not current and g.members and g.fits(member)
        ]  # fmt: skip
        return max(fitting, key=lambda g: len(g.members)) if fitting else None

    def release(self, encoder: LayerEncoder) -> None:
        """Forget ``encoder`` once it has no members."""
        if encoder.key is None or encoder.members:
            return
        groups = self._groups.get(encoder.key)
        if groups is not None and encoder in groups:
            groups.remove(encoder)
            if not groups:
                del self._groups[encoder.key]
