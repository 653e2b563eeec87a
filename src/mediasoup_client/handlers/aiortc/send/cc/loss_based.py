"""The loss-based estimate, and the one rate that comes out of all estimates (after
libwebrtc's classic send-side estimation; our own code).

Loss reports (lost and expected packets: from transport feedback, or from receiver reports
when there is none) are summed until they cover at least 20 packets; then:
- loss <= 2 %: the rate may grow 8 % over the lowest rate of the last second (plus 1 kbps);
- 2-10 %: hold;
- > 10 %: back off to rate x (1 - loss / 2), at most once per 300 ms + RTT.
The result is then capped by the delay-based estimate and the receiver's REMB (a ceiling
from its first value), and kept within the configured bounds. In the first 2 s without loss
it jumps straight to the receiver's REMB when that is all there is (without transport
feedback). A probe result resets it (the probe just proved that rate).
"""

from __future__ import annotations

from collections import deque

LOW_LOSS = 0.02
HIGH_LOSS = 0.10
MIN_PACKETS = 20
INCREASE_INTERVAL = 1.0
DECREASE_INTERVAL = 0.3
START_PHASE = 2.0


class SendSideEstimate:
    def __init__(self, startBitrate: int, *, minBitrate: int = 30_000,
                 maxBitrate: int = 30_000_000) -> None:  # fmt: skip
        self.minBitrate = minBitrate
        self.maxBitrate = maxBitrate
        self.bitrate = float(startBitrate)
        self.delayBased: float | None = None
        self.remb: float | None = None
        self.rtt = 0.0
        self.lossFraction = 0.0  # of the last complete report
        self._lost = 0
        self._expected = 0
        self._first_report: float | None = None
        self._last_loss_report: float | None = None
        self._last_decrease: float | None = None
        self._decreased_since_report = False
        self._min_history: deque[tuple[float, float]] = deque()

    def setBitrate(self, bitrate: float, now: float) -> None:
        """Start over from ``bitrate`` (a probe result, a new start)."""
        self.delayBased = None
        self._min_history.clear()
        self._cap(bitrate)

    def onDelayBased(self, bitrate: float, now: float) -> None:
        self.delayBased = bitrate
        self._cap(self.bitrate)

    def onRemb(self, bitrate: float, now: float) -> None:
        """A receiver's estimate: a ceiling from the first one on (0: the router lifted its
        limit)."""
        self.remb = bitrate if bitrate > 0 else None
        self._cap(self.bitrate)

    def onRtt(self, rtt: float) -> None:
        if rtt > 0:
            self.rtt = rtt

    def onLoss(self, lost: int, expected: int, now: float) -> None:
        if self._first_report is None:
            self._first_report = now
        if expected <= 0:
            return
        self._lost += max(0, lost)
        self._expected += expected
        if self._expected < MIN_PACKETS:
            return
        self.lossFraction = min(1.0, self._lost / self._expected)
        self._lost = self._expected = 0
        self._decreased_since_report = False
        self._last_loss_report = now
        self._update(now)

    def inStartPhase(self, now: float) -> bool:
        return self._first_report is None or now - self._first_report < START_PHASE

    def _update(self, now: float) -> None:
        bitrate = self.bitrate
        if self.lossFraction == 0 and self.inStartPhase(now) and self.delayBased is None:
            candidates = [bitrate] + [v for v in (self.remb,) if v is not None]
            best = max(candidates)
            if best != bitrate:
                self._min_history.clear()
                self._min_history.append((now, bitrate))
                self._cap(best)
                return
        self._updateMinHistory(now)
        loss = self.lossFraction
        if loss <= LOW_LOSS:
            bitrate = self._min_history[0][1] * 1.08 + 1000
        elif (
            loss > HIGH_LOSS
            and not self._decreased_since_report
            and (
                self._last_decrease is None
                or now - self._last_decrease >= DECREASE_INTERVAL + self.rtt
            )
        ):
            self._last_decrease = now
            self._decreased_since_report = True
            bitrate = self.bitrate * (1 - loss / 2)
        self._cap(bitrate)

    def _updateMinHistory(self, now: float) -> None:
        history = self._min_history
        while history and now - history[0][0] + 0.001 > INCREASE_INTERVAL:
            history.popleft()
        while history and self.bitrate <= history[-1][1]:
            history.pop()
        history.append((now, self.bitrate))

    def _cap(self, bitrate: float) -> None:
        if self.remb is not None:
            bitrate = min(bitrate, self.remb)
        if self.delayBased is not None:
            bitrate = min(bitrate, self.delayBased)
        self.bitrate = min(float(self.maxBitrate), max(float(self.minBitrate), bitrate))
