"""The acknowledged bitrate: how fast the receiver got our packets, from their arrival times.

Bytes are summed over fixed windows of receive time (500 ms for the first sample, 150 ms then);
each window's rate is a sample, fused with the running estimate by their uncertainties (a
sample far from the estimate counts little unless the estimate was already uncertain; the
uncertainty grows a little with every sample so a real change is followed within a second).
"""

from __future__ import annotations

INITIAL_WINDOW = 0.5
WINDOW = 0.15
UNCERTAINTY_SCALE = 10.0


class ThroughputEstimator:
    def __init__(self) -> None:
        self._sum = 0  # bytes in the current window
        self._elapsed = 0.0  # seconds of the current window so far
        self._previous: float | None = None
        self._estimate: float | None = None  # kbps
        self._variance = 50.0

    @property
    def bitrate(self) -> float | None:
        """bps, None until the first window is complete."""
        return None if self._estimate is None else self._estimate * 1000

    def add(self, receiveTime: float, size: int) -> None:
        """One received packet (receive times in order, any clock)."""
        window = INITIAL_WINDOW if self._estimate is None else WINDOW
        sample = self._window(receiveTime, size, window)
        if sample is None:
            return
        if self._estimate is None:
            self._estimate = sample
            return
        uncertainty = UNCERTAINTY_SCALE * abs(self._estimate - sample) / max(self._estimate, 1e-6)
        sample_variance = uncertainty * uncertainty
        predicted = self._variance + 5.0
        self._estimate = (sample_variance * self._estimate + predicted * sample) / (
            sample_variance + predicted
        )
        self._variance = sample_variance * predicted / (sample_variance + predicted)

    def expectFastChange(self) -> None:
        """The send rate is about to change a lot (a probe result): trust new samples more."""
        self._variance += 200.0

    def _window(self, now: float, size: int, window: float) -> float | None:
        previous = self._previous
        if previous is not None and now < previous:
            # Reordered or a new clock: start over.
            self._previous = None
            self._sum = 0
            self._elapsed = 0.0
            previous = None
        if previous is not None:
            gap = now - previous
            self._elapsed += gap
            if gap > window:
                # Nothing arrived for a whole window: what was summed is stale.
                self._sum = 0
                self._elapsed %= window
        self._previous = now
        sample: float | None = None
        if self._elapsed >= window:
            sample = 8 * self._sum / window / 1000  # kbps
            self._elapsed -= window
            self._sum = 0
        self._sum += size
        return sample
