"""One video encoding (simulcast layer): its size, rate gate, sending state and RTP stream.

Pure decisions. The encoding itself (scaling, encoder, key frames, the frame waiting and the
one in flight) is a ``LayerEncoder`` (``layer_encoder.py``): the layer's private one, or one
shared with every layer of the same source and settings on any producer or transport (encode
once, fan out). While a job is in flight, the newest offered frame waits (an older waiting one
is dropped and counted), so nothing piles up whatever the source or the CPU does. The job
scales, encodes and packetises in a worker thread; its result comes back through the encoder's
``onEncoded``, which hands each member its packets (``deliver``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import av

from .bitrate import LayerRateGate
from .config import EncodingState
from .encoders import EncodedFrame
from .layer_encoder import (
    DEFAULT_FRAMERATE,
    KEY_FRAME_MIN_INTERVAL,
    REGROUP_HOLD,
    EncodeResult,
    EncoderHub,
    EncoderKey,
    LayerEncoder,
    Stamp,
    _EncodeCall,
    privateCopy,
)
from .pipeline import EncodeJob, Stats
from .rtp_stream import OutgoingRtp, RtpStream

__all__ = [
    "DEFAULT_FRAMERATE",
    "KEY_FRAME_MIN_INTERVAL",
    "EncodeResult",
    "VideoLayer",
    "layerSize",
    "privateCopy",
]


def layerSize(sourceWidth: int, sourceHeight: int, scale: float) -> tuple[int, int]:
    """The layer's resolution: the source divided by ``scale``, rounded down to even."""
    scale = max(1.0, scale)
    width = max(2, int(sourceWidth / scale) & ~1)
    height = max(2, int(sourceHeight / scale) & ~1)
    return width, height


