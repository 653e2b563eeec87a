"""Capture times for received frames: a stream's RTP timestamps on our wall clock, from the
RTCP sender reports of whoever sends us the stream (libwebrtc's ``RemoteNtpTimeEstimator``,
which gives browsers their ``captureTime`` of remote frames).

A sender report pairs the sender's clock (NTP) with an RTP timestamp. The sender's clock need
not be a wall clock: mediasoup 3.8.4 writes its own monotonic clock (``uv_hrtime``) there, so
only the offset between that clock and ours means anything. A report that arrives at our wall
time ``t``, over a path whose round trip is ``rtt``, was written about ``rtt / 2`` before
``t``: the offset (ours minus theirs) is ``t - rtt / 2 - ntp``, and the median of the last
``OFFSET_SAMPLES`` reports keeps one late report from moving every frame. A frame's capture
time is then the sender's clock at its RTP timestamp, plus the offset. With an SFU, the sender
of the reports is the router: the time is when the router forwarded the frame (the producer's
capture time plus its uplink and the router's own delay), on our clock.

Pure: times in seconds.
"""

from __future__ import annotations

import statistics
from collections import deque

OFFSET_SAMPLES = 5
_NTP_UNIT = float(1 << 32)


def signedRtpDifference(a: int, b: int) -> int:
    """``a - b`` for 32-bit RTP timestamps (either may be unwrapped), in -2^31 .. 2^31 - 1."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


class CaptureClock:
    def __init__(self, clockRate: int) -> None:
        self.clockRate = clockRate
        self._offsets: deque[float] = deque(maxlen=OFFSET_SAMPLES)
        self._offset: float | None = None
        self._reference: tuple[float, int] | None = None  # (sender seconds, RTP timestamp)

    def onSenderReport(
        self, ntp: int, rtpTimestamp: int, arrivalWallTime: float, roundTripTime: float | None
    ) -> None:
        """A sender report that arrived at ``arrivalWallTime`` (Unix seconds); the path's
        round trip when known (None: counted as none)."""
        sender = ntp / _NTP_UNIT
        self._reference = (sender, rtpTimestamp & 0xFFFFFFFF)
        self._offsets.append(arrivalWallTime - (roundTripTime or 0.0) / 2 - sender)
        self._offset = statistics.median(self._offsets)

    def wallTimeOf(self, rtpTimestamp: int) -> float | None:
        """Unix seconds at which the sender's clock stood at ``rtpTimestamp``; None before the
        first report."""
        if self._reference is None or self._offset is None:
            return None
        sender, reference = self._reference
        elapsed = signedRtpDifference(rtpTimestamp, reference) / self.clockRate
        return sender + elapsed + self._offset
