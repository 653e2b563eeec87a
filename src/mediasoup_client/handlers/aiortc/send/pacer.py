"""One pacer per transport: every producer's packets leave through it, spread at the pacing
rate instead of in the bursts the encoders make (a key frame is tens of packets at once).

Pure: packets and the time go in (``enqueue``), the packets to send now come out
(``process``), and ``nextSendTime`` says when to call again; the scheduler owns the timer.

- Order: audio first (it is never held: it is sent at once, in arrival order, and only
  counts against the budget), then retransmissions, then new video; padding only to fill a
  probe. Within a priority other than audio, streams (``streamOf``: an SSRC) take turns, the
  one that has sent the fewest bytes first, oldest first within a stream (libwebrtc's
  round-robin queue): a new producer's first packets, or a low simulcast layer's key frame,
  do not wait behind a big key frame of another stream. A stream that comes back after a
  pause may lead the others by at most ``MAX_LEADING_BYTES``, so its silence earns it no
  burst.
- Budget: a "media debt" that sending adds to and time pays back at the pacing rate; packets
  leave while the debt is under ``BURST`` worth of the rate (so a short burst passes at once
  and a long one is spread). The debt never exceeds ``MAX_DEBT`` worth.
- Queue limit: when what is queued could not leave within ``MAX_QUEUE_TIME`` of its (average)
  arrival at the pacing rate, it is drained faster, up to ``MAX_DRAIN_FACTOR`` x the pacing
  rate (the encoders overshoot now and then; latency must stay bounded) — but only while the
  link is healthy (``drainFaster``): after a capacity drop the queue holds what was made for
  the old rate, and draining it faster than the new estimate kept the link overflowing for
  seconds (measured). Video that waited too long is dropped instead (``dropStale``: its
  receiver will get a key frame rather than a second of late video).
- Probes: while a probe cluster is active, packets (queued ones first, then padding) leave at
  the cluster's rate regardless of the budget, each tagged with the cluster id, until the
  cluster's bytes and packet count are reached.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Generic, TypeVar

from .cc.probing import ProbeCluster

BURST = 0.01  # seconds of the pacing rate that may leave at once
MAX_DEBT = 0.5
MAX_QUEUE_TIME = 1.0
MAX_DRAIN_FACTOR = 1.5
MAX_VIDEO_WAIT = 1.0
PACKET_OVERHEAD = 60  # RTP header and extensions, IP, UDP, SRTP: wire bytes beyond the payload
MAX_LEADING_BYTES = 1400  # how far a (re)starting stream may get ahead of the others

P = TypeVar("P")


class Priority(IntEnum):
    AUDIO = 0
    RETRANSMISSION = 1
    VIDEO = 2
    PADDING = 3


@dataclass(slots=True)
class Queued(Generic[P]):
    """A packet in the pacer, and (from ``process``) one to send now: the same object, so a
    packet costs one allocation here."""

    packet: P
    priority: Priority
    size: int  # wire bytes (estimate)
    enqueuedAt: float
    cluster: int | None = None  # the probe cluster it was sent for


@dataclass(slots=True)
class _ActiveProbe:
    cluster: ProbeCluster
    startedAt: float | None = None
    sentBytes: int = 0
    sentPackets: int = 0


@dataclass(slots=True)
class _Stream(Generic[P]):
    items: deque[Queued[P]] = field(default_factory=deque)
    sent: int = 0  # bytes taken from this stream (its place in the turns)
    scheduled: bool = False  # has an entry in the heap


class _FairQueue(Generic[P]):
    """One priority's packets: a queue per stream, and the streams in turns by bytes sent."""

    def __init__(self) -> None:
        self._streams: dict[Hashable, _Stream[P]] = {}
        self._turns: list[tuple[int, int, Hashable]] = []  # (sent, tie-break, stream)
        self._order = itertools.count()
        self._count = 0
        self._most_sent = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def append(self, item: Queued[P], key: Hashable) -> None:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        if not stream.items:
            stream.sent = max(stream.sent, self._most_sent - MAX_LEADING_BYTES)
        stream.items.append(item)
        self._count += 1
        if not stream.scheduled:
            stream.scheduled = True
            heapq.heappush(self._turns, (stream.sent, next(self._order), key))

    def popleft(self) -> Queued[P]:
        """The oldest packet of the stream whose turn it is (the queue must not be empty)."""
        while True:
            _sent, _order, key = heapq.heappop(self._turns)
            stream = self._streams[key]
            if stream.items:
                break
            stream.scheduled = False  # emptied by a drop while it waited for its turn
        item = stream.items.popleft()
        self._count -= 1
        stream.sent += item.size
        self._most_sent = max(self._most_sent, stream.sent)
        if stream.items:
            heapq.heappush(self._turns, (stream.sent, next(self._order), key))
        else:
            stream.scheduled = False
        return item

    def oldest(self) -> float | None:
        heads = [s.items[0].enqueuedAt for s in self._streams.values() if s.items]
        return min(heads) if heads else None

    def removeOlderThan(self, cutoff: float) -> list[Queued[P]]:
        removed: list[Queued[P]] = []
        for stream in self._streams.values():
            while stream.items and stream.items[0].enqueuedAt < cutoff:
                removed.append(stream.items.popleft())
        self._count -= len(removed)
        removed.sort(key=lambda item: item.enqueuedAt)
        return removed

    def removeIf(self, reject: Callable[[P], bool]) -> list[Queued[P]]:
        removed: list[Queued[P]] = []
        for key, stream in list(self._streams.items()):
            kept: deque[Queued[P]] = deque()
            for item in stream.items:
                (removed if reject(item.packet) else kept).append(item)
            stream.items = kept
            if not kept and not stream.scheduled:
                del self._streams[key]  # a stopped producer's stream is forgotten
        self._count -= len(removed)
        return removed

    def clear(self) -> list[Queued[P]]:
        return self.removeIf(lambda packet: True)


