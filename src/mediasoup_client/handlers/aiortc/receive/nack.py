"""Which lost packets to ask for again (generic NACK, RFC 4585), like libwebrtc's NackModule.

Sequence numbers here are unwrapped (``sequence.Unwrapper``). A gap in the sequence opens one
entry per missing packet. An entry is first asked for once the reordering seen so far makes a
late arrival unlikely (``reorder tolerance``: how many newer packets to wait for), then again at
most once per round-trip time, and dropped after ``MAX_RETRIES`` requests, when it falls more
than ``MAX_PACKET_AGE`` packets behind or ``MAX_AGE`` seconds old, or when the jitter buffer gave
up on it (``clearUpTo``). A gap too large to track asks for a key frame instead.

The round-trip time comes from the router's answers: the time from the first NACK of a packet to
its retransmission (the router does not answer the receiver reports RFC 3611 would need). A
retry waits for the slowest recent answer (queues on a congested path make answers slower than
the smoothed figure) plus a margin.

mediasoup retransmits whatever is asked for at once, without pacing or a budget, so a receiver
that asks for everything it misses on an overloaded downlink makes the overload worse (a
congested 400 kbit/s link carried several Mbit/s of retransmissions). The module therefore keeps
a request budget: half a request per packet received plus ``BUDGET_PER_SECOND``; first
requests go before retries when it runs short, and what is not asked for waits.
"""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass, field

MAX_RETRIES = 10
MAX_PACKET_AGE = 10_000  # packets behind the newest one
MAX_NACK_PACKETS = 1_000  # entries; more means the loss is beyond repair
MAX_AGE = 1.5  # seconds since the gap was noticed; older media is useless for live video
DEFAULT_RTT = 0.1
MIN_RTT = 0.01
MAX_RTT = 2.0
MIN_RESEND_DELAY = 0.02
RESEND_MARGIN = 1.25  # retries wait this much longer than the slowest recent answer
RTT_WINDOW = 3.0  # seconds of answers that count as recent
BUDGET_PER_PACKET = 0.5  # requests earned by each packet received
BUDGET_PER_SECOND = 10.0
MAX_BUDGET = 60.0  # requests banked at most (a burst of loss asks for no more at once)
_MAX_REORDER = 128  # reordering distances tracked (packets)
_REORDER_HISTORY = 256


@dataclass(slots=True)
class _Entry:
    seq: int
    createdAt: float
    sendAtSeq: int  # the first request waits until this packet (or a newer one) arrived
    sentAt: float | None = None
    retries: int = 0


@dataclass
class NackResult:
    """What to send now: the sequence numbers to NACK (ascending) and whether the loss is
    beyond repair (ask for a key frame)."""

    nacks: list[int] = field(default_factory=list)
    keyFrameRequest: bool = False
    gaveUp: list[int] = field(default_factory=list)  # dropped after MAX_RETRIES or MAX_AGE