class VideoLayer:
    """One encoding's state. ``encoding`` is the only copy of its settings."""

    def __init__(
        self, *, encoding: EncodingState, defaultScale: float, stream: RtpStream, mimeType: str
    ) -> None:
        self.encoding = encoding
        self.stream = stream
        self.mimeType = mimeType
        self._default_scale = defaultScale
        self._private = LayerEncoder(mimeType, encoding.temporalLayers)
        self._private.join(self)
        self.encoder = self._private  # the one feeding this layer now
        self.gate = LayerRateGate(inPlace=self._private.encoder.changesBitrateLive)
        self.width = 0
        self.height = 0
        self.sending = False
        self.maxBitrate = 0  # the ceiling used for allocation (encoding's or default)
        # The encoder's output this stream sent last (its pts): a frame referring to anything
        # else is not sent (its receiver lacks the reference) until a key frame comes.
        self._last_pts: int | None = None
        self._moved_at = float("-inf")
        # Where packets of a shared encoder's results go when another producer's job
        # brought them (set by the pipeline).
        self.output: Callable[[list[OutgoingRtp]], None] | None = None
        self._hub: EncoderHub | None = None  # the hub of the shared encoder in use
        # Shared encoders' counters while this layer was a member (stats).
        self._shared_rebuilds = 0
        self._shared_live_changes = 0
        self._marks = (0, 0)
        # Stats.
        self.framesEncoded = 0
        self.keyFramesEncoded = 0
        self.framesDropped = 0  # dropped because the encoder was behind
        self.framesAwaitingKey = 0  # encoded but not sent: waiting for a key frame
        self.encoderMoves = 0  # switches between private and shared encoders
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
        return self.encoder.busy

    @property
    def shared(self) -> bool:
        return self.encoder is not self._private

    def framesPerSecond(self, now: float) -> float:
        return float(sum(1 for t in self._sent_times if now - t <= 1.0))

    def close(self) -> None:
        """Forget everything in flight and release the encoders (a new one opens on
        demand)."""
        self._leaveShared()
        self._private.close()

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
        else:
            # Stop at once: the waiting frame and any frame being encoded are not sent.
            self.discard()
            self._leaveShared()

    def discard(self) -> None:
        """Drop the waiting frame and whatever is being encoded now (for this layer)."""
        if self.shared:
            self.encoder.discard(self)
        else:
            self._private.reset()

    def requestKeyFrame(self, *, remote: bool = False) -> None:
        """Make the next frame a key frame (see ``LayerEncoder.requestKeyFrame``)."""
        self.encoder.requestKeyFrame(remote=remote)

    def regroup(self, hub: EncoderHub | None, source: object, now: float) -> None:
        """Use the shared encoder of ``source`` (None: unshared) with this layer's settings
        whose rate fits, or the private one when sharing is not possible now."""
        if hub is None or source is None or not self.sending or not self.width:
            if self.shared:
                self._move(self._private, now)
            return
        key = EncoderKey(
            source, self.mimeType.lower(), self.width, self.height, self.maxFramerate,
            self.encoding.temporalLayers,
        )  # fmt: skip
        current = self.encoder
        if current.key == key and current.fits(self):
            better = hub.better(self) if now - self._moved_at >= REGROUP_HOLD else None
            if better is not None:
                self._move(better, now, hub)
            return
        # A new key, or rates that no longer agree: move now (merging back waits above).
        self._move(hub.place(self, key, self.mimeType), now, hub)

    def offer(
        self, frame: av.VideoFrame, timestamp: int, captureTime: float, now: float
    ) -> tuple[EncodeJob | None, list[OutgoingRtp]]:
        """A source frame for this layer: a job to run now (or None: busy, not sending, or
        skipped for the frame rate), and packets when it was already encoded for others."""
        if not self.sending:
            return None, []
        return self.encoder.offer(self, frame, Stamp(timestamp, captureTime), now)

    def deliver(
        self, call: _EncodeCall, result: EncodeResult, encoded: EncodedFrame, stamp: Stamp,
        now: float,
    ) -> list[OutgoingRtp]:  # fmt: skip
        """An encoded frame of this layer's encoder: its packets on this layer's stream, or
        none when the stream lacks what the frame refers to (a key frame is asked for)."""
        if not encoded.keyFrame and (
            self._last_pts is None or call.previousPts != self._last_pts
        ):
            self.framesAwaitingKey += 1
            self.encoder.requestKeyFrame()
            return []
        self._last_pts = call.pending.pts
        self.framesEncoded += 1
        self.totalEncodeTime += result.elapsed
        self.lastEncodedWidth = encoded.width
        self.lastEncodedHeight = encoded.height
        if encoded.keyFrame:
            self.keyFramesEncoded += 1
        self._sent_times.append(now)
        return self.stream.framePackets(
            result.payloads,
            timestamp=stamp.timestamp,
            captureTime=stamp.captureTime,
            now=now,
        )

    def stats(self, now: float) -> Stats:
        """The encoder side of this layer's outbound-rtp entry."""
        video = self.encoder.encoder
        rebuilds, live = self._private.encoder.rebuilds, self._private.encoder.liveChanges
        rebuilds += self._shared_rebuilds
        live += self._shared_live_changes
        if self.shared:
            rebuilds += video.rebuilds - self._marks[0]
            live += video.liveChanges - self._marks[1]
        entry: Stats = {
            "framesEncoded": self.framesEncoded,
            "keyFramesEncoded": self.keyFramesEncoded,
            "framesSent": self.stream.framesSent,
            "frameWidth": self.lastEncodedWidth,
            "frameHeight": self.lastEncodedHeight,
            "framesPerSecond": self.framesPerSecond(now),
            # What the encoder runs at: a shared one at the lowest its members allow.
            "targetBitrate": self.encoder.rate if self.sending else self.gate.current,
            "totalEncodeTime": self.totalEncodeTime,
            "framesDropped": self.framesDropped,
            "pliCount": self.stream.pliCount,
            "firCount": self.stream.firCount,
            "encoderImplementation": video.implementation,
            # Library figures: how often the target changed, and how (a rebuilt encoder
            # starts with a key frame; a live change does not).
            "encoderRebuilds": rebuilds,
            "encoderBitrateChanges": live,
            "scaleResolutionDownBy": self.scale,
            # Encode once for many: how many layers (of any producer) this encoder feeds.
            "encoderShared": len(self.encoder.members) if self.shared else 1,
        }
        if self.maxFramerate:
            entry["maxFramerate"] = self.maxFramerate
        if self.encoding.scalabilityMode:
            entry["scalabilityMode"] = self.encoding.scalabilityMode
        return entry

    # Internals.

    def _move(self, target: LayerEncoder, now: float, hub: EncoderHub | None = None) -> None:
        current = self.encoder
        if target is current:
            return
        if self.shared:
            self._shared_rebuilds += current.encoder.rebuilds - self._marks[0]
            self._shared_live_changes += current.encoder.liveChanges - self._marks[1]
            current.leave(self)
            if self._hub is not None:
                self._hub.release(current)
        else:
            self._private.reset()  # what it has in flight is no longer this stream's
        self._hub = hub
        if target is not self._private:
            target.join(self)  # asks for a key frame
            self._marks = (target.encoder.rebuilds, target.encoder.liveChanges)
        else:
            self._private.reset()
            self._private.requestKeyFrame()
        self.encoder = target
        self._last_pts = None  # the new encoder's frames refer to nothing this stream sent
        self._moved_at = now
        self.encoderMoves += 1

    def _leaveShared(self) -> None:
        if self.shared:
            self._move(self._private, self._moved_at)
