"""How the transport's bandwidth estimate is split across producers and simulcast layers, and
how often encoders follow it.

Policy (``allocateTransport`` for the transport, ``allocate`` within one producer):
- Audio is served first and in full: its bitrate is fixed by its codec options and it is the
  last thing a call should lose.
- What remains goes to video layers lowest first, across producers: every producer's lowest
  layer, then every second layer, and so on; each layer gets up to its ``maxBitrate`` (the
  encoding's, else a default for its resolution).
- The lowest active layer of a producer is always sent, at no less than its minimum.
- A higher layer that would get less than its minimum is suspended (not encoded, not sent),
  and so is every layer above it. The minimum is what the layer's resolution needs to keep
  its frame rate (measured with libvpx on the test pattern: 720p needs about 600 kbps, 360p
  about 200 kbps, 180p about 65 kbps, so ``600 kbps x (pixels / 720p) ^ 0.8``), at least
  10 % of its max and 30 kbps, at most its max. Coming back takes ``RESUME_FACTOR`` times the
  minimum (hysteresis: a layer must not flap on the estimate's sawtooth), not sooner than
  ``RESUME_HOLD`` after it was suspended, and only once the budget has allowed it for
  ``RESUME_STABLE`` (a probe's brief high estimate must not bring back a layer whose first
  key frame would then overflow the link).
- ``videoGoogleMaxBitrate`` caps a producer's share, ``videoGoogleMinBitrate`` floors it and
  is the lowest layer's minimum. (``videoGoogleStartBitrate`` is where the transport's
  estimate starts, see ``cc/controller.py``.)

Encoders follow their layer's target through ``LayerRateGate``. libx264 takes a lower bitrate
on the open encoder (measured: PyAV's ``bit_rate`` set between frames is followed within a few
frames, no key frame), up to the rate it was opened with; libvpx (VP8, VP9) does not
(measured: it keeps the rate it was opened with), so a change there, like a libx264 rise past
its opening rate, means a new encoder and a key frame. The gate therefore lets
in-place encoders follow closely and makes rebuilds rare: large drops at once, small ones
only while the pacer's queue shows the encoder is over budget, and rises only to the lowest
target of the last ``RISE_WINDOW`` (what the estimate's sawtooth has kept offering, not its
peak; measured: rising to each peak rebuilt a 360p layer every 2-3 s, each rise undone by
the next back-off).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MIN_LAYER_BITRATE = 30_000
# maxBitrate and the estimate count whole RTP packets as the router sees them; RTP headers,
# header extensions and payload descriptors take 5-10 % of that at simulcast rates, so the
# encoder is asked for this share of a layer's allocation.
ENCODER_PAYLOAD_SHARE = 0.9
MIN_LAYER_FRACTION = 0.1
RESUME_FACTOR = 1.25
RESUME_HOLD = 2.0
RESUME_STABLE = 1.5
# The bitrate a 1280x720 layer needs for its full frame rate (VP8, measured).
MIN_720P_BITRATE = 600_000

# Rebuilding encoders (libvpx): a change costs a key frame.
REBUILD_INTERVAL = 3.0  # seconds between rises
REBUILD_DROP_INTERVAL = 1.0  # seconds between drops
REBUILD_THRESHOLD = 0.25  # a rise must exceed this share of the current rate
REBUILD_DROP_THRESHOLD = 0.3  # a drop this large applies at once
REBUILD_CONGESTED_DROP = 0.05  # a smaller one applies while the pacer is backed up
RISE_WINDOW = 5.0  # rises go to the lowest target offered over this long
# In-place encoders (libx264): only noise is filtered out.
INPLACE_INTERVAL = 0.25
INPLACE_THRESHOLD = 0.05


def encoderBitrate(wireBitrate: int) -> int:
    """The encoder target that keeps a layer's packets within ``wireBitrate`` on the wire."""
    return int(wireBitrate * ENCODER_PAYLOAD_SHARE)


def defaultMaxBitrate(width: int, height: int) -> int:
    """A layer's bitrate ceiling when its encoding gives no ``maxBitrate``: 2.5 Mbps at 720p,
    scaled by pixel count to the power 0.75 (close to libwebrtc's simulcast table), within
    30 kbps .. 5 Mbps."""
    pixels = max(1, width * height)
    bitrate = 2_500_000 * (pixels / (1280 * 720)) ** 0.75
    return int(min(5_000_000, max(30_000, bitrate)))


def layerMinimum(maxBitrate: int, pixels: int = 0) -> int:
    """Below this a layer is not worth sending (see the module doc); ``pixels`` 0: unknown."""
    for_size = int(MIN_720P_BITRATE * (pixels / (1280 * 720)) ** 0.8) if pixels else 0
    return min(
        maxBitrate, max(MIN_LAYER_BITRATE, int(maxBitrate * MIN_LAYER_FRACTION), for_size)
    )


@dataclass
class LayerDemand:
    index: int
    maxBitrate: int
    # What the layer needs to be sent (or to come back); None: the default minimum.
    minBitrate: int | None = None

    @property
    def minimum(self) -> int:
        return layerMinimum(self.maxBitrate) if self.minBitrate is None else self.minBitrate


@dataclass
class BudgetOptions:
    startBitrate: int | None = None  # bps
    maxBitrate: int | None = None
    minBitrate: int | None = None