class _FifoQueue(Generic[P]):
    """Audio's packets: one queue in arrival order (they leave together, so taking turns
    between streams would only cost time); the same interface as ``_FairQueue``."""

    def __init__(self) -> None:
        self._items: deque[Queued[P]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def append(self, item: Queued[P], key: Hashable) -> None:
        self._items.append(item)

    def popleft(self) -> Queued[P]:
        return self._items.popleft()

    def oldest(self) -> float | None:
        return self._items[0].enqueuedAt if self._items else None

    def removeOlderThan(self, cutoff: float) -> list[Queued[P]]:
        removed: list[Queued[P]] = []
        while self._items and self._items[0].enqueuedAt < cutoff:
            removed.append(self._items.popleft())
        return removed

    def removeIf(self, reject: Callable[[P], bool]) -> list[Queued[P]]:
        removed: list[Queued[P]] = []
        kept: deque[Queued[P]] = deque()
        for item in self._items:
            (removed if reject(item.packet) else kept).append(item)
        self._items = kept
        return removed

    def clear(self) -> list[Queued[P]]:
        return self.removeIf(lambda packet: True)


PacketQueue = _FairQueue[P] | _FifoQueue[P]
PaddingSource = Callable[[int], list[P]]


class Pacer(Generic[P]):
    def __init__(
        self,
        sizeOf: Callable[[P], int],
        *,
        pacingRate: float = 1_000_000,
        streamOf: Callable[[P], Hashable] = lambda packet: None,
    ) -> None:
        self._size_of = sizeOf
        self._stream_of = streamOf
        self.pacingRate = pacingRate
        self.drainFaster = True
        self._audio: _FifoQueue[P] = _FifoQueue()
        self._queues: dict[Priority, PacketQueue[P]] = {
            p: self._audio if p is Priority.AUDIO else _FairQueue() for p in Priority
        }
        self._queued = 0  # packets in all queues
        self._debt = 0.0  # bytes
        self._last: float | None = None
        self._probes: deque[_ActiveProbe] = deque()
        # Ids of clusters that ended since the owner last looked (``takeFinishedProbes``).
        self._finished: list[int] = []
        # Stats.
        self.queuedBytes = 0
        self._enqueued_sum = 0.0  # sum of the queued packets' enqueue times
        self.packetsSent = 0
        self.bytesSent = 0
        self.paddingBytesSent = 0
        self.totalQueueTime = 0.0
        self.packetsDropped = 0  # stale video dropped (dropStale)

    # Inputs.

    def setPacingRate(self, rate: float, now: float) -> None:
        self._payBack(now)
        self.pacingRate = max(1.0, rate)

    def enqueue(self, packet: P, priority: Priority, now: float) -> None:
        size = self._size_of(packet) + PACKET_OVERHEAD
        self._queues[priority].append(Queued(packet, priority, size, now), self._stream_of(packet))
        self._queued += 1
        self.queuedBytes += size
        self._enqueued_sum += now

    def addProbe(self, cluster: ProbeCluster) -> None:
        self._probes.append(_ActiveProbe(cluster))

    def dropStale(self, now: float, maxWait: float = MAX_VIDEO_WAIT) -> list[P]:
        """Forget new video that waited longer than ``maxWait``; what was dropped."""
        dropped: list[P] = []
        for item in self._queues[Priority.VIDEO].removeOlderThan(now - maxWait):
            self._queued -= 1
            self.queuedBytes -= item.size
            self._enqueued_sum -= item.enqueuedAt
            dropped.append(item.packet)
        if dropped and not self._queued:
            self._enqueued_sum = 0.0
            self.queuedBytes = 0
        self.packetsDropped += len(dropped)
        return dropped

    def drop(self, keep: Callable[[P], bool]) -> int:
        """Forget queued packets ``keep`` refuses (a stopped producer); how many."""
        dropped = 0
        for queue in self._queues.values():
            for item in queue.removeIf(lambda packet: not keep(packet)):
                dropped += 1
                self._queued -= 1
                self.queuedBytes -= item.size
                self._enqueued_sum -= item.enqueuedAt
        return dropped

    # Outputs.

    def queuedByPriority(self) -> dict[str, int]:
        return {p.name.lower(): len(q) for p, q in self._queues.items() if q}

    @property
    def queuedPackets(self) -> int:
        return self._queued

    def oldestEnqueueTime(self) -> float | None:
        times = [t for q in self._queues.values() if (t := q.oldest()) is not None]
        return min(times) if times else None

    def expectedQueueTime(self) -> float:
        return self.queuedBytes * 8 / self.pacingRate

    @property
    def probing(self) -> bool:
        return bool(self._probes)

    def takeFinishedProbes(self) -> list[int]:
        """The clusters that ended (sent in full, or cut short) since the last call."""
        finished, self._finished = self._finished, []
        return finished

    def process(self, now: float, padding: PaddingSource[P] | None = None) -> list[Queued[P]]:
        """The packets to send now, in order."""
        self._payBack(now)
        sent: list[Queued[P]] = []
        # Audio is never held back.
        audio = self._audio
        while audio:
            sent.append(self._take_item(audio.popleft(), now, None))
        while self._probes:
            probe = self._probes[0]
            if probe.startedAt is not None and now < self._probeDue(probe):
                break
            item = self._pop()
            if item is None:
                wanted = max(
                    probe.cluster.minBytes - probe.sentBytes,
                    (probe.cluster.minBytes // probe.cluster.minPackets),
                )
                made = padding(wanted) if padding is not None else []
                if not made:
                    # Nothing to probe with (no stream that can carry padding yet), or out
                    # of material mid-cluster: the cluster ends here (the estimator copes
                    # with a short one, the controller with none).
                    self._finished.append(self._probes.popleft().cluster.id)
                    if not self._probes:
                        self._dropPadding()
                    continue
                for packet in made:
                    self.enqueue(packet, Priority.PADDING, now)
                item = self._pop()
                assert item is not None
            if probe.startedAt is None:
                probe.startedAt = now
            send = self._take_item(item, now, probe.cluster.id)
            sent.append(send)
            probe.sentBytes += item.size
            probe.sentPackets += 1
            if (
                probe.sentBytes >= probe.cluster.minBytes
                and probe.sentPackets >= probe.cluster.minPackets
            ):
                self._finished.append(self._probes.popleft().cluster.id)
                if not self._probes:
                    self._dropPadding()
        if self._probes and self._probes[0].startedAt is not None:
            return sent  # the cluster owns the link until it is done
        allowance = self._effectiveRate(now) / 8 * BURST
        while self._debt < allowance:
            item = self._pop(includePadding=False)
            if item is None:
                break
            sent.append(self._take_item(item, now, None))
        return sent

    def nextSendTime(self, now: float) -> float | None:
        """When ``process`` has something to send next (None: nothing waits)."""
        if self._probes:
            probe = self._probes[0]
            return now if probe.startedAt is None else max(now, self._probeDue(probe))
        if self._queued == len(self._queues[Priority.PADDING]):
            return None  # no media waits
        self._payBack(now)
        rate = self._effectiveRate(now) / 8
        excess = self._debt - rate * BURST
        return now if excess < 0 else now + excess / rate + 0.0005

    # Internals.

    def _effectiveRate(self, now: float) -> float:
        rate = self.pacingRate
        count = self.queuedPackets
        if self.drainFaster and count and self.queuedBytes > 0:
            waited = now - self._enqueued_sum / count
            left = max(0.001, MAX_QUEUE_TIME - waited)
            rate = max(rate, min(MAX_DRAIN_FACTOR * rate, self.queuedBytes * 8 / left))
        return rate

    def _payBack(self, now: float) -> None:
        if self._last is not None and now > self._last:
            paid = (now - self._last) * self._effectiveRate(now) / 8
            self._debt = max(0.0, self._debt - paid)
        if self._last is None or now > self._last:
            self._last = now

    def _probeDue(self, probe: _ActiveProbe) -> float:
        assert probe.startedAt is not None
        return probe.startedAt + probe.sentBytes * 8 / probe.cluster.bitrate

    def _dropPadding(self) -> None:
        """Padding left over from a finished probe is worth nothing: forget it."""
        for item in self._queues[Priority.PADDING].clear():
            self._queued -= 1
            self.queuedBytes -= item.size
            self._enqueued_sum -= item.enqueuedAt
        if not self._queued:
            self._enqueued_sum = 0.0
            self.queuedBytes = 0

    def _pop(self, *, includePadding: bool = True) -> Queued[P] | None:
        for priority, queue in self._queues.items():
            if priority is Priority.PADDING and not includePadding:
                continue
            if queue:
                return queue.popleft()
        return None

    def _take_item(self, item: Queued[P], now: float, cluster: int | None) -> Queued[P]:
        self._queued -= 1
        self.queuedBytes -= item.size
        self._enqueued_sum -= item.enqueuedAt
        if not self._queued:
            self._enqueued_sum = 0.0  # no float drift across empty spells
            self.queuedBytes = 0
        self._debt = min(self._debt + item.size, self.pacingRate / 8 * MAX_DEBT)
        self.packetsSent += 1
        self.bytesSent += item.size
        if item.priority is Priority.PADDING:
            self.paddingBytesSent += item.size
        self.totalQueueTime += now - item.enqueuedAt
        item.cluster = cluster
        return item
