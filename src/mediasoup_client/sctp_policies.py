"""How our SCTP associations acknowledge and send, in pure logic (no I/O, no clock of its own).

``SackPolicy``: when a data receiver acknowledges, RFC 4960 section 6.2 (delayed SACK) as usrsctp
and Chromium do: packets and times in, "send a SACK now" or "by this deadline" out.

- at least every second packet carrying DATA, and within 200 ms of the first DATA chunk not
  yet acknowledged (the delayed-ack timer); while more packets already received wait to be
  handled (a burst read from the socket in one go), up to four in one SACK, sent once the
  fourth is handled or the burst ends;
- at once when a packet shows a gap in the TSNs, keeps a gap open, or closes one (the sender's
  fast retransmit and recovery depend on it), when it brings duplicate TSNs, or a FORWARD TSN;
- at once outside the ESTABLISHED state (shutdown wants every DATA chunk acknowledged).

A SACK for every packet (what aiortc does) doubles the packets the receiver sends and encrypts
and the sender processes. usrsctp (a mediasoup router, Chromium until dcSCTP) sends at most four
packets beyond its flight on each SACK (its max burst; with the cwnd-based variant it also
lowers its window to that): a SACK that acknowledges more than four packets shrinks its flight
for good, and at eight per SACK a burst through the router collapses to the delayed-ack timer
(measured: 6 of 2 000 messages of 64 KiB got through). Four at most keeps the flight; two, at
the end of a burst and whenever the receiver keeps up, lets it grow. Acknowledging a burst's
packets four at a time halves the SACKs a loaded receiver sends, encrypts and hands the kernel
just when it is behind: on loopback each SACK's ``sendto`` costs about as much CPU as handling
the two packets it acknowledges (the kernel delivers to the router's socket and wakes it).

``SendBudget``: how much new data one association puts on the wire per event-loop turn. A
mediasoup 3.8 router forwards what a DataProducer sends at once and drops what does not fit a
consumer's send buffer (256 KiB by default); a sender that empties its whole congestion window
in one turn (aiortc's does, on every SACK) floods the router faster than a consumer sharing the
machine, or the process, can acknowledge. On an idle loop a turn is short and the budget does
not limit throughput; on a busy one it shares the loop with the receive side.
"""

from __future__ import annotations

# RFC 4960 section 6.2: "at least every second packet", "within 200 ms".
SACK_EVERY_PACKETS = 2
SACK_MAX_DELAY = 0.2
# usrsctp's SCTP_DEF_MAX_BURST: what one SACK may acknowledge without shrinking its flight.
SACK_BURST_PACKETS = 4


class SackPolicy:
    """Feed every received packet that leaves something to acknowledge to ``packetReceived``;
    send a SACK when it returns True, tell ``sackSent``; otherwise have a timer fire by
    ``deadline`` and send if ``timerExpired`` says so (a timer armed for an earlier deadline
    that was met by a SACK meanwhile may simply find nothing due)."""

    def __init__(
        self,
        *,
        everyPackets: int = SACK_EVERY_PACKETS,
        burstPackets: int = SACK_BURST_PACKETS,
        maxDelay: float = SACK_MAX_DELAY,
    ) -> None:
        if everyPackets < 1:
            raise TypeError("everyPackets must be >= 1")
        if burstPackets < everyPackets:
            raise TypeError("burstPackets must be >= everyPackets")
        if maxDelay < 0:
            raise TypeError("maxDelay must be >= 0")
        self._everyPackets = everyPackets
        self._burstPackets = burstPackets
        self._maxDelay = maxDelay
        self._unackedPackets = 0
        self._firstUnackedAt: float | None = None
        self._gapOpen = False
        self.sacksSent = 0
        self.sacksDelayed = 0  # packets whose acknowledgement was left to a later SACK

    @property
    def deadline(self) -> float | None:
        """When the pending acknowledgement is due (None: nothing pending)."""
        if self._firstUnackedAt is None:
            return None
        return self._firstUnackedAt + self._maxDelay

    @property
    def unackedPackets(self) -> int:
        return self._unackedPackets

    def packetReceived(
        self,
        now: float,
        *,
        data: bool,
        duplicates: bool = False,
        gap: bool = False,
        forwardTsn: bool = False,
        established: bool = True,
        moreWaiting: bool = False,
    ) -> bool:
        """One received packet, after its chunks were handled: ``data`` it carried DATA chunks
        (new or not), ``duplicates`` duplicate TSNs wait to be reported, ``gap`` TSNs are
        missing below the highest received, ``forwardTsn`` it carried a FORWARD TSN,
        ``established`` the association is ESTABLISHED, ``moreWaiting`` more received
        datagrams wait to be handled right after it. True: send a SACK now. False: none
        needed yet (see ``deadline``)."""
        gapChanged = gap or self._gapOpen
        self._gapOpen = gap
        if not (data or forwardTsn or duplicates):
            return False
        if (
            gapChanged
            or duplicates
            or forwardTsn
            or not established
            or self._unackedPackets + 1
            >= (self._burstPackets if moreWaiting else self._everyPackets)
        ):
            return True
        self._unackedPackets += 1
        if self._firstUnackedAt is None:
            self._firstUnackedAt = now
        self.sacksDelayed += 1
        return False

    def timerExpired(self, now: float) -> bool:
        """True when the delayed acknowledgement is due (a timer may fire early or late)."""
        deadline = self.deadline
        return deadline is not None and now >= deadline

    def sackSent(self) -> None:
        self._unackedPackets = 0
        self._firstUnackedAt = None
        self.sacksSent += 1


# Per association and event-loop turn: under half a default router send buffer (262 144 B).
SEND_BUDGET_BYTES = 16 * 1024


class SendBudget:
    """Bytes an association may still send in the current event-loop turn. The caller resets
    it at the start of the next turn (after the first ``spend`` of a turn)."""

    def __init__(self, bytesPerTurn: int = SEND_BUDGET_BYTES) -> None:
        if bytesPerTurn <= 0:
            raise TypeError("bytesPerTurn must be > 0")
        self._bytesPerTurn = bytesPerTurn
        self._remaining = bytesPerTurn
        self.turnsExhausted = 0  # turns in which sending stopped on the budget

    @property
    def remaining(self) -> int:
        return max(0, self._remaining)

    @property
    def fresh(self) -> bool:
        """Nothing spent in this turn yet."""
        return self._remaining == self._bytesPerTurn

    def spend(self, size: int) -> None:
        wasAvailable = self._remaining > 0
        self._remaining -= size
        if wasAvailable and self._remaining <= 0:
            self.turnsExhausted += 1

    def newTurn(self) -> None:
        self._remaining = self._bytesPerTurn
