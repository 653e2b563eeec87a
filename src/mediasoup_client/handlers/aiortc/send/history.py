"""Per-stream send history, so NACKed packets can be retransmitted (over RTX when negotiated)."""

from __future__ import annotations

from collections import OrderedDict
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
        self._packets: OrderedDict[int, SentPacket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._packets)

    def add(self, packet: SentPacket) -> None:
        self._packets[packet.sequenceNumber] = packet
        self._packets.move_to_end(packet.sequenceNumber)
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
        while packets:
            oldest = next(iter(packets.values()))
            if len(packets) > self._max_packets or now - oldest.sentAt > self.maxAge:
                packets.popitem(last=False)
            else:
                break
