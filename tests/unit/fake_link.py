"""A bottleneck link and a receiver that answers like mediasoup's, on the fake clock.

Every RTP packet the send path puts on a ``FakeRtpPort`` enters a tail-drop FIFO drained by a
token bucket at ``rate`` (bits/s, counting IP/UDP/SRTP overhead as the sender's estimate
does; ``bucket`` bytes deep, as tbf and the impairment relay have), then travels ``delay``
seconds. Packets that find the queue holding more than ``queue`` seconds are dropped.

Every ``feedbackInterval`` the receiver sends transport-wide feedback for what has arrived,
with 1 ms arrival times and the previous feedback's last packet as the reference, as
mediasoup 3.8.4 does; with ``rtx`` it NACKs what it found missing on the media streams, and
it sends receiver reports with LSR/DLSR so the sender learns the round trip. The link can
change rate at any time (``setRate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc.rtp import RtcpPacket, RtcpReceiverInfo, RtcpRrPacket, RtcpRtpfbPacket, RtcpSrPacket

from mediasoup_client.handlers.aiortc.send.cc.transport_feedback import (
    DELTA_TICK,
    REFERENCE_TICK,
    TransportFeedback,
)
from mediasoup_client.handlers.aiortc.send.rtp_header import NTP_EPOCH_OFFSET, compactNtp
from tests.unit.fake_clock import FakeClock
from tests.unit.fake_rtp_port import FakeRtpPort, SentRtp

WIRE_OVERHEAD = 38  # IP + UDP + SRTP tag, as the sender counts


@dataclass
class Arrival:
    sequence: int  # transport-wide, 16 bits
    at: float  # receiver clock, 1 ms resolution
    ssrc: int
    size: int
    rtpSequence: int = 0
    payload: bytes = b""


@dataclass
class LinkStats:
    packetsIn: int = 0
    bytesIn: int = 0
    packetsDropped: int = 0
    bytesDelivered: int = 0
    droppedBySsrc: dict[int, int] = field(default_factory=dict)
    inBySsrc: dict[int, int] = field(default_factory=dict)
    bytesInBySsrc: dict[int, int] = field(default_factory=dict)
    maxQueueDelay: float = 0.0


class FakeLink:
    def __init__(
        self,
        clock: FakeClock,
        port: FakeRtpPort,
        *,
        rate: float = 10_000_000,
        queue: float = 0.1,
        bucket: int = 3000,
        delay: float = 0.02,
        feedbackInterval: float = 0.1,
        rtx: dict[int, int] | None = None,
        receiverReports: bool = True,
    ) -> None:
        self.clock = clock
        self.port = port
        self.rate = rate
        self.queue = queue
        self.bucket = bucket
        self._tokens = float(bucket)
        self._tokens_at = clock.now()
        self.delay = delay
        self.feedbackInterval = feedbackInterval
        # RTX SSRC -> media SSRC: when given, the receiver NACKs what it misses on those
        # media streams (once when it notices, again every 100 ms, up to 5 times) and counts
        # what RTX repaired.
        self.rtx = rtx
        self.receiverReports = receiverReports
        self.stats = LinkStats()
        self.history: list[tuple[float, float, int]] = []  # (time, rate, queued bytes)
        self._free_at = 0.0  # when the link finishes what it holds
        self._arrivals: list[Arrival] = []
        self._feedback_count = 0
        self._reference: Arrival | None = None
        self._highest: dict[int, int] = {}  # per media SSRC, unwrapped
        self._missing: dict[int, dict[int, int]] = {}  # media SSRC -> seq -> NACKs sent
        self.repaired = 0
        self.nacksSent = 0
        self._last_sr: dict[int, int] = {}
        port.onRtp = self._onRtp
        clock.callLater(feedbackInterval, self._sendFeedback)
        if receiverReports:
            clock.callLater(0.5, self._sendReports)

    def setRate(self, rate: float) -> None:
        self.rate = rate

    def queueDelay(self) -> float:
        return max(0.0, self._free_at - self.clock.now())

    # The sender's packets.

    def _onRtp(self, sent: SentRtp) -> None:
        now = self.clock.now()
        size = len(sent.data) + WIRE_OVERHEAD
        ssrc = sent.packet.ssrc
        stats = self.stats
        stats.packetsIn += 1
        stats.bytesIn += size
        stats.inBySsrc[ssrc] = stats.inBySsrc.get(ssrc, 0) + 1
        stats.bytesInBySsrc[ssrc] = stats.bytesInBySsrc.get(ssrc, 0) + size
        waiting = max(0.0, self._free_at - now)
        stats.maxQueueDelay = max(stats.maxQueueDelay, waiting)
        if waiting > self.queue:
            stats.packetsDropped += 1
            stats.droppedBySsrc[ssrc] = stats.droppedBySsrc.get(ssrc, 0) + 1
            return
        start = max(self._free_at, now)
        # Tokens refill at the rate up to the bucket; a packet leaves once it has its size.
        self._tokens = min(
            float(max(self.bucket, size)),
            self._tokens + (start - self._tokens_at) * self.rate / 8,
        )
        self._tokens_at = start
        if self._tokens >= size:
            self._tokens -= size
            departure = start
        else:
            departure = start + (size - self._tokens) * 8 / self.rate
            self._tokens = 0.0
            self._tokens_at = departure
        self._free_at = departure
        arrival = departure + self.delay
        stats.bytesDelivered += size
        sequence = sent.packet.extensions.transport_sequence_number
        rtp_sequence = sent.packet.sequence_number
        payload = sent.packet.payload

        def arrive() -> None:
            self._arrive(
                Arrival(sequence or 0, self._ms(), ssrc, size, rtp_sequence, payload),
                sequence is not None,
            )

        self.clock.callLater(arrival - now, arrive)

    def _ms(self) -> float:
        return round(self.clock.now() * 1000) / 1000

    def _arrive(self, arrival: Arrival, transportWide: bool) -> None:
        if transportWide:
            self._arrivals.append(arrival)
        if self.rtx is None:
            return
        if arrival.ssrc in self.rtx:
            if len(arrival.payload) < 2:
                return  # padding
            media = self.rtx[arrival.ssrc]
            original = int.from_bytes(arrival.payload[:2], "big")
            for unwrapped in list(self._missing.get(media, {})):
                if unwrapped & 0xFFFF == original:
                    del self._missing[media][unwrapped]
                    self.repaired += 1
            return
        if arrival.ssrc not in self.rtx.values():
            return
        highest = self._highest.get(arrival.ssrc)
        if highest is None:
            self._highest[arrival.ssrc] = arrival.rtpSequence
            return
        delta = (arrival.rtpSequence - highest) & 0xFFFF
        if delta == 0 or delta >= 0x8000:
            missing = self._missing.get(arrival.ssrc, {})
            for unwrapped in list(missing):
                if unwrapped & 0xFFFF == arrival.rtpSequence:
                    del missing[unwrapped]  # late, not lost
            return
        missing = self._missing.setdefault(arrival.ssrc, {})
        for step in range(1, delta):
            missing[highest + step] = 0
        self._highest[arrival.ssrc] = highest + delta
        if delta > 1:
            self._sendNacks(arrival.ssrc)

    def _sendNacks(self, ssrc: int) -> None:
        missing = self._missing.get(ssrc, {})
        due = [seq for seq, count in missing.items() if count < 5]
        for seq in due:
            missing[seq] += 1
        for seq in [seq for seq, count in missing.items() if count >= 5]:
            del missing[seq]
        if due:
            self.nacksSent += 1
            packet = RtcpRtpfbPacket(
                fmt=1, ssrc=1, media_ssrc=ssrc, lost=sorted(seq & 0xFFFF for seq in due)
            )
            self.clock.callLater(self.delay, lambda: self.port.inject(packet))

    # The receiver's feedback.

    def _sendFeedback(self) -> None:
        self.clock.callLater(self.feedbackInterval, self._sendFeedback)
        self.retryNacks()
        if not self._arrivals:
            return
        arrivals = sorted(self._arrivals, key=lambda a: a.sequence)
        self._arrivals.clear()
        if self._reference is None:
            self._reference = arrivals[0]
            arrivals = arrivals[1:]
            if not arrivals:
                return
        reference = self._reference
        base = (reference.sequence + 1) & 0xFFFF
        # Packets older than the reference (reordered) are left out, as mediasoup does.
        newer = [a for a in arrivals if (a.sequence - reference.sequence) & 0xFFFF < 0x8000]
        if not newer:
            return
        reference_units = int(reference.at / REFERENCE_TICK)
        previous_time = reference_units * REFERENCE_TICK
        packets: list[tuple[int, int | None]] = []
        by_sequence = {a.sequence: a for a in newer}
        last = newer[-1].sequence
        sequence = base
        while True:
            arrived = by_sequence.get(sequence)
            if arrived is None:
                packets.append((sequence, None))
            else:
                delta = round((arrived.at - previous_time) / DELTA_TICK)
                packets.append((sequence, delta))
                previous_time += delta * DELTA_TICK
            if sequence == last:
                break
            sequence = (sequence + 1) & 0xFFFF
        self._reference = newer[-1]
        feedback = TransportFeedback(
            senderSsrc=0,
            mediaSsrc=newer[-1].ssrc,
            baseSequence=base,
            referenceTime=reference_units,
            feedbackCount=self._feedback_count,
            packets=packets,
        )
        self._feedback_count = (self._feedback_count + 1) & 0xFF
        self.port.inject(feedback.serialize())

    def _sendReports(self) -> None:
        self.clock.callLater(1.0, self._sendReports)
        now_wall = self.clock.wallTime()
        for data in self.port.rtcp:
            for packet in RtcpPacket.parse(data):
                if isinstance(packet, RtcpSrPacket):
                    self._last_sr[packet.ssrc] = packet.sender_info.ntp_timestamp
        self.port.rtcp.clear()
        reports = []
        for ssrc, ntp in self._last_sr.items():
            sent_wall = ntp / (1 << 32) - NTP_EPOCH_OFFSET
            # Held by the receiver since the SR arrived, one link delay after it left.
            held = max(0.0, now_wall - sent_wall - self.delay)
            reports.append(
                RtcpReceiverInfo(
                    ssrc=ssrc,
                    fraction_lost=0,
                    packets_lost=0,
                    highest_sequence=0,
                    jitter=0,
                    lsr=compactNtp(ntp),
                    dlsr=int(held * 65536),
                )
            )
        if reports:
            packet = RtcpRrPacket(ssrc=1, reports=reports)
            self.clock.callLater(self.delay, lambda: self.port.inject(packet))

    def retryNacks(self) -> None:
        for ssrc in list(self._missing):
            self._sendNacks(ssrc)
