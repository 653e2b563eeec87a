"""Per-stream send history, so NACKed packets can be retransmitted (over RTX when negotiated)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SentPacket:
    sequenceNumber: int
    timestamp: int
    marker: bool
    payload: bytes
    sentAt: float  # monotonic time it left (when it was made, until then)
    lastResentAt: float | None = None  # monotonic time of the last resend
    resendPending: bool = False  # a resend waits in the pacer
    resends: int = 0


class SendHistory:
    """The last ``maxPackets`` packets sent within ``maxAge`` seconds, by sequence number.

    Bounded both ways: a fast stream is limited by count, a slow one (audio) by age, so memory
    stays small whatever the bitrate. ``maxAge`` follows the round trip (see
    ``retransmission.py``): the sender sets it.
    """

    def __init__(self, maxPackets: int = 3000, maxAge: float = 1.0) -> None:
        self._max_packets = maxPackets
        self.maxAge = maxAge
        # Oldest first (a dict keeps insertion order; a reused sequence number moves to the
        # end by being removed first).
        self._packets: dict[int, SentPacket] = {}

    def __len__(self) -> int:
        return len(self._packets)

    def add(self, packet: SentPacket) -> None:
        packets = self._packets
        sequence = packet.sequenceNumber
        if sequence in packets:
            del packets[sequence]
        packets[sequence] = packet
        self._expire(packet.sentAt)

    def get(self, sequenceNumber: int, now: float) -> SentPacket | None:
        """The packet if it is still in the history and not older than ``maxAge``."""
        self._expire(now)
        return self._packets.get(sequenceNumber & 0xFFFF)

    def forget(self, sequenceNumber: int) -> None:
        """A packet that never left (dropped in the pacer): a NACK for it gets nothing."""
        self._packets.pop(sequenceNumber & 0xFFFF, None)

    def clear(self) -> None:
        self._packets.clear()

    def _expire(self, now: float) -> None:
        packets = self._packets
        cutoff = now - self.maxAge
        while packets:
            sequence = next(iter(packets))
            if len(packets) > self._max_packets or packets[sequence].sentAt < cutoff:
                del packets[sequence]
            else:
                break