def allocate(
    layers: list[LayerDemand], estimate: int | None, options: BudgetOptions
) -> dict[int, int]:
    """Target bitrate per active layer index; 0 means suspended. ``layers`` are the active
    ones, in any order; ``estimate`` None: no limit (``options.startBitrate`` if given)."""
    budget = estimate if estimate is not None else options.startBitrate
    if options.maxBitrate is not None:
        budget = options.maxBitrate if budget is None else min(budget, options.maxBitrate)
    if budget is not None and options.minBitrate is not None:
        budget = max(budget, options.minBitrate)
    targets: dict[int, int] = {}
    remaining = budget
    starving = False
    for position, layer in enumerate(sorted(layers, key=lambda layer: layer.index)):
        if remaining is None:
            targets[layer.index] = layer.maxBitrate
            continue
        if position == 0:
            floor = min(layer.maxBitrate, layer.minimum)
            if options.minBitrate is not None:
                floor = min(layer.maxBitrate, max(floor, options.minBitrate))
            share = max(floor, min(layer.maxBitrate, remaining))
        else:
            share = min(layer.maxBitrate, remaining)
            if starving or remaining < layer.minimum:
                starving = True
                share = 0
        targets[layer.index] = share
        remaining = max(0, remaining - share)
    return targets


@dataclass
class ProducerDemand:
    """One producer's claim on the transport: audio a fixed ``reserved`` rate, video its
    active layers (lowest first) and its ``videoGoogle*Bitrate`` bounds."""

    key: object
    reserved: int = 0
    layers: list[LayerDemand] = field(default_factory=list)
    options: BudgetOptions = field(default_factory=BudgetOptions)

    @property
    def demand(self) -> int:
        total = sum(layer.maxBitrate for layer in self.layers)
        if self.options.maxBitrate is not None:
            total = min(total, self.options.maxBitrate)
        return self.reserved + total


def allocateTransport(estimate: int, producers: list[ProducerDemand]) -> dict[object, int]:
    """Each video producer's budget out of ``estimate``: audio reserved first, then layers
    position by position across producers (see the module doc)."""
    remaining = estimate - sum(p.reserved for p in producers)
    video = [p for p in producers if p.layers]
    ordered = {id(p): sorted(p.layers, key=lambda layer: layer.index) for p in video}
    budgets: dict[object, int] = {p.key: 0 for p in video}
    stopped: set[int] = set()
    depth = max((len(layers) for layers in ordered.values()), default=0)
    for position in range(depth):
        for producer in video:
            layers = ordered[id(producer)]
            if position >= len(layers) or id(producer) in stopped:
                continue
            layer = layers[position]
            cap = layer.maxBitrate
            if producer.options.maxBitrate is not None:
                cap = min(cap, producer.options.maxBitrate - budgets[producer.key])
            if position == 0:
                floor = min(layer.maxBitrate, layer.minimum)
                if producer.options.minBitrate is not None:
                    floor = max(floor, producer.options.minBitrate)
                share = max(floor, min(cap, max(0, remaining)))
            elif cap <= 0 or remaining < layer.minimum:
                stopped.add(id(producer))
                continue
            else:
                share = min(cap, remaining)
            budgets[producer.key] += share
            remaining -= share
    return budgets


class LayerRateGate:
    """Decides when one layer's encoder actually follows a new target (see module doc)."""

    def __init__(self, *, inPlace: bool = False) -> None:
        self.inPlace = inPlace
        self.current = 0  # bps the encoder runs at; 0 = suspended or not started
        self._last_change: float | None = None
        self.suspendedAt: float | None = None
        self.changes = 0
        self._offered: deque[tuple[float, int]] = deque()  # (time, target), last RISE_WINDOW
        self._opened = 0  # the rate the encoder was (re)built at: in-place changes stay below

    def update(
        self, target: int, now: float, *, force: bool = False, congested: bool = False
    ) -> bool:
        """Apply ``target`` if the policy allows; True when ``current`` changed."""
        current = self.current
        offered = self._offered
        offered.append((now, target))
        while offered and now - offered[0][0] > RISE_WINDOW:
            offered.popleft()
        if target == current:
            if target == 0 and self.suspendedAt is None:
                self.suspendedAt = now  # held back for bandwidth from the start
            return False
        if force or current == 0:
            # First rate, an explicit change, or coming back: nothing to protect.
            return self._apply(target, now)
        if target == 0:
            # Suspending costs no key frame and relieves the link at once.
            return self._apply(0, now)
        since = now - self._last_change if self._last_change is not None else float("inf")
        change = (target - current) / current
        if self.inPlace and target <= self._opened:
            if since >= INPLACE_INTERVAL and abs(change) > INPLACE_THRESHOLD:
                return self._apply(target, now)
            return False
        if self.inPlace and current < self._opened:
            # Up to the opening rate in place first; past it is a rebuild.
            if since >= INPLACE_INTERVAL:
                return self._apply(self._opened, now)
            return False
        if change < 0:
            drop = -change
            if drop >= REBUILD_DROP_THRESHOLD and since >= REBUILD_DROP_INTERVAL / 4:
                return self._apply(target, now)
            if congested and drop > REBUILD_CONGESTED_DROP and since >= REBUILD_DROP_INTERVAL:
                return self._apply(target, now)
            return False
        sustained = min(t for _when, t in offered)
        if sustained > current * (1 + REBUILD_THRESHOLD) and since >= REBUILD_INTERVAL:
            return self._apply(sustained, now)
        return False

    def _apply(self, target: int, now: float) -> bool:
        if target == 0 and self.current:
            self.suspendedAt = now
        if target == 0 or self.current == 0:
            self._offered.clear()  # a new run: its rises count from now
        if not self.inPlace or target > self._opened or self.current == 0:
            self._opened = target  # a new encoder
        self.current = target
        self._last_change = now
        self.changes += 1
        return True
