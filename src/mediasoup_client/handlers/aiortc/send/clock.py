"""The sender's own media clock, the timeline an encoder's rate control sees, and frame-rate
limiting.

RTP timestamps come from this clock, not straight from the source's pts: a replaced track (or
a source whose pts restart or jump) must not move the timestamps backwards. Within one
continuous run of a source its pts spacing is kept exactly (so a source that runs faster or
slower than real time still yields correct media time); at a discontinuity the clock continues
from where it was, advanced by the wall-clock time that passed.
"""

from __future__ import annotations

# A pts jump larger than this (seconds) is a discontinuity, not a gap in the media.
_MAX_PTS_JUMP = 2.0

# The timeline an encoder's rate control sees (RateControlClock): at most this many typical
# frame intervals of wall time can be saved up for the frames to come.
RATE_GAP_LIMIT = 2.0
# The typical interval is an average of the frames' media steps (each at most RATE_GAP_LIMIT
# intervals) with this weight for the newest.
RATE_INTERVAL_WEIGHT = 0.125


class MediaClock:
    """Maps source times (seconds, or None when unknown) to an unwrapped timestamp in
    ``rate`` units that never decreases (``strict``: always increases)."""

    def __init__(self, rate: int, *, strict: bool = True) -> None:
        self.rate = rate
        self._strict = strict
        self._anchor_source: float | None = None
        self._anchor_timestamp = 0
        self._last_source: float | None = None
        self._last_timestamp: int | None = None
        self._last_wall = 0.0

    @property
    def lastTimestamp(self) -> int | None:
        return self._last_timestamp

    def discontinuity(self) -> None:
        """The next source time starts a new run (new track, resume after pause)."""
        self._anchor_source = None

    def map(self, sourceTime: float | None, wallTime: float) -> int:
        previous = self._last_timestamp
        last_source = self._last_source
        if (
            sourceTime is None
            or self._anchor_source is None
            or last_source is None
            or sourceTime < last_source
            or sourceTime - last_source > _MAX_PTS_JUMP
        ):
            if previous is None:
                timestamp = 0
            else:
                timestamp = previous + round((wallTime - self._last_wall) * self.rate)
            self._anchor_source = sourceTime
            self._anchor_timestamp = timestamp
        else:
            timestamp = self._anchor_timestamp + round(
                (sourceTime - self._anchor_source) * self.rate
            )
        if previous is not None:
            floor = previous + 1 if self._strict else previous
            timestamp = max(timestamp, floor)
        self._last_timestamp = timestamp
        self._last_source = sourceTime
        self._last_wall = wallTime
        return timestamp

    def advance(self, ticks: int, wallTime: float) -> int:
        """Timestamp-by-counting (audio): the previous timestamp plus ``ticks``."""
        previous = self._last_timestamp
        timestamp = 0 if previous is None else previous + ticks
        self._last_timestamp = timestamp
        self._last_wall = wallTime
        return timestamp

    def skipWallTime(self, wallTime: float, minimum: int) -> None:
        """After a gap (pause, new track): move on by the wall time that passed, at least
        ``minimum`` ticks, so the next ``advance`` continues from there."""
        if self._last_timestamp is None:
            return
        gap = round((wallTime - self._last_wall) * self.rate)
        self._last_timestamp += max(gap, minimum) - minimum
        self._last_wall = wallTime


class RateControlClock:
    """The pts an encoder is given, so that its rate control spends per second of wall time
    what it is asked for, whatever the source's media time does.

    libvpx banks the budget of every gap in the pts and spends it on the frames after it;
    measured: after a 0.7 s stall of the event loop (no frames, then a test source catching
    up on the media time it missed) a 100 kbps VP8 layer reached the router at 123-130 kbps
    over the next 4.7 s. So a frame counts for its media-time step, paid from the wall time
    that has passed: wall time accrues between frames and each step spends it, and at most
    RATE_GAP_LIMIT typical intervals of it can be saved up. A stall is then worth two
    intervals, media time caught up after it almost nothing, and a frame early or late by
    jitter, or an encoder keeping only some frames, its whole step (what one frame lacks, the
    saved-up time covers). The typical interval follows the frames' media steps, from
    ``framerate`` on, so a source that slows down for good is followed within a few frames.
    libwebrtc goes further: libvpx gets a uniform timeline at the measured input rate.
    """

    def __init__(self, framerate: float, rate: int) -> None:
        self._rate = rate
        self._interval = rate / framerate
        self._saved = self._interval * RATE_GAP_LIMIT  # wall time not yet spent, in ticks
        self._last_timestamp: int | None = None
        self._last_wall = 0.0
        self._pts = 0

    def map(self, timestamp: int, wallTime: float) -> int:
        """The encoder pts of a frame at media-clock ``timestamp`` (increasing), handed to
        the encoder at ``wallTime`` (seconds)."""
        last, lastWall = self._last_timestamp, self._last_wall
        self._last_timestamp, self._last_wall = timestamp, wallTime
        if last is None:
            return self._pts
        limit = self._interval * RATE_GAP_LIMIT
        media = timestamp - last
        self._interval += (min(media, limit) - self._interval) * RATE_INTERVAL_WEIGHT
        saved = min(self._saved + max(0.0, wallTime - lastWall) * self._rate, limit)
        step = max(1, round(min(media, saved)))
        self._saved = max(0.0, saved - step)
        self._pts += step
        return self._pts


class FramerateLimiter:
    """Keeps at most ``maxFramerate`` frames per second of media time (None: all)."""

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._next_due: float | None = None

    def reset(self) -> None:
        self._next_due = None

    def accept(self, timestamp: int, maxFramerate: float | None) -> bool:
        if not maxFramerate or maxFramerate <= 0:
            self._next_due = None
            return True
        interval = self._rate / maxFramerate
        # 10 % tolerance so a source slightly faster than the limit is not halved.
        if self._next_due is not None and timestamp < self._next_due - interval * 0.1:
            return False
        due = timestamp + interval if self._next_due is None else self._next_due + interval
        # Never bank credit for a burst after a long gap.
        self._next_due = max(due, timestamp + interval * 0.5)
        return True
