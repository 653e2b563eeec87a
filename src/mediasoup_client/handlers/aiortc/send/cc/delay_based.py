"""The delay-based estimate, after libwebrtc's GoogCC design (our own code):

- ``InterArrival`` groups packets by send time (a group spans at most 5 ms of sending, and a
  packet that arrives in a burst right after its group joins it) and yields, for each pair of
  consecutive groups, how far apart they were sent and how far apart they arrived.
- ``TrendlineEstimator`` accumulates the difference (one-way delay variation), smooths it and
  fits a line through the last 20 points: a rising slope means a queue is building. The slope,
  scaled, is compared with an adaptive threshold (it rises slowly when crossed and falls
  quickly back, so the detector is not starved by competing traffic nor trigger-happy):
  overusing, normal or underusing.
- ``AimdRateControl`` turns that into a rate: increase while normal (multiplicatively, 8 %/s,
  far from the last known capacity; additively, about a packet per response time, near it),
  hold while underusing (queues draining), and back off to 85 % of the acknowledged
  throughput on overuse, at most once per RTT. It never grows past 1.5x what is actually
  acknowledged (plus 10 kbps), so an application-limited sender cannot inflate it. An
  application-limited sender (sending well below the estimate) backs off from the estimate
  instead of from what was acknowledged: the little it sent says nothing about the link.
- Probe packets do not feed the trendline, nor do the packets sent while a probe's bytes
  still fill the bottleneck's queue ("shadowed"): a probe fills that queue on purpose (its
  own estimator reads it), and the delay it causes is no sign that the media overuse the
  link. (Measured: with them counted, every probe on a saturated link cost a 15 % back-off.)

Times are seconds, rates bits per second.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum

from .history import FeedbackReport, PacketResult

GROUP_SPAN = 0.005
BURST_DELTA = 0.005
MAX_BURST_DURATION = 0.1
REORDER_RESET = 3
CLOCK_OFFSET_RESET = 3.0
STREAM_TIMEOUT = 2.0
# Sending less than this share of the estimate is being application-limited.
APP_LIMITED_SHARE = 0.65


class BandwidthUsage(Enum):
    NORMAL = "normal"
    UNDERUSING = "underusing"
    OVERUSING = "overusing"


@dataclass(slots=True)
class _Group:
    firstSend: float
    lastSend: float
    firstArrival: float
    lastArrival: float
    lastSystem: float
    size: int


@dataclass(slots=True)
class GroupDelta:
    sendDelta: float
    arrivalDelta: float
    arrivalTime: float  # of the newer group's last packet
    sizeDelta: int


class InterArrival:
    def __init__(self) -> None:
        self._current: _Group | None = None
        self._previous: _Group | None = None
        self._reordered = 0

    def reset(self) -> None:
        self._current = self._previous = None
        self._reordered = 0

    def add(self, sendTime: float, arrivalTime: float, systemTime: float, size: int
            ) -> GroupDelta | None:  # fmt: skip
        """One packet (in arrival order); the deltas between the two previous groups when
        this packet starts a new one."""
        current = self._current
        if current is None:
            self._current = _Group(sendTime, sendTime, arrivalTime, arrivalTime, systemTime, size)
            return None
        if sendTime < current.firstSend:
            return None  # sent before its group started: out of order
        result: GroupDelta | None = None
        if self._startsNewGroup(current, sendTime, arrivalTime):
            previous = self._previous
            if previous is not None:
                arrival_delta = current.lastArrival - previous.lastArrival
                system_delta = current.lastSystem - previous.lastSystem
                if arrival_delta - system_delta >= CLOCK_OFFSET_RESET:
                    self.reset()  # the receiver's clock jumped
                    return None
                if arrival_delta < 0:
                    self._reordered += 1
                    if self._reordered >= REORDER_RESET:
                        self.reset()
                        return None
                else:
                    self._reordered = 0
                    result = GroupDelta(
                        sendDelta=current.lastSend - previous.lastSend,
                        arrivalDelta=arrival_delta,
                        arrivalTime=current.lastArrival,
                        sizeDelta=current.size - previous.size,
                    )
            self._previous = current
            self._current = _Group(sendTime, sendTime, arrivalTime, arrivalTime, systemTime, size)
            return result
        current.lastSend = max(current.lastSend, sendTime)
        current.lastArrival = arrivalTime
        current.lastSystem = systemTime
        current.size += size
        return None

    @staticmethod
    def _startsNewGroup(group: _Group, sendTime: float, arrivalTime: float) -> bool:
        arrival_delta = arrivalTime - group.lastArrival
        send_delta = sendTime - group.lastSend
        if send_delta == 0:
            return False
        # A packet arriving right behind its group, sooner than it was sent after it, was
        # queued with it (a burst): same group.
        if (
            arrival_delta - send_delta < 0
            and arrival_delta <= BURST_DELTA
            and arrivalTime - group.firstArrival < MAX_BURST_DURATION
        ):
            return False
        return sendTime - group.firstSend > GROUP_SPAN


class TrendlineEstimator:
    WINDOW = 20
    SMOOTHING = 0.9
    THRESHOLD_GAIN = 4.0
    OVERUSE_TIME = 10.0  # ms over the threshold before it counts as overuse
    MIN_DELTAS = 60
    K_UP = 0.0087
    K_DOWN = 0.039
    MAX_ADAPT_OFFSET = 15.0

    def __init__(self) -> None:
        self._deltas = 0
        self._first_arrival: float | None = None
        self._accumulated = 0.0  # ms
        self._smoothed = 0.0  # ms
        self._points: deque[tuple[float, float]] = deque(maxlen=self.WINDOW)
        self.threshold = 12.5
        self._last_threshold_update: float | None = None
        self._previous_trend = 0.0
        self.modifiedTrend = 0.0
        self._time_over_using = -1.0
        self._overuse_count = 0
        self.state = BandwidthUsage.NORMAL

    def update(self, delta: GroupDelta) -> BandwidthUsage:
        variation = (delta.arrivalDelta - delta.sendDelta) * 1000
        self._deltas = min(self._deltas + 1, 1000)
        if self._first_arrival is None:
            self._first_arrival = delta.arrivalTime
        self._accumulated += variation
        self._smoothed = self.SMOOTHING * self._smoothed + (1 - self.SMOOTHING) * self._accumulated
        self._points.append(((delta.arrivalTime - self._first_arrival) * 1000, self._smoothed))
        trend = self._previous_trend
        if len(self._points) == self.WINDOW:
            slope = _slope(self._points)
            if slope is not None:
                trend = slope
        self._detect(trend, delta.sendDelta * 1000, delta.arrivalTime * 1000)
        return self.state

    def _detect(self, trend: float, sendDeltaMs: float, nowMs: float) -> None:
        if self._deltas < 2:
            self.state = BandwidthUsage.NORMAL
            return
        modified = min(self._deltas, self.MIN_DELTAS) * trend * self.THRESHOLD_GAIN
        self.modifiedTrend = modified
        if modified > self.threshold:
            if self._time_over_using == -1:
                self._time_over_using = sendDeltaMs / 2
            else:
                self._time_over_using += sendDeltaMs
            self._overuse_count += 1
            if (
                self._time_over_using > self.OVERUSE_TIME
                and self._overuse_count > 1
                and trend >= self._previous_trend
            ):
                self._time_over_using = 0
                self._overuse_count = 0
                self.state = BandwidthUsage.OVERUSING
        elif modified < -self.threshold:
            self._time_over_using = -1
            self._overuse_count = 0
            self.state = BandwidthUsage.UNDERUSING
        else:
            self._time_over_using = -1
            self._overuse_count = 0
            self.state = BandwidthUsage.NORMAL
        self._previous_trend = trend
        self._updateThreshold(modified, nowMs)

    def _updateThreshold(self, modified: float, nowMs: float) -> None:
        if self._last_threshold_update is None:
            self._last_threshold_update = nowMs
        magnitude = abs(modified)
        if magnitude > self.threshold + self.MAX_ADAPT_OFFSET:
            # A spike (e.g. a route change): do not let it drag the threshold up.
            self._last_threshold_update = nowMs
            return
        k = self.K_DOWN if magnitude < self.threshold else self.K_UP
        elapsed = min(nowMs - self._last_threshold_update, 100.0)
        self.threshold += k * (magnitude - self.threshold) * elapsed
        self.threshold = min(600.0, max(6.0, self.threshold))
        self._last_threshold_update = nowMs


def _slope(points: deque[tuple[float, float]]) -> float | None:
    """The least-squares slope of the window, in one pass (it runs for every packet group of
    every feedback; four passes were half of a feedback's cost). Times are taken from the
    window's first, so the sums stay small and the subtraction below loses nothing."""
    count = len(points)
    origin = points[0][0]
    sum_x = sum_y = sum_xx = sum_xy = 0.0
    for x, y in points:
        x -= origin
        sum_x += x
        sum_y += y
        sum_xx += x * x
        sum_xy += x * y
    denominator = sum_xx - sum_x * sum_x / count
    return (sum_xy - sum_x * sum_y / count) / denominator if denominator else None


class LinkCapacityEstimator:
    """The throughput at which overuse was seen, averaged, with its spread: near it the rate
    grows additively, far above or below it the estimate is forgotten."""

    def __init__(self) -> None:
        self.estimate: float | None = None  # bps
        self._deviation = 0.4  # normalised variance, kbps

    def upperBound(self) -> float:
        if self.estimate is None:
            return math.inf
        return self.estimate + 3 * self._spread()

    def lowerBound(self) -> float:
        if self.estimate is None:
            return 0.0
        return max(0.0, self.estimate - 3 * self._spread())

    def reset(self) -> None:
        self.estimate = None

    def onOveruse(self, throughput: float) -> None:
        self._update(throughput, 0.05)

    def _update(self, sample: float, alpha: float) -> None:
        sample_kbps = sample / 1000
        if self.estimate is None:
            estimate_kbps = sample_kbps
        else:
            estimate_kbps = (1 - alpha) * self.estimate / 1000 + alpha * sample_kbps
        error = estimate_kbps - sample_kbps
        norm = max(estimate_kbps, 1.0)
        self._deviation = (1 - alpha) * self._deviation + alpha * error * error / norm
        self._deviation = min(2.5, max(0.4, self._deviation))
        self.estimate = estimate_kbps * 1000

    def _spread(self) -> float:
        assert self.estimate is not None
        return math.sqrt(self._deviation * self.estimate / 1000) * 1000


class RateControlState(Enum):
    HOLD = "hold"
    INCREASE = "increase"
    DECREASE = "decrease"


class AimdRateControl:
    BACKOFF = 0.85
    DEFAULT_RTT = 0.2

    def __init__(self, startBitrate: int, *, minBitrate: int = 30_000,
                 maxBitrate: int = 30_000_000) -> None:  # fmt: skip
        self.minBitrate = minBitrate
        self.maxBitrate = maxBitrate
        self.bitrate = float(startBitrate)
        self._throughput = float(startBitrate)
        self.state = RateControlState.HOLD
        self._last_change: float | None = None
        self.lastDecrease: float | None = None
        self.rtt = self.DEFAULT_RTT
        self.link = LinkCapacityEstimator()

    def timeToReduceFurther(self, now: float, throughput: float) -> bool:
        interval = min(0.2, max(0.01, self.rtt))
        if self._last_change is None or now - self._last_change >= interval:
            return True
        return throughput < 0.5 * self.bitrate

    def setEstimate(self, bitrate: float, now: float) -> None:
        previous = self.bitrate
        self.bitrate = self._clamp(bitrate, bitrate)
        self._last_change = now
        if self.bitrate < previous:
            self.lastDecrease = now

    def update(self, usage: BandwidthUsage, throughput: float | None, now: float) -> float:
        if throughput is not None:
            self._throughput = throughput
        acked = self._throughput
        if usage is BandwidthUsage.NORMAL:
            if self.state is RateControlState.HOLD:
                self._last_change = now
                self.state = RateControlState.INCREASE
        elif usage is BandwidthUsage.OVERUSING:
            self.state = RateControlState.DECREASE
        else:
            self.state = RateControlState.HOLD
        new = self.bitrate
        if self.state is RateControlState.INCREASE:
            if acked > self.link.upperBound():
                self.link.reset()  # well above the old capacity: it changed
            since = now - self._last_change if self._last_change is not None else 1.0
            if self.link.estimate is not None:
                new += self._nearMaxIncreasePerSecond() * since
            else:
                new += max(self.bitrate * (1.08 ** min(since, 1.0) - 1), 1000.0)
            self._last_change = now
        elif self.state is RateControlState.DECREASE:
            new = acked * self.BACKOFF
            if new > self.bitrate and self.link.estimate is not None:
                new = self.BACKOFF * self.link.estimate
            new = min(new, self.bitrate)
            if acked < self.link.lowerBound():
                self.link.reset()
            self.link.onOveruse(acked)
            self.state = RateControlState.HOLD
            self._last_change = now
            self.lastDecrease = now
        self.bitrate = self._clamp(new, acked)
        return self.bitrate

    def _nearMaxIncreasePerSecond(self) -> float:
        frame_bits = self.bitrate / 30
        packets = max(1.0, math.ceil(frame_bits / (1200 * 8)))
        packet_bits = frame_bits / packets
        response_time = self.rtt + 0.1
        return max(4000.0, packet_bits / response_time)

    def _clamp(self, bitrate: float, throughput: float) -> float:
        ceiling = 1.5 * throughput + 10_000
        if bitrate > self.bitrate and bitrate > ceiling:
            bitrate = max(self.bitrate, ceiling)
        return min(float(self.maxBitrate), max(float(self.minBitrate), bitrate))


@dataclass(slots=True)
class DelayBasedResult:
    bitrate: float
    usage: BandwidthUsage
    probe: bool = False
    backedOff: bool = False


class DelayBasedBwe:
    """Feedback in, a delay-based rate out (``AimdRateControl`` driven by the trendline)."""

    def __init__(self, startBitrate: int, *, minBitrate: int = 30_000,
                 maxBitrate: int = 30_000_000) -> None:  # fmt: skip
        self.interArrival = InterArrival()
        self.trendline = TrendlineEstimator()
        self.rateControl = AimdRateControl(
            startBitrate, minBitrate=minBitrate, maxBitrate=maxBitrate
        )
        self._last_seen: float | None = None

    @property
    def usage(self) -> BandwidthUsage:
        return self.trendline.state

    @property
    def bitrate(self) -> float:
        return self.rateControl.bitrate

    def setRtt(self, rtt: float) -> None:
        self.rateControl.rtt = rtt

    def onFeedback(
        self,
        report: FeedbackReport,
        ackedBitrate: float | None,
        probeBitrate: float | None,
        *,
        sendBitrate: float | None = None,
    ) -> DelayBasedResult | None:
        packets = report.sortedByReceiveTime()
        if not packets:
            return None
        now = report.feedbackTime
        for packet in packets:
            if packet.cluster is None and not packet.shadowed:
                self._add(packet, now)
        control = self.rateControl
        usage = self.trendline.state
        if usage is BandwidthUsage.OVERUSING:
            basis = ackedBitrate
            if (
                basis is not None
                and sendBitrate is not None
                and sendBitrate < APP_LIMITED_SHARE * control.bitrate
            ):
                basis = max(basis, control.bitrate)  # application-limited: see module doc
            if basis is not None and control.timeToReduceFurther(now, basis):
                bitrate = control.update(usage, basis, now)
                return DelayBasedResult(bitrate, usage, backedOff=True)
            if ackedBitrate is None and control.timeToReduceFurther(now, control.bitrate / 2 - 1):
                control.setEstimate(control.bitrate / 2, now)
                return DelayBasedResult(control.bitrate, usage, backedOff=True)
            return DelayBasedResult(control.bitrate, usage)
        if probeBitrate is not None:
            control.setEstimate(probeBitrate, now)
            return DelayBasedResult(control.bitrate, usage, probe=True)
        return DelayBasedResult(control.update(usage, ackedBitrate, now), usage)

    def _add(self, packet: PacketResult, now: float) -> None:
        if self._last_seen is None or now - self._last_seen > STREAM_TIMEOUT:
            self.interArrival.reset()
            self.trendline = TrendlineEstimator()
        self._last_seen = now
        assert packet.receiveTime is not None
        delta = self.interArrival.add(packet.sendTime, packet.receiveTime, now, packet.size)
        if delta is not None:
            self.trendline.update(delta)
