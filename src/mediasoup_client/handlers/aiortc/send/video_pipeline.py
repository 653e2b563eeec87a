"""Video: one source read once, one encoder + RTP stream per encoding (simulcast layer).

With an ``EncoderHub`` and a source (``setSource``: the track), each layer encodes through
the hub's shared encoder for that source and its settings, so producers of one track on any
transport encode each frame once (``layer_encoder.py``).

Pure: each source frame is mapped onto the producer's media clock and offered to every layer
that is sending; the layers hand back encode jobs. The pipeline owns the layers' sending state
(pause, mute, active flags, bandwidth) and splits the budget the transport gives it (its share
of the bandwidth estimate, ``setBitrateBudget``) across them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import av
import numpy as np

from .bitrate import (
    RESUME_FACTOR,
    RESUME_HOLD,
    RESUME_STABLE,
    LayerDemand,
    ProducerDemand,
    allocate,
    defaultMaxBitrate,
    layerMinimum,
)
from .clock import MediaClock
from .config import SendConfig
from .encoders import VIDEO_CLOCK_RATE
from .layer_encoder import EncoderHub, LayerEncoder
from .pipeline import EncodeJob, RunState, SendActions, Stats
from .rtp_stream import OutgoingRtp, RtpStream
from .stats import outboundStats
from .video_layer import EncodeResult, VideoLayer


def blackFrame(width: int, height: int) -> av.VideoFrame:
    """What a disabled video track shows: black (limited-range luma 16, neutral chroma)."""
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, value in zip(frame.planes, (16, 128, 128), strict=True):
        plane.update(np.full(plane.buffer_size, value, dtype=np.uint8).tobytes())
    return frame


class VideoPipeline:
    def __init__(
        self, config: SendConfig, streams: list[RtpStream], *, hub: EncoderHub | None = None
    ) -> None:
        self._budget = config.budget
        self._hub = hub
        self._source: object = None  # what shared encoders are keyed by (None: not shared)
        # Packets of our layers brought by another producer's encode job (set by the driver).
        self.onPackets: Callable[[SendActions], None] | None = None
        count = len(config.encodings)
        self.layers = [
            VideoLayer(
                encoding=encoding,
                # libwebrtc's default for simulcast without scaleResolutionDownBy: 4, 2, 1.
                defaultScale=float(2 ** (count - 1 - encoding.index)),
                stream=stream,
                mimeType=config.mimeType,
            )
            for encoding, stream in zip(config.encodings, streams, strict=True)
        ]
        for layer in self.layers:
            layer.output = self._output
        self._clock = MediaClock(VIDEO_CLOCK_RATE)
        self._run = RunState()
        self._bitrate_budget: int | None = None  # the transport's share for us (None: no limit)
        self._resume_budget: int | None = None  # the share the link has shown it carries
        self._congested = False
        # The transport's allocator, told when what we could use changed (it answers with
        # setBitrateBudget); without one the pipeline splits its last budget itself.
        self.onDemandChanged: Callable[[float], None] | None = None
        self._force = False
        self._force_resuming = False
        # Layers suspended for bandwidth that the budget would allow again: since when.
        self._resume_since: dict[int, float] = {}
        self._source_size: tuple[int, int] | None = None
        self._black: av.VideoFrame | None = None

    @property
    def paused(self) -> bool:
        return self._run.paused

    @property
    def budget(self) -> int | None:
        return self._bitrate_budget

    # MediaPipeline.

    def start(self, now: float) -> None:
        self._run.started = True
        self._refresh(now)
        self._demandChanged(now)

    def stop(self) -> None:
        self._run.started = False
        for layer in self.layers:
            layer.setSending(False)
            layer.close()

    def onFrame(self, frame: Any, now: float) -> SendActions:
        actions = SendActions()
        if not isinstance(frame, av.VideoFrame) or not self._run.started or self._run.paused:
            return actions
        source_time = (
            float(frame.pts * frame.time_base)
            if frame.pts is not None and frame.time_base is not None
            else None
        )
        timestamp = self._clock.map(source_time, now)
        size = (frame.width, frame.height)
        if size != self._source_size:
            self._source_size = size
            self._black = None
            for layer in self.layers:
                layer.resize(*size)
            self._demandChanged(now, force=True)
        if self._run.muted:
            if self._black is None:
                self._black = blackFrame(*size)
            frame = self._black
        for layer in self.layers:
            if layer.sending:
                # Muted: our own black frames, nobody else's to share.
                layer.regroup(self._hub, None if self._run.muted else self._source, now)
                job, packets = layer.offer(frame, timestamp, now, now)
                if job is not None:
                    actions.jobs.append(job)
                actions.packets.extend(packets)
        return actions

    def onEncoded(
        self, job: EncodeJob, result: Any, error: BaseException | None, now: float
    ) -> SendActions:
        encoder = job.owner
        assert isinstance(encoder, LayerEncoder)
        encoded = result if isinstance(result, EncodeResult) else None
        deliveries, following = encoder.onEncoded(job, encoded, error, now)
        actions = SendActions()
        for layer, packets in deliveries:
            if layer.output == self._output:
                actions.packets.extend(packets)
            elif packets and layer.output is not None:
                layer.output(packets)  # a layer of another producer sharing the encoder
        if following is not None:
            actions.jobs.append(following)
        return actions

    def setSource(self, source: object, now: float) -> None:
        """The source frames come from (the track object; None: unknown, never shared)."""
        self._source = source

    def pause(self, now: float) -> None:
        self._run.paused = True
        self._clock.discontinuity()
        self._refresh(now)
        self._demandChanged(now)

    def resume(self, now: float) -> None:
        self._run.paused = False
        self._demandChanged(now, forceResuming=True)

    def mute(self, muted: bool, now: float) -> None:
        if muted == self._run.muted:
            return
        self._run.muted = muted
        for layer in self.layers:
            # Whatever was waiting belongs to the other side of the switch.
            layer.discard()
            layer.requestKeyFrame()

    def replaceTrack(self, present: bool, now: float) -> None:
        self._run.hasTrack = present
        self._clock.discontinuity()
        self._refresh(now)
        self._demandChanged(now, forceResuming=True)
        for layer in self.layers:
            # The key frame must be the new track's first frame, not a leftover of the old one.
            layer.discard()
            layer.requestKeyFrame()

    def setParameters(self, changes: list[dict[str, Any]], now: float) -> None:
        """Per-encoding changes. Only ``active`` changes: layers coming back take their share
        at once (setMaxSpatialLayer); any other field: every layer does (explicit change)."""
        explicit = False
        for layer, change in zip(self.layers, changes, strict=False):
            layer.encoding.update(change)
            explicit = explicit or any(key != "active" for key in change)
            if self._source_size is not None:
                layer.resize(*self._source_size)
        self._demandChanged(now, force=explicit, forceResuming=not explicit)

    def requestKeyFrame(self, ssrc: int | None, now: float) -> None:
        """A PLI or FIR for one layer's SSRC (None: every layer)."""
        for layer in self.layers:
            if ssrc is None or layer.stream.ssrc == ssrc:
                layer.requestKeyFrame(remote=True)

    def demand(self, now: float) -> ProducerDemand:
        """What this producer could use: its active layers with the minimum each needs to
        be sent (a layer suspended for bandwidth needs more to come back, and not at once)."""
        demand = ProducerDemand(key=self, options=self._budget)
        self._updateCeilings()
        if not self._run.flowing:
            return demand
        for layer in self.layers:
            if not layer.encoding.active or layer.width == 0:
                continue
            minimum = layerMinimum(layer.maxBitrate, layer.width * layer.height)
            gate = layer.gate
            if gate.current == 0 and gate.suspendedAt is not None:
                if now - gate.suspendedAt < RESUME_HOLD:
                    minimum = 1 << 40  # not yet
                else:
                    minimum = int(minimum * RESUME_FACTOR)
            demand.layers.append(LayerDemand(layer.index, layer.maxBitrate, minimum))
        return demand

    def setBitrateBudget(
        self, budget: int | None, now: float, *, congested: bool = False,
        resumeBudget: int | None = None,
    ) -> None:  # fmt: skip
        """This producer's share of the transport's estimate (None: no limit). ``congested``:
        the pacer is backed up, encoders over budget should come down even by a little."""
        self._bitrate_budget = budget
        self._resume_budget = resumeBudget
        self._congested = congested
        force, forceResuming = self._force, self._force_resuming
        self._force = self._force_resuming = False
        self._reallocate(now, force=force, forceResuming=forceResuming)

    def stats(self, now: float, timestamp: float, codecId: str) -> list[Stats]:
        entries: list[Stats] = []
        for layer in self.layers:
            entry = outboundStats(
                layer.stream, kind="video", codecId=codecId, timestamp=timestamp,
                active=layer.sending,
            )  # fmt: skip
            entry.update(layer.stats(now))
            limited = layer.gate.current < layer.maxBitrate or (
                not layer.sending and layer.gate.current == 0 and layer.width > 0
            )
            entry["qualityLimitationReason"] = (
                "bandwidth"
                if limited and layer.encoding.active and self._bitrate_budget is not None
                else "none"
            )
            entries.append(entry)
        return entries

    # Internals.

    def _demandChanged(
        self, now: float, *, force: bool = False, forceResuming: bool = False
    ) -> None:
        """Layers, sizes or state changed: get a new budget from the transport (or split the
        last one again when there is no transport allocator)."""
        self._force = self._force or force
        self._force_resuming = self._force_resuming or forceResuming
        if self.onDemandChanged is not None:
            self.onDemandChanged(now)
        else:
            self.setBitrateBudget(
                self._bitrate_budget, now, congested=self._congested,
                resumeBudget=self._resume_budget,
            )  # fmt: skip

    def _updateCeilings(self) -> None:
        for layer in self.layers:
            if layer.width:
                configured = layer.encoding.maxBitrate
                layer.maxBitrate = configured or defaultMaxBitrate(layer.width, layer.height)

    def _reallocate(self, now: float, *, force: bool = False, forceResuming: bool = False) -> None:
        """Split the budget again. ``force``: every layer takes its new target now (explicit
        parameter change, new resolution); ``forceResuming``: only layers coming back do."""
        self._updateCeilings()
        demands = self.demand(now).layers if self._run.started else [
            LayerDemand(layer.index, layer.maxBitrate)
            for layer in self.layers
            if layer.encoding.active and layer.width
        ]
        # The start bitrate is where the transport's estimate starts, not a cap here.
        options = replace(self._budget, startBitrate=None)
        targets = allocate(demands, self._bitrate_budget, options)
        proven = (
            allocate(demands, self._resume_budget, options)
            if self._resume_budget is not None
            else targets
        )
        for layer in self.layers:
            gate = layer.gate
            target = targets.get(layer.index, 0)
            if target and gate.current == 0 and gate.suspendedAt is not None and not force:
                # Back from a bandwidth suspension only once the budget has held for a while,
                # and only within what the link has shown it carries.
                if not proven.get(layer.index):
                    targets[layer.index] = 0
                    self._resume_since.pop(layer.index, None)
                    continue
                since = self._resume_since.setdefault(layer.index, now)
                if now - since < RESUME_STABLE:
                    targets[layer.index] = 0
                else:
                    del self._resume_since[layer.index]
                    # Start low: an estimate the link has not carried yet (a probe's, while
                    # this layer was off) may be wrong, and a resumed layer begins with a key
                    # frame. It rises from there as the gate allows.
                    minimum = layerMinimum(layer.maxBitrate, layer.width * layer.height)
                    targets[layer.index] = min(target, int(minimum * RESUME_FACTOR))
            else:
                self._resume_since.pop(layer.index, None)
                if gate.current and target > gate.current and not force:
                    # Rises too stay within what the link has shown it carries: an estimate
                    # that grew while we sent less than it says is not proof (measured: a
                    # rise on it overran a 600 kbit/s link by 10 %).
                    proof = proven.get(layer.index, 0)
                    targets[layer.index] = max(gate.current, min(target, proof))
            if layer.index in targets:
                layer.gate.update(
                    targets[layer.index],
                    now,
                    force=force or (forceResuming and not layer.sending),
                    congested=self._congested,
                )
        self._refresh(now)

    def _refresh(self, now: float) -> None:
        for layer in self.layers:
            layer.setSending(
                self._run.flowing
                and layer.encoding.active
                and layer.width > 0
                and layer.gate.current > 0
            )
            layer.regroup(self._hub, None if self._run.muted else self._source, now)

    def _output(self, packets: list[OutgoingRtp]) -> None:
        if self.onPackets is not None:
            self.onPackets(SendActions(packets=packets))
