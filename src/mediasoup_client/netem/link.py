"""One direction of an impaired link: packets and times in, what leaves when out. Pure.

A packet offered at time ``t`` goes through, in order:

1. the drop decisions: outage, random loss, Gilbert-Elliott burst loss (seeded randomness);
2. the bottleneck: a FIFO queue drained by a token bucket at ``rate`` (bucket depth
   ``bucket`` bytes, ``overhead`` bytes counted per datagram); a packet that would wait longer
   than ``queueDelay`` or overflow ``queueBytes`` is dropped on arrival (tail drop);
3. the delay line: ``delay`` +- ``jitter`` after leaving the bottleneck, in order unless
   ``reorderByJitter``; ``reorder`` holds a share of packets back by ``reorderDelay``;
   a packet due while an outage is on is dropped too (nothing gets through an outage).

Time is whatever clock the caller uses (seconds). Departures are computed exactly from the
bucket, not from when ``poll`` is called, so a late poll delays packets without changing the
rate. Plan phases switch at their exact times, between the packets due before and after.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from .spec import LinkConfig, Phase, Plan, cleanPlan

DROP_CAUSES = ("outage", "loss", "burst", "queue")


@dataclass
class TagCounters:
    """What happened to the packets of one tag (a packet class or an RTP SSRC)."""

    packetsIn: int = 0
    bytesIn: int = 0
    packetsDropped: int = 0
    packetsDelivered: int = 0
    bytesDelivered: int = 0
    # RTP only: delivered packets with the marker bit (the last packet of a video frame).
    markersDelivered: int = 0

    def asDict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class LinkCounters:
    packetsIn: int = 0
    bytesIn: int = 0
    packetsDelivered: int = 0
    bytesDelivered: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_CAUSES, 0))
    bytesDropped: int = 0
    # Time spent in the bottleneck queue by the packets that left it.
    queueDelaySum: float = 0.0
    queueDelayMax: float = 0.0
    queuedPackets: int = 0  # packets that left the queue (the count behind the sum)
    tags: dict[Hashable, TagCounters] = field(default_factory=dict)


@dataclass
class _Packet:
    payload: Any
    size: int  # payload bytes
    wireSize: int  # what the rate cap counts
    tag: Hashable
    marker: bool
    arrival: float


class Link:
    """One direction. ``offer()`` packets, then ``poll()`` for what leaves by a time;
    ``nextEventTime()`` says when ``poll`` has something to do next."""

    def __init__(self, plan: Plan | None = None, *, seed: int | None = None, now: float = 0.0):
        self.seed = seed if seed is not None else random.SystemRandom().randrange(1 << 31)
        self._random = random.Random(self.seed)
        self.counters = LinkCounters()
        self._queue: deque[_Packet] = deque()
        self._queueBytes = 0  # wire bytes waiting in the bottleneck
        self._tokens = 0.0
        self._tokensTime = now
        self._delayLine: list[tuple[float, int, _Packet]] = []
        self._sequence = 0  # heap tie-breaker: equal times leave in arrival order
        self._lastInOrder = -math.inf
        self._bad = False  # Gilbert-Elliott state
        self._ready: list[tuple[Any, float]] = []
        self._phases: deque[tuple[float, Phase]] = deque()
        self._config = LinkConfig()
        self.phaseLog: list[tuple[float, str]] = []
        self.setPlan(now, plan or cleanPlan())

    # Configuration.
    @property
    def config(self) -> LinkConfig:
        return self._config

    def setPlan(self, now: float, plan: Plan) -> None:
        """Replace the plan from ``now`` on (packets already queued or in flight stay)."""
        self._advance(now)
        self._phases.clear()
        start = now
        for phase in plan:
            self._phases.append((start, phase))
            if phase.duration is None:
                break
            start += phase.duration
        self._applyDuePhases(now)

    def configure(self, now: float, config: LinkConfig) -> None:
        self.setPlan(now, (Phase(config, None),))

    # Packets.
    def offer(
        self, now: float, payload: Any, size: int, tag: Hashable = None, marker: bool = False
    ) -> bool:
        """A packet arrives at ``now``; False if it was dropped on arrival."""
        self._advance(now)
        config = self._config
        counters = self.counters
        counters.packetsIn += 1
        counters.bytesIn += size
        tagCounters = counters.tags.get(tag)
        if tagCounters is None:
            tagCounters = counters.tags[tag] = TagCounters()
        tagCounters.packetsIn += 1
        tagCounters.bytesIn += size
        cause = self._dropCause(config)
        wireSize = size + config.overhead
        if cause is None and config.rate is not None and not self._fits(now, wireSize, config):
            cause = "queue"
        if cause is not None:
            counters.dropped[cause] += 1
            counters.bytesDropped += size
            tagCounters.packetsDropped += 1
            return False
        packet = _Packet(payload, size, wireSize, tag, marker, now)
        if config.rate is None and not self._queue:
            self._toDelayLine(packet, now, config)
        else:
            self._queue.append(packet)
            self._queueBytes += wireSize
        return True

    def poll(self, now: float) -> list[tuple[Any, float]]:
        """The packets that leave by ``now``, in order, each with the time it was due."""
        self._advance(now)
        ready, self._ready = self._ready, []
        return ready

    def nextEventTime(self) -> float | None:
        """When ``poll`` will next have a packet or a phase change to handle."""
        times = []
        if self._ready:
            return -math.inf
        if self._delayLine:
            times.append(self._delayLine[0][0])
        if self._queue:
            times.append(self._departureOfHead(self._config))
        if len(self._phases) > 1:
            times.append(self._phases[1][0])
        return min(times) if times else None

    @property
    def queueBytes(self) -> int:
        return self._queueBytes

    @property
    def inFlight(self) -> int:
        return len(self._queue) + len(self._delayLine) + len(self._ready)

    def snapshot(self, now: float) -> dict[str, Any]:
        """Counters (cumulative) and current state, JSON-compatible (tags as strings)."""
        self._advance(now)
        c = self.counters
        rate = self._config.rate
        return {
            "config": self._config.describe(),
            "seed": self.seed,
            "packetsIn": c.packetsIn,
            "bytesIn": c.bytesIn,
            "packetsDelivered": c.packetsDelivered,
            "bytesDelivered": c.bytesDelivered,
            "dropped": dict(c.dropped),
            "packetsDropped": sum(c.dropped.values()),
            "bytesDropped": c.bytesDropped,
            "queueDelaySum": c.queueDelaySum,
            "queueDelayMax": c.queueDelayMax,
            "queuedPackets": c.queuedPackets,
            "queueBytes": self._queueBytes,
            "queueDelayNow": self._queueBytes * 8 / rate if rate else 0.0,
            "inFlight": self.inFlight,
            "tags": {str(tag): t.asDict() for tag, t in c.tags.items()},
            "phases": [{"time": t, "config": text} for t, text in self.phaseLog],
        }

    # Internals.
    def _dropCause(self, config: LinkConfig) -> str | None:
        if config.outage:
            return "outage"
        if config.loss and self._random.random() < config.loss:
            return "loss"
        gilbert = config.gilbert
        if gilbert is not None:
            # Step the chain, then lose the packet with the new state's probability.
            if self._bad:
                if self._random.random() < gilbert.r:
                    self._bad = False
            elif self._random.random() < gilbert.p:
                self._bad = True
            lossNow = gilbert.lossBad if self._bad else gilbert.lossGood
            if lossNow and self._random.random() < lossNow:
                return "burst"
        return None

    def _fits(self, now: float, wireSize: int, config: LinkConfig) -> bool:
        assert config.rate is not None
        if config.queueBytes is not None:
            return self._queueBytes + wireSize <= config.queueBytes
        assert config.queueDelay is not None
        # FIFO: every token from now on goes to the packets ahead of this one first.
        tokens = self._tokensAt(now, config)
        wait = (self._queueBytes + wireSize - tokens) * 8 / config.rate
        return wait <= config.queueDelay

    def _tokensAt(self, when: float, config: LinkConfig, atLeast: int = 0) -> float:
        """Tokens (bytes) at ``when``; the bucket holds at least ``atLeast`` so that a packet
        larger than the bucket still leaves (tbf requires a bucket of one MTU or more)."""
        assert config.rate is not None
        elapsed = max(0.0, when - self._tokensTime)
        return min(float(max(config.bucket, atLeast)), self._tokens + elapsed * config.rate / 8)

    def _departureOfHead(self, config: LinkConfig) -> float:
        head = self._queue[0]
        if config.rate is None:
            return max(head.arrival, self._tokensTime)
        start = max(head.arrival, self._tokensTime)
        tokens = self._tokensAt(start, config, head.wireSize)
        if tokens >= head.wireSize:
            return start
        return start + (head.wireSize - tokens) * 8 / config.rate

    def _advance(self, now: float) -> None:
        """Everything due by ``now``, phase changes included at their exact times."""
        while len(self._phases) > 1 and self._phases[1][0] <= now:
            boundary = self._phases[1][0]
            self._flush(boundary, inclusive=False)
            self._phases.popleft()
            self._enter(boundary)
        self._flush(now, inclusive=True)

    def _applyDuePhases(self, now: float) -> None:
        while len(self._phases) > 1 and self._phases[1][0] <= now:
            self._phases.popleft()
        self._enter(now)

    def _enter(self, when: float) -> None:
        config = self._phases[0][1].config
        if config.rate is not None and self._config.rate is None:
            # A cap starts with a full bucket, from now (not from the last capped time).
            self._tokens, self._tokensTime = float(config.bucket), when
        elif config.rate is not None:
            self._tokens = self._tokensAt(when, self._config)
            self._tokensTime = when
        self._config = config
        if not self.phaseLog or self.phaseLog[-1][1] != config.describe():
            self.phaseLog.append((when, config.describe()))

    def _flush(self, until: float, *, inclusive: bool) -> None:
        config = self._config
        queue = self._queue
        while queue:
            departure = self._departureOfHead(config)
            if departure > until or (departure == until and not inclusive):
                break
            packet = queue.popleft()
            self._queueBytes -= packet.wireSize
            if config.rate is not None:
                self._tokens = self._tokensAt(departure, config, packet.wireSize) - packet.wireSize
            self._tokensTime = departure
            waited = departure - packet.arrival
            counters = self.counters
            counters.queueDelaySum += waited
            counters.queuedPackets += 1
            if waited > counters.queueDelayMax:
                counters.queueDelayMax = waited
            self._toDelayLine(packet, departure, config)
        line = self._delayLine
        while line and (line[0][0] < until or (inclusive and line[0][0] == until)):
            due, _, packet = heapq.heappop(line)
            self._leave(packet, due, config)

    def _toDelayLine(self, packet: _Packet, departure: float, config: LinkConfig) -> None:
        due = departure + config.delay
        if config.jitter:
            due = max(departure, due + self._random.uniform(-config.jitter, config.jitter))
        held = bool(config.reorder) and self._random.random() < config.reorder
        if held:
            due += config.reorderDelay
        elif not config.reorderByJitter:
            due = max(due, self._lastInOrder)
            self._lastInOrder = due
        if due <= departure and not self._delayLine and not held:
            # Nothing to wait for: straight out (the common clean-link case).
            self._leave(packet, due, config)
            return
        self._sequence += 1
        heapq.heappush(self._delayLine, (due, self._sequence, packet))

    def _leave(self, packet: _Packet, due: float, config: LinkConfig) -> None:
        counters = self.counters
        tag = counters.tags[packet.tag]
        if config.outage:
            counters.dropped["outage"] += 1
            counters.bytesDropped += packet.size
            tag.packetsDropped += 1
            return
        counters.packetsDelivered += 1
        counters.bytesDelivered += packet.size
        tag.packetsDelivered += 1
        tag.bytesDelivered += packet.size
        if packet.marker:
            tag.markersDelivered += 1
        self._ready.append((packet.payload, due))
