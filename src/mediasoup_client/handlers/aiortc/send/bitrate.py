"""How the video bitrate budget is split across simulcast layers, and how often encoders may
follow it.

Policy (a REMB the router sends, when it signals congestion — see ``CongestionTracker`` —
is the budget for the whole producer):
- Layers are served lowest first: each active layer gets up to its ``maxBitrate`` (the
  encoding's, else a default for its resolution) out of what remains.
- The lowest active layer is always sent, at no less than its minimum.
- A higher layer whose share would fall below its minimum (10 % of its max, at least 30 kbps)
  is suspended (not encoded, not sent), and so is every layer above it. The minimum is kept
  low on purpose: mediasoup's estimate can only grow to about 1.5x what it receives, so a
  suspended layer must be able to come back on a modest share or it never would.
- No REMB yet: the budget is ``videoGoogleStartBitrate`` if given, else unlimited. Once the
  router's first estimate arrived, the start bitrate no longer applies.
- ``videoGoogleMaxBitrate`` caps the whole budget, ``videoGoogleMinBitrate`` floors it and is
  the lowest layer's minimum.
Encoders cannot change bitrate without a new encoder (a key frame), so ``LayerRateGate``
follows the allocation with hysteresis: a new target is applied only when it differs from the
current one by more than 25 % and the layer's encoder has not been rebuilt in the last 3 s;
suspending is immediate (it costs no key frame), resuming waits for the same 3 s.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_LAYER_BITRATE = 30_000
# maxBitrate and REMB count whole RTP packets as the router sees them; RTP headers, header
# extensions and payload descriptors take 5-10 % of that at simulcast rates, so the encoder is
# asked for this share of a layer's allocation.
ENCODER_PAYLOAD_SHARE = 0.9
MIN_LAYER_FRACTION = 0.1
REBUILD_INTERVAL = 3.0
REBUILD_THRESHOLD = 0.25


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


@dataclass
class LayerDemand:
    index: int
    maxBitrate: int


@dataclass
class BudgetOptions:
    startBitrate: int | None = None  # bps
    maxBitrate: int | None = None
    minBitrate: int | None = None


def layerMinimum(maxBitrate: int) -> int:
    return min(maxBitrate, max(MIN_LAYER_BITRATE, int(maxBitrate * MIN_LAYER_FRACTION)))


def allocate(
    layers: list[LayerDemand], estimate: int | None, options: BudgetOptions
) -> dict[int, int]:
    """Target bitrate per active layer index; 0 means suspended. ``layers`` are the active
    ones, in any order."""
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
            floor = layerMinimum(layer.maxBitrate)
            if options.minBitrate is not None:
                floor = min(layer.maxBitrate, max(floor, options.minBitrate))
            share = max(floor, min(layer.maxBitrate, remaining))
        else:
            share = min(layer.maxBitrate, remaining)
            if starving or share < layerMinimum(layer.maxBitrate):
                starving = True
                share = 0
        targets[layer.index] = share
        remaining = max(0, remaining - share)
    return targets


class CongestionTracker:
    """Decides whether a REMB estimate is a real limit or only reflects what we chose to send.

    mediasoup's receive-side estimator caps its estimate at about 1.5x the bitrate it receives
    and then grows it by only ~8 %/s (it detects no probes mid-stream). Taken as a budget every
    time, an estimate lowered by our own pause or layer cap would starve the layers for tens
    of seconds after they come back. So an estimate limits the budget only once it *fell*
    below what we are sending (the estimator saw overuse), and stops limiting once it grew
    back to cover the full demand.
    """

    CONGESTION_MARGIN = 0.9

    def __init__(self) -> None:
        self.estimate: int | None = None
        self.constrained = False

    def update(self, estimate: int, sending: int, demand: int) -> None:
        # The first estimate is no fall: the estimator starts from the little it received
        # while our encoders were still starting.
        falling = self.estimate is not None and estimate < self.estimate
        if falling and estimate < sending * self.CONGESTION_MARGIN:
            self.constrained = True
        elif self.constrained and estimate >= demand:
            self.constrained = False
        self.estimate = estimate

    @property
    def budget(self) -> int | None:
        """The estimate when it limits the budget, else None."""
        return self.estimate if self.constrained else None


class LayerRateGate:
    """Decides when one layer's encoder actually follows a new target (see module doc)."""

    def __init__(self) -> None:
        self.current = 0  # bps the encoder runs at; 0 = suspended or not started
        self._last_change: float | None = None

    def update(self, target: int, now: float, *, force: bool = False) -> bool:
        """Apply ``target`` if the policy allows; True when ``current`` changed."""
        if target == self.current:
            return False
        if force or (self.current == 0 and self._last_change is None):
            return self._apply(target, now)
        if target == 0:
            # Suspending costs no key frame and relieves the link at once.
            return self._apply(0, now)
        recent = self._last_change is not None and now - self._last_change < REBUILD_INTERVAL
        if recent:
            return False
        if self.current and abs(target - self.current) / self.current <= REBUILD_THRESHOLD:
            return False
        return self._apply(target, now)

    def _apply(self, target: int, now: float) -> bool:
        self.current = target
        self._last_change = now
        return True
