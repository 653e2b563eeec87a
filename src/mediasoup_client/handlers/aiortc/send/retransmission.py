"""The transport's retransmission budget: which NACKed packets are worth sending again.

- A packet is resent at most once per round trip (a NACK repeated within an RTT asks for a
  resend that is still on its way) and never while its resend waits in the pacer.
- Packets are kept only as long as a resend can still help: ``0.2 s + 10 RTT`` (within
  0.5 .. 5 s; a receiver gives up asking after about ten round trips). A NACK for an older one
  is answered by nothing.
- Resends may take at most ``SHARE`` of the estimate over any second (the transport lowers
  it while the link is congested): when loss is heavy, repairing it must not crowd out the
  media (or the link) — that is how a NACK storm feeds a collapse. They then go through the
  pacer, ahead of new video.

Pure: the time comes in as an argument.
"""

from __future__ import annotations

from collections import deque

SHARE = 0.3
WINDOW = 1.0
DEFAULT_RTT = 0.05  # until a receiver report measured one
MIN_RESEND_INTERVAL = 0.01
MIN_HISTORY = 0.5
MAX_HISTORY = 5.0


class RetransmissionBudget:
    def __init__(self, estimate: int = 1_000_000) -> None:
        self.estimate = estimate  # bps
        self.share = SHARE
        self.rtt: float | None = None
        self._sent: deque[tuple[float, int]] = deque()
        self._bytes = 0
        # Stats.
        self.refusedTooOld = 0
        self.refusedTooRecent = 0
        self.refusedBudget = 0

    @property
    def resendInterval(self) -> float:
        rtt = self.rtt if self.rtt is not None else DEFAULT_RTT
        return max(MIN_RESEND_INTERVAL, rtt)

    @property
    def historyAge(self) -> float:
        rtt = self.rtt if self.rtt is not None else DEFAULT_RTT
        return min(MAX_HISTORY, max(MIN_HISTORY, 0.2 + 10 * rtt))

    def allow(self, size: int, now: float) -> bool:
        """Whether a resend of ``size`` bytes fits now; if so it is counted."""
        self._expire(now)
        if self._bytes + size > self.share * self.estimate / 8 * WINDOW:
            self.refusedBudget += 1
            return False
        self._sent.append((now, size))
        self._bytes += size
        return True

    def rate(self, now: float) -> float:
        """Resent bits per second over the last window."""
        self._expire(now)
        return self._bytes * 8 / WINDOW

    def _expire(self, now: float) -> None:
        while self._sent and now - self._sent[0][0] > WINDOW:
            self._bytes -= self._sent.popleft()[1]
