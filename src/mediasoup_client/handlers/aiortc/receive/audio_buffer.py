"""The audio jitter buffer: packets out in sequence order as soon as they can be, a short wait
for a missing one (reordering), then on without it (the decoder side conceals the gap).

A consumer's track is read by the application, not played on a sound card, so there is no
playout clock to keep: the buffer only has to restore order. Sequence numbers and timestamps
are unwrapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_PACKETS = 500  # ten seconds of 20 ms packets


@dataclass(slots=True)
class AudioPacket:
    seq: int
    timestamp: int
    data: bytes
    arrival: float


@dataclass
class AudioOutput:
    packets: list[AudioPacket] = field(default_factory=list)
    # For each packet handed out: whether packets were lost right before it.
    afterLoss: list[bool] = field(default_factory=list)
    packetsLost: int = 0  # given up on in this call


class AudioJitterBuffer:
    def __init__(self, maxPackets: int = MAX_PACKETS) -> None:
        self._packets: dict[int, AudioPacket] = {}
        self._next: int | None = None
        self._newest: int | None = None
        self._blockedSince: float | None = None
        self._maxPackets = maxPackets
        self.packetsLate = 0  # arrived after the buffer moved on without them

    def insert(self, packet: AudioPacket, now: float, maxWait: float) -> AudioOutput:
        if self._next is not None and packet.seq < self._next:
            self.packetsLate += 1
            return AudioOutput()
        self._packets.setdefault(packet.seq, packet)
        if self._next is None:
            self._next = packet.seq
        if self._newest is None or packet.seq > self._newest:
            self._newest = packet.seq
        return self.poll(now, maxWait)

    def poll(self, now: float, maxWait: float) -> AudioOutput:
        output = AudioOutput()
        lost_before = False
        while self._next is not None and self._packets:
            packet = self._packets.pop(self._next, None)
            if packet is not None:
                output.packets.append(packet)
                output.afterLoss.append(lost_before)
                lost_before = False
                self._next += 1
                self._blockedSince = None
                continue
            # A gap with newer packets behind it.
            if self._blockedSince is None:
                self._blockedSince = now
            if now - self._blockedSince < maxWait and len(self._packets) < self._maxPackets:
                break
            following = min(self._packets)
            output.packetsLost += following - self._next
            lost_before = True
            self._next = following
            self._blockedSince = None
        return output

    def reset(self) -> None:
        self._packets.clear()
        self._next = None
        self._newest = None
        self._blockedSince = None
