"""What the transport sent, by transport-wide sequence number, so feedback can be turned into
per-packet results (send time, size, arrival time or lost).

The sender numbers every RTP packet of the transport (one counter, written at send time); the
receiver's feedback names them by the low 16 bits and gives arrival times on its own clock
(24-bit reference time in 64 ms units plus 250 us deltas). Both are unwrapped here. Arrival
times stay on the receiver's clock: only their differences matter to the estimators.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from dataclasses import dataclass

from .transport_feedback import REFERENCE_TICK, TransportFeedback

# IPv4 (20) + UDP (8) + the SRTP authentication tag (10): what each RTP packet costs on the
# wire beyond its own bytes. Rates here count what the link carries.
PACKET_OVERHEAD = 38
# Feedback about a packet comes within a round trip and a feedback interval (mediasoup: 100 ms);
# 3 s is ample for the slowest links and keeps a 1000 packet/s transport at ~3000 entries
# (each ~230 bytes in Python: 10 s held 2.3 MB per video transport).
HISTORY_SECONDS = 3.0
_REFERENCE_WRAP = 1 << 24
# A receiver clock that moved this much more (or less) than ours between two feedback packets
# was reset (or wrapped oddly): arrival times start over from there.
_CLOCK_JUMP = 10.0


@dataclass(slots=True)
class SentInfo:
    sequence: int  # unwrapped transport-wide sequence number
    sendTime: float
    size: int  # bytes on the wire, PACKET_OVERHEAD included
    cluster: int | None = None  # probe cluster id
    kind: str = "video"  # "audio", "video", "rtx", "padding"
    acked: bool = False
    lost: bool = False
    shadowed: bool = False  # sent while a probe still filled the bottleneck's queue


@dataclass(slots=True)
class PacketResult:
    sequence: int
    sendTime: float
    size: int
    receiveTime: float | None  # receiver's clock (unwrapped), None if reported lost
    cluster: int | None
    kind: str
    shadowed: bool = False

    @property
    def received(self) -> bool:
        return self.receiveTime is not None


_receiveTime = operator.attrgetter("receiveTime")


@dataclass(slots=True)
class FeedbackReport:
    """One feedback packet, interpreted: the packets it covers that we still knew about, in
    sequence order, and when it was received (our clock)."""

    feedbackTime: float
    results: list[PacketResult]
    _byReceiveTime: list[PacketResult] | None = None  # made once, asked for twice

    @property
    def received(self) -> list[PacketResult]:
        return [r for r in self.results if r.receiveTime is not None]

    @property
    def lostCount(self) -> int:
        return sum(1 for r in self.results if r.receiveTime is None)

    def sortedByReceiveTime(self) -> list[PacketResult]:
        # Stable: equal receive times stay in sequence order, as the results are.
        if self._byReceiveTime is None:
            self._byReceiveTime = sorted(self.received, key=_receiveTime)
        return self._byReceiveTime


class TransportSendHistory:
    def __init__(self, retention: float = HISTORY_SECONDS) -> None:
        self._retention = retention
        self._sent: OrderedDict[int, SentInfo] = OrderedDict()
        self._next = 0  # the next unwrapped sequence number to hand out
        self._reference: int | None = None  # unwrapped reference time of the last feedback
        self._reference_raw = 0
        self._clock_offset = 0.0  # added to receiver times after a detected clock jump
        self._last_feedback: float | None = None
        self.feedbackCount = 0
        self.packetsReported = 0
        self.packetsLost = 0

    @property
    def nextSequence(self) -> int:
        return self._next

    def allocate(self) -> int:
        """The next transport-wide sequence number (unwrapped; the wire carries its low 16
        bits)."""
        sequence = self._next
        self._next += 1
        return sequence

    def onSent(
        self, sequence: int, size: int, now: float, *, cluster: int | None = None,
        kind: str = "video", shadowed: bool = False,
    ) -> None:  # fmt: skip
        self._sent[sequence] = SentInfo(
            sequence, now, size + PACKET_OVERHEAD, cluster, kind, shadowed=shadowed
        )
        while self._sent:
            oldest = next(iter(self._sent.values()))
            if now - oldest.sendTime <= self._retention and len(self._sent) < 0x8000:
                break
            self._sent.popitem(last=False)

    def get(self, sequence: int) -> SentInfo | None:
        return self._sent.get(sequence)

    def unwrap(self, sequence16: int) -> int:
        """The most recent sent sequence number whose low 16 bits are ``sequence16``."""
        highest = self._next - 1
        return highest - ((highest - sequence16) & 0xFFFF)

    def onFeedback(self, feedback: TransportFeedback, now: float) -> FeedbackReport:
        base = self._unwrapReference(feedback.referenceTime, now)
        results: list[PacketResult] = []
        sent = self._sent
        highest = self._next - 1  # (``unwrap``, inline: this runs for every packet)
        for sequence16, arrival in feedback.arrivals():
            info = sent.get(highest - ((highest - sequence16) & 0xFFFF))
            if info is None or info.acked:
                continue  # too old, never sent, or already reported received
            receive: float | None = None
            if arrival is not None:
                receive = arrival - feedback.referenceTime * REFERENCE_TICK + base
                info.acked = True
                info.lost = False
            elif info.lost:
                continue  # reported lost before: count it once
            else:
                info.lost = True
            results.append(
                PacketResult(info.sequence, info.sendTime, info.size, receive, info.cluster,
                             info.kind, info.shadowed)
            )  # fmt: skip
        self.feedbackCount += 1
        self.packetsReported += len(results)
        self.packetsLost += sum(1 for r in results if r.receiveTime is None)
        return FeedbackReport(now, results)

    def _unwrapReference(self, raw: int, now: float) -> float:
        """The feedback's reference time in seconds on a continuous receiver clock."""
        raw &= _REFERENCE_WRAP - 1
        if self._reference is None or self._last_feedback is None:
            self._reference = raw
        else:
            delta = (raw - self._reference_raw) & (_REFERENCE_WRAP - 1)
            if delta >= _REFERENCE_WRAP // 2:
                delta -= _REFERENCE_WRAP
            ours = now - self._last_feedback
            if abs(delta * REFERENCE_TICK - ours) > _CLOCK_JUMP:
                # Keep the receiver clock continuous across a jump: carry on from where the
                # previous reference would be now.
                self._clock_offset += ours - delta * REFERENCE_TICK
            self._reference += delta
        self._reference_raw = raw
        self._last_feedback = now
        return self._reference * REFERENCE_TICK + self._clock_offset
