"""Probing: short clusters of packets sent faster than the estimate, to find out whether the
link carries more (after libwebrtc's probe controller and probe estimator; our own policy).

When the controller asks for a cluster (``ProbeCluster``), the pacer sends at its rate for at
least ``PROBE_DURATION`` (and ``MIN_PROBE_BYTES``) and ``MIN_PROBE_PACKETS`` packets, media
first and padding to fill; every packet is tagged with the cluster id. ``ProbeEstimator`` reads
the cluster back from the feedback: the rate it was sent at and the rate its last third
arrived at (a token-bucket shaper lets the first kilobytes of a burst through at line speed:
measured from the first packet, a 600 kbit/s link with a 3 kB bucket looked twice as fast,
and a probe only a little faster than the link never empties the bucket at all; hence
clusters of at least ``MIN_PROBE_BYTES`` (8 kB), at twice the estimate or more); when it arrived
slower than it was sent the link is saturated and the arrival rate (x 0.95) is the result.

``ProbeController`` decides when (times in seconds, rates in bps):
- at the start, when the estimate is below what the producers could use: 3x the start rate,
  then (while each result reaches 70 % of what was probed) twice the result (libwebrtc sends
  a 6x cluster right behind the 3x one; on a slow link that pair overflowed a 100 ms queue
  and took an audio packet with it, so the second step waits for the first's result);
- when the producers' demand grows (a layer or a producer added, a higher max bitrate);
- while the estimate limits the producers and the link looks healthy (no overuse, little
  loss, no back-off for a while): at twice the estimate, going on exponentially while
  results keep up; first ``LIMITED_PROBE_INTERVAL`` after the last probe, then, while probes
  find nothing new, ever less often (x1.5 each time, up to ``MAX_LIMITED_PROBE_INTERVAL``: a
  probe fills a saturated link's queue for a moment, and a link that got faster must still
  be found within seconds). This is how a link that got faster is found
  within seconds rather than by 8 %/s growth.
Probes never go above twice the demand: bandwidth nobody would use is not worth finding.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import Enum

from .history import PacketResult

PROBE_DURATION = 0.04
MIN_PROBE_BYTES = 8_000
MEASURED_SHARE = 1 / 3  # the tail of the cluster (by bytes) whose arrival rate counts
MIN_PROBE_PACKETS = 5
MIN_RECEIVED_SHARE = 0.8
MAX_PROBE_INTERVAL = 1.0
PROBE_RESULT_TIMEOUT = 1.0
FURTHER_PROBE_THRESHOLD = 0.7
LIMITED_PROBE_INTERVAL = 3.0
MAX_LIMITED_PROBE_INTERVAL = 5.0
LIMITED_PROBE_SCALE = 2.0
QUIET_AFTER_BACKOFF = 2.0
CLUSTER_HISTORY = 1.0


@dataclass(slots=True)
class ProbeCluster:
    id: int
    bitrate: int
    minBytes: int
    minPackets: int = MIN_PROBE_PACKETS
    createdAt: float = 0.0


class _State(Enum):
    INIT = "init"
    WAITING = "waiting"  # for a result that may lead to probing further
    DONE = "done"


class ProbeController:
    def __init__(self, startBitrate: int, *, maxBitrate: int = 30_000_000) -> None:
        self._ids = itertools.count(1)
        self._start = startBitrate
        self._max = maxBitrate
        self._state = _State.INIT
        self._estimate = float(startBitrate)
        self._demand = 0
        self._further_above: float | None = None
        self._last_probe: float | None = None
        self._last_backoff: float | None = None
        self.enabled = True
        self.clustersCreated = 0
        self._limited_interval = LIMITED_PROBE_INTERVAL

    def setStartBitrate(self, bitrate: int) -> None:
        if self._state is _State.INIT:
            self._start = bitrate
            self._estimate = float(bitrate)

    def onBackoff(self, now: float) -> None:
        self._last_backoff = now

    def onProbeResult(self, result: float | None, now: float) -> None:
        """What a probe measured (None: nothing, or nothing above the estimate)."""
        if result is not None and result > 1.1 * self._estimate:
            self._limited_interval = LIMITED_PROBE_INTERVAL
        elif self._state is not _State.INIT:
            self._limited_interval = min(MAX_LIMITED_PROBE_INTERVAL, self._limited_interval * 1.5)

    def onDemand(self, demand: int, now: float) -> list[ProbeCluster]:
        """The most the producers could send now (every active layer at its max)."""
        previous, self._demand = self._demand, demand
        if not self.enabled or demand <= 0:
            return []
        if self._state is _State.INIT:
            return self._initial(now)
        if self._state is _State.DONE and demand > previous and self._estimate < demand:
            return self._probe(now, [demand], further=False)
        return []

    def onEstimate(
        self, estimate: float, now: float, *, probeResult: float | None = None
    ) -> list[ProbeCluster]:
        """The new estimate; ``probeResult``: what a probe just measured (only a probe that
        kept up with most of its rate leads to probing further)."""
        self._estimate = estimate
        if (
            probeResult is not None
            and self._state is _State.WAITING
            and self._further_above is not None
            and probeResult > self._further_above
        ):
            return self._probe(now, [2 * probeResult], further=True)
        return []

    def process(self, now: float, *, healthy: bool) -> list[ProbeCluster]:
        timed_out = self._last_probe is not None and now - self._last_probe > PROBE_RESULT_TIMEOUT
        if timed_out and self._state is _State.WAITING:
            self._state = _State.DONE
            self._further_above = None
        if not self.enabled or self._demand <= 0:
            return []
        if self._state is _State.INIT:
            return self._initial(now)
        limited = self._estimate < 0.95 * self._demand
        quiet = self._last_backoff is None or now - self._last_backoff >= QUIET_AFTER_BACKOFF
        due = self._last_probe is None or now - self._last_probe >= self._limited_interval
        if self._state is _State.DONE and limited and healthy and quiet and due:
            return self._probe(now, [LIMITED_PROBE_SCALE * self._estimate], further=True)
        return []

    def _initial(self, now: float) -> list[ProbeCluster]:
        if self._estimate >= self._demand:
            self._state = _State.DONE
            return []
        return self._probe(now, [3 * self._start], further=True)

    def _probe(self, now: float, rates: list[float], *, further: bool) -> list[ProbeCluster]:
        ceiling = min(self._max, 2 * self._demand)
        clusters: list[ProbeCluster] = []
        for rate in rates:
            if rate >= ceiling:
                rate = ceiling
                further = False
            if rate <= self._estimate:
                continue
            clusters.append(
                ProbeCluster(
                    id=next(self._ids),
                    bitrate=int(rate),
                    minBytes=max(MIN_PROBE_BYTES, int(rate * PROBE_DURATION / 8)),
                    createdAt=now,
                )
            )
        self._last_probe = now
        self.clustersCreated += len(clusters)
        if further and clusters:
            self._state = _State.WAITING
            self._further_above = FURTHER_PROBE_THRESHOLD * clusters[-1].bitrate
        else:
            self._state = _State.DONE
            self._further_above = None
        return clusters


@dataclass(slots=True)
class _Aggregate:
    minBytes: int
    minPackets: int
    sends: list[tuple[float, int]] = field(default_factory=list)  # (send time, size)
    receives: list[tuple[float, int]] = field(default_factory=list)  # (receive time, size)
    lastSequence: int = -1  # the newest transport-wide sequence number sent in it
    finished: bool = False  # the pacer sent all of it
    evaluated: bool = False


class ProbeEstimator:
    def __init__(self) -> None:
        self._clusters: dict[int, _Aggregate] = {}
        self.lastResult: float | None = None
        # The last cluster measured: probed, send and arrival rate (bps), packets.
        self.lastProbe: dict[str, float] = {}

    def register(self, cluster: ProbeCluster) -> None:
        self._clusters[cluster.id] = _Aggregate(cluster.minBytes, cluster.minPackets)

    def onSent(self, clusterId: int, sequence: int | None) -> None:
        cluster = self._clusters.get(clusterId)
        if cluster is not None and sequence is not None:
            cluster.lastSequence = max(cluster.lastSequence, sequence)

    def onFinished(self, clusterId: int) -> None:
        cluster = self._clusters.get(clusterId)
        if cluster is not None:
            cluster.finished = True

    def onResults(self, results: list[PacketResult]) -> float | None:
        """Feedback results; the newest estimate of a cluster they complete, if any. A
        cluster is measured once, when the pacer has sent all of it and feedback covered its
        last packet (part of a cluster looks faster than the link: see the module doc)."""
        if not self._clusters:
            return None  # no probe to measure (most feedback: skip the pass over it)
        newest: float | None = None
        reported = -1
        for result in results:
            reported = max(reported, result.sequence)
            if result.receiveTime is None:
                continue
            newest = result.receiveTime if newest is None else max(newest, result.receiveTime)
            if result.cluster is None or result.cluster not in self._clusters:
                continue
            cluster = self._clusters[result.cluster]
            cluster.sends.append((result.sendTime, result.size))
            cluster.receives.append((result.receiveTime, result.size))
        estimate: float | None = None
        for cluster_id, cluster in sorted(self._clusters.items()):
            if cluster.evaluated or not cluster.finished or cluster.lastSequence > reported:
                continue
            if cluster.lastSequence < 0:
                continue
            cluster.evaluated = True
            value = self._estimate(cluster)
            if value is not None:
                estimate = value
                self.lastProbe["cluster"] = cluster_id
        if newest is not None:
            self._clusters = {
                k: c for k, c in self._clusters.items()
                if not c.evaluated or newest - max(t for t, _s in c.receives) <= CLUSTER_HISTORY
            }  # fmt: skip
        if estimate is not None:
            self.lastResult = estimate
        return estimate

    def _estimate(self, cluster: _Aggregate) -> float | None:
        size = sum(s for _t, s in cluster.receives)
        if (
            len(cluster.receives) < cluster.minPackets * MIN_RECEIVED_SHARE
            or size < cluster.minBytes * MIN_RECEIVED_SHARE
        ):
            return None
        sends = sorted(cluster.sends)
        send_interval = sends[-1][0] - sends[0][0]
        # The arrival rate of the last part (by bytes): past any burst allowance.
        receives = sorted(cluster.receives)
        skip = size * (1 - MEASURED_SHARE)
        counted = 0
        middle = 0
        for index, (_t, s) in enumerate(receives):
            counted += s
            if counted >= skip:
                middle = index
                break
        middle = min(middle, len(receives) - 2)
        receive_interval = receives[-1][0] - receives[middle][0]
        if not (
            0 < send_interval <= MAX_PROBE_INTERVAL and 0 < receive_interval <= MAX_PROBE_INTERVAL
        ):
            return None
        send_rate = (size - sends[-1][1]) * 8 / send_interval
        receive_rate = sum(s for _t, s in receives[middle + 1 :]) * 8 / receive_interval
        if receive_rate > 2 * send_rate:
            return None  # arrival times compressed beyond belief
        estimate = min(send_rate, receive_rate)
        if receive_rate < 0.9 * send_rate:
            estimate = 0.95 * receive_rate
        self.lastProbe = {
            "sendRate": int(send_rate),
            "receiveRate": int(receive_rate),
            "packets": len(receives),
            "bytes": size,
            "result": int(estimate),
        }
        return estimate