class NackModule:
    def __init__(self, *, rtt: float = DEFAULT_RTT) -> None:
        self._entries: dict[int, _Entry] = {}
        self._newest: int | None = None
        self._keyFrameStarts: list[int] = []  # sorted first sequence numbers of key frames
        self._reorderings: list[int] = []  # recent reordering distances, oldest first
        self._unsent = 0  # entries not requested yet
        self._rtt = rtt
        self._rttMeasured = False
        self._rttSamples: collections.deque[tuple[float, float]] = collections.deque()
        self._budget = MAX_BUDGET / 2
        self._budgetAt: float | None = None
        self.packetsRequested = 0  # NACKed sequence numbers, retries included
        self.requestsDeferred = 0  # due requests held back by the budget

    @property
    def rtt(self) -> float:
        return self._rtt

    @property
    def rttMeasured(self) -> bool:
        return self._rttMeasured

    @property
    def missing(self) -> list[int]:
        return sorted(self._entries)

    def resendDelay(self, now: float) -> float:
        """How long a retry waits after the previous request of the same packet."""
        while self._rttSamples and now - self._rttSamples[0][0] > RTT_WINDOW:
            self._rttSamples.popleft()
        slowest = max((sample for _, sample in self._rttSamples), default=self._rtt)
        delay = max(slowest, self._rtt) * RESEND_MARGIN + 0.005
        return min(max(delay, MIN_RESEND_DELAY), MAX_RTT)

    def onPacket(
        self, seq: int, now: float, *, keyFrameStart: bool = False, retransmitted: bool = False
    ) -> NackResult:
        """A packet arrived (a retransmission already unwrapped to its original number)."""
        result = NackResult()
        newest = self._newest
        if newest is None:
            self._newest = seq
            if keyFrameStart:
                self._keyFrameStarts.append(seq)
            return result
        if seq == newest:
            return result
        if seq < newest:
            entry = self._pop(seq)
            if entry is not None and retransmitted and entry.retries == 1 and entry.sentAt:
                # One request, one answer: a clean round-trip sample (Karn's rule).
                self._updateRtt(now - entry.sentAt, now)
            if not retransmitted:
                self._recordReordering(newest - seq)
            return result
        if retransmitted:
            # A retransmission newer than anything seen: the gap before it is noticed (and
            # asked for) when the next original packet arrives.
            return result
        self._earn(now, BUDGET_PER_PACKET)
        if keyFrameStart:
            self._keyFrameStarts.append(seq)
        del self._keyFrameStarts[: bisect.bisect_left(self._keyFrameStarts, seq - MAX_PACKET_AGE)]
        self._newest = seq
        if not self._addMissing(newest + 1, seq, now):
            result.keyFrameRequest = True
        return self._batch(now, result, byTime=False)

    def process(self, now: float) -> NackResult:
        """Periodic (every ~20 ms): re-ask what is due by time, expire what is too old."""
        return self._batch(now, NackResult(), byTime=True)

    def clearUpTo(self, seq: int) -> None:
        """Forget every missing packet before ``seq`` (the jitter buffer moved past them)."""
        for missing in [s for s in self._entries if s < seq]:
            self._pop(missing)

    def reset(self) -> None:
        """Start over with the next packet (after a pause: nothing before it is wanted)."""
        self._entries.clear()
        self._unsent = 0
        self._newest = None
        self._keyFrameStarts.clear()

    # Internals.

    def _addMissing(self, start: int, end: int, now: float) -> bool:
        """Entries for start..end-1; False when that many cannot be tracked (key frame)."""
        for old in [s for s in self._entries if s < end - MAX_PACKET_AGE]:
            self._pop(old)
        count = end - start
        if count <= 0:
            return True
        if len(self._entries) + count > MAX_NACK_PACKETS:
            # Give up on what precedes the newest key frame first, as libwebrtc does.
            while self._keyFrameStarts and len(self._entries) + count > MAX_NACK_PACKETS:
                cut = self._keyFrameStarts.pop(0)
                self.clearUpTo(cut)
            if len(self._entries) + count > MAX_NACK_PACKETS:
                self._entries.clear()
                self._unsent = 0
                return False
        wait = self._reorderTolerance()
        for seq in range(start, end):
            self._entries[seq] = _Entry(seq=seq, createdAt=now, sendAtSeq=seq + wait)
        self._unsent += count
        return True

    def _batch(self, now: float, result: NackResult, *, byTime: bool) -> NackResult:
        """Collect what is due, within the budget. On a packet arrival only first requests are
        due (by sequence number); the periodic pass also sends retries, a resend delay apart,
        and expires."""
        newest = self._newest
        if newest is None:
            return result
        first: list[_Entry] = []
        retries: list[_Entry] = []
        if not byTime:
            if self._unsent:
                first = [
                    e for e in self._entries.values() if e.sentAt is None and newest >= e.sendAtSeq
                ]
        else:
            self._earn(now, 0.0)
            resend = self.resendDelay(now)
            expired: list[int] = []
            for seq, entry in self._entries.items():
                if now - entry.createdAt > MAX_AGE:
                    expired.append(seq)
                elif entry.sentAt is None:
                    # The periodic pass sends what the reordering wait still holds back, so
                    # that wait never exceeds one period.
                    first.append(entry)
                elif now - entry.sentAt >= resend:
                    if entry.retries >= MAX_RETRIES:
                        # The last request had its round trip and went unanswered.
                        expired.append(seq)
                    else:
                        retries.append(entry)
            for seq in expired:
                self._pop(seq)
            result.gaveUp = expired
        due = first + retries
        allowed = min(len(due), int(self._budget))
        self.requestsDeferred += len(due) - allowed
        for entry in due[:allowed]:
            self._send(entry, now, result)
        self._budget -= allowed
        result.nacks.sort()
        self.packetsRequested += len(result.nacks)
        return result

    def _earn(self, now: float, requests: float) -> None:
        if self._budgetAt is not None:
            requests += (now - self._budgetAt) * BUDGET_PER_SECOND
        self._budgetAt = now
        self._budget = min(MAX_BUDGET, self._budget + max(0.0, requests))

    def _send(self, entry: _Entry, now: float, result: NackResult) -> None:
        if entry.sentAt is None:
            self._unsent -= 1
        result.nacks.append(entry.seq)
        entry.retries += 1
        entry.sentAt = now

    def _pop(self, seq: int) -> _Entry | None:
        entry = self._entries.pop(seq, None)
        if entry is not None and entry.sentAt is None:
            self._unsent -= 1
        return entry

    def _recordReordering(self, distance: int) -> None:
        self._reorderings.append(min(distance, _MAX_REORDER))
        if len(self._reorderings) > _REORDER_HISTORY:
            del self._reorderings[0]

    def _reorderTolerance(self) -> int:
        """Newer packets to wait for before the first request: the median reordering distance
        among late arrivals, once reordering happens at all (0 on an in-order path)."""
        if not self._reorderings:
            return 0
        ordered = sorted(self._reorderings)
        return ordered[len(ordered) // 2]

    def _updateRtt(self, sample: float, now: float) -> None:
        sample = min(max(sample, 0.0), MAX_RTT)
        self._rttSamples.append((now, sample))
        if not self._rttMeasured:
            self._rtt = sample
            self._rttMeasured = True
        else:
            self._rtt = 0.875 * self._rtt + 0.125 * sample
