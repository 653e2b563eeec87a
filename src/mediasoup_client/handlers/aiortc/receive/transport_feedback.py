"""Transport-wide congestion control feedback, the receiver's half
(draft-holmer-rmcat-transport-wide-cc-extensions-01).

The router stamps every RTP packet it sends on the transport (media, retransmissions and its
bandwidth probes) with one transport-wide sequence number; the receiver records when each one
arrived and reports that back every ~50 ms in RTCP transport feedback (RTPFB, FMT 15). The
router's own estimator (libwebrtc's goog_cc inside mediasoup) turns the arrival pattern into
the bitrate it lets the transport's consumers use.

Wire format: base sequence number, packet status count, 24-bit reference time (64 ms units),
feedback packet count; then status chunks (run length, or 1-bit/2-bit vectors) and one receive
delta (250 us units, 1 byte when 0..255, 2 signed bytes otherwise) per received packet.
Padded with zeros to 32 bits, as mediasoup pads its own. The wire format (written and parsed)
is the send path's ``cc/transport_feedback.py``, one implementation for both directions: this
module decides what each packet reports and how many fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..send.cc.transport_feedback import TransportFeedback
from .sequence import sequenceUnwrapper

FEEDBACK_INTERVAL = 0.05  # seconds between feedback packets while packets arrive
MAX_FEEDBACK_SIZE = 1200  # bytes per RTCP packet
_TICK_US = 250
_REFERENCE_US = 64_000
_MAX_STATUS_COUNT = 0xFFFF
_MAX_RUN = 0x1FFF  # statuses per run chunk
_KEEP_US = 500_000  # arrivals kept after being reported, for reordered packets


@dataclass(slots=True)
class _Reported:
    seq: int
    arrivalUs: int


class TransportFeedbackGenerator:
    """Arrival times of one transport's packets in, feedback packets out.

    ``onPacket`` takes the 16-bit transport sequence number and the arrival time (seconds on a
    monotonic clock); ``build`` returns the feedback for everything not reported yet. A packet
    arriving after its sequence number was reported lost is reported again (received) in the
    next feedback, as libwebrtc's receiver does.
    """

    def __init__(self, senderSsrc: int, mediaSsrc: int = 0) -> None:
        self.senderSsrc = senderSsrc
        self.mediaSsrc = mediaSsrc
        self._unwrapper = sequenceUnwrapper()
        self._arrivals: dict[int, int] = {}  # unwrapped seq -> arrival (us)
        self._windowStart: int | None = None  # first seq the next feedback reports
        self._newest: int | None = None
        self._feedbackCount = 0
        self._originUs: int | None = None  # arrival times count from the first packet
        self.packetsRecorded = 0
        self.feedbackSent = 0

    @property
    def pending(self) -> bool:
        """Something arrived that no feedback has reported yet."""
        return (
            self._windowStart is not None
            and self._newest is not None
            and self._newest >= self._windowStart
        )

    def onPacket(self, transportSeq: int, arrival: float) -> None:
        seq = self._unwrapper.unwrap(transportSeq & 0xFFFF)
        if seq in self._arrivals:
            return  # a duplicate: only the first arrival counts
        arrival_us = int(arrival * 1_000_000)
        if self._originUs is None:
            # Reference times then start at 0 and stay positive for days (24 bits, signed).
            self._originUs = arrival_us
        self._arrivals[seq] = arrival_us - self._originUs
        self.packetsRecorded += 1
        if self._windowStart is None or seq < self._windowStart:
            self._windowStart = seq
        if self._newest is None or seq > self._newest:
            self._newest = seq

    def build(self) -> list[bytes]:
        """Feedback packets for every arrival not reported yet (usually one)."""
        if not self.pending:
            return []
        assert self._windowStart is not None and self._newest is not None
        received = sorted(s for s in self._arrivals if s >= self._windowStart)
        packets: list[bytes] = []
        index = 0
        while index < len(received):
            packet, index = self._buildOne(received, index)
            packets.append(packet)
        self._windowStart = self._newest + 1
        self._prune()
        self.feedbackSent += len(packets)
        return packets

    def _prune(self) -> None:
        if not self._arrivals or self._windowStart is None:
            return
        newest_arrival = max(self._arrivals.values())
        for seq in [
            s
            for s, at in self._arrivals.items()
            if s < self._windowStart and newest_arrival - at > _KEEP_US
        ]:
            del self._arrivals[seq]

    def _buildOne(self, received: list[int], index: int) -> tuple[bytes, int]:
        """One feedback packet from ``received[index]`` on; returns it and the next index."""
        base = received[index]
        first_arrival = self._arrivals[base]
        reference = first_arrival // _REFERENCE_US
        last_us = reference * _REFERENCE_US
        packets: list[tuple[int, int | None]] = []  # (seq, receive delta in ticks or None)
        delta_bytes = 0
        # Header (8), fixed FCI (8), chunks and deltas must fit; the chunk size is estimated
        # from above (a vector chunk per 7 statuses, a run-length chunk per long loss run).
        budget = MAX_FEEDBACK_SIZE - 16 - 8
        chunk_estimate = 0
        vector_symbols = 0
        expected = base
        while index < len(received):
            seq = received[index]
            gap = seq - expected
            if len(packets) + gap + 1 > _MAX_STATUS_COUNT:
                break
            ticks = (self._arrivals[seq] - last_us) // _TICK_US
            if 0 <= ticks <= 0xFF:
                size = 1
            elif -0x8000 <= ticks <= 0x7FFF:
                size = 2
            else:
                break  # needs a new reference time: next packet
            if gap >= 14:
                rle = chunk_estimate + 2 * (-(-gap // _MAX_RUN)) + 2
                vectors = vector_symbols + 1
            else:
                rle = chunk_estimate
                vectors = vector_symbols + gap + 1
            if packets and rle + 2 * (-(-vectors // 7)) + delta_bytes + size > budget:
                break
            chunk_estimate, vector_symbols = rle, vectors
            packets.extend((missing & 0xFFFF, None) for missing in range(expected, seq))
            packets.append((seq & 0xFFFF, ticks))
            delta_bytes += size
            last_us += ticks * _TICK_US
            expected = seq + 1
            index += 1
        feedback = TransportFeedback(
            self.senderSsrc, self.mediaSsrc, base, reference, self._feedbackCount, packets
        )
        self._feedbackCount += 1
        return feedback.serialize(), index
