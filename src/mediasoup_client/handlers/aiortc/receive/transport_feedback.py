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
Padded with zeros to 32 bits, as mediasoup pads its own.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .sequence import sequenceUnwrapper

RTCP_RTPFB = 205
FMT_TRANSPORT_FEEDBACK = 15
FEEDBACK_INTERVAL = 0.05  # seconds between feedback packets while packets arrive
MAX_FEEDBACK_SIZE = 1200  # bytes per RTCP packet
_TICK_US = 250
_REFERENCE_US = 64_000
_MAX_STATUS_COUNT = 0xFFFF
_MAX_RUN = 0x1FFF
_KEEP_US = 500_000  # arrivals kept after being reported, for reordered packets

_NOT_RECEIVED = 0
_SMALL = 1
_LARGE = 2


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
        symbols: list[int] = []
        deltas = bytearray()
        # Header (8), fixed FCI (8), chunks and deltas must fit; the chunk size is estimated
        # from above (a vector chunk per 7 statuses, a run-length chunk per long loss run).
        budget = MAX_FEEDBACK_SIZE - 16 - 8
        chunk_estimate = 0
        vector_symbols = 0
        expected = base
        while index < len(received):
            seq = received[index]
            gap = seq - expected
            if len(symbols) + gap + 1 > _MAX_STATUS_COUNT:
                break
            ticks = (self._arrivals[seq] - last_us) // _TICK_US
            if 0 <= ticks <= 0xFF:
                symbol, encoded = _SMALL, bytes([ticks])
            elif -0x8000 <= ticks <= 0x7FFF:
                symbol, encoded = _LARGE, struct.pack("!h", ticks)
            else:
                break  # needs a new reference time: next packet
            if gap >= 14:
                rle = chunk_estimate + 2 * (-(-gap // _MAX_RUN)) + 2
                vectors = vector_symbols + 1
            else:
                rle = chunk_estimate
                vectors = vector_symbols + gap + 1
            if symbols and rle + 2 * (-(-vectors // 7)) + len(deltas) + len(encoded) > budget:
                break
            chunk_estimate, vector_symbols = rle, vectors
            symbols.extend([_NOT_RECEIVED] * gap)
            symbols.append(symbol)
            deltas += encoded
            last_us += ticks * _TICK_US
            expected = seq + 1
            index += 1
        chunks = _encodeChunks(symbols)
        fci = struct.pack(
            "!HHI",
            base & 0xFFFF,
            len(symbols),
            ((reference & 0xFFFFFF) << 8) | (self._feedbackCount & 0xFF),
        )
        self._feedbackCount += 1
        body = struct.pack("!II", self.senderSsrc, self.mediaSsrc) + fci + chunks + bytes(deltas)
        body += b"\x00" * (-len(body) % 4)
        header = struct.pack("!BBH", 0x80 | FMT_TRANSPORT_FEEDBACK, RTCP_RTPFB, len(body) // 4)
        return header + body, index


def _encodeChunks(symbols: list[int]) -> bytes:
    """Status chunks for ``symbols``: runs of one status as run-length chunks, the rest as
    14 one-bit or 7 two-bit symbols per vector chunk."""
    out = bytearray()
    i = 0
    n = len(symbols)
    while i < n:
        symbol = symbols[i]
        run = 1
        while i + run < n and symbols[i + run] == symbol and run < _MAX_RUN:
            run += 1
        if run >= 14 or (i + run == n and run >= 7):
            out += struct.pack("!H", (symbol << 13) | run)
            i += run
            continue
        window = symbols[i : i + 14]
        if _LARGE not in window:
            value = 0x8000
            for position, s in enumerate(window):
                value |= s << (13 - position)
            out += struct.pack("!H", value)
            i += len(window)
        else:
            window = symbols[i : i + 7]
            value = 0xC000
            for position, s in enumerate(window):
                value |= s << (2 * (6 - position))
            out += struct.pack("!H", value)
            i += len(window)
    return bytes(out)


@dataclass
class ParsedFeedback:
    """A transport feedback read back (for tests and diagnostics)."""

    baseSequence: int
    statusCount: int
    referenceTime: int  # 64 ms units
    feedbackCount: int
    received: dict[int, int]  # 16-bit seq -> arrival (us, relative to the reference time 0)


def parseTransportFeedback(packet: bytes) -> ParsedFeedback:
    if len(packet) < 20:
        raise ValueError("transport feedback too short")
    first, packet_type, length = struct.unpack_from("!BBH", packet, 0)
    if packet_type != RTCP_RTPFB or first & 0x1F != FMT_TRANSPORT_FEEDBACK:
        raise ValueError("not a transport feedback")
    end = 4 * (length + 1)
    base, count, ref_and_count = struct.unpack_from("!HHI", packet, 12)
    reference = ref_and_count >> 8
    if reference & 0x800000:
        reference -= 1 << 24
    pos = 20
    statuses: list[int] = []
    while len(statuses) < count:
        if pos + 2 > end:
            raise ValueError("truncated chunks")
        (chunk,) = struct.unpack_from("!H", packet, pos)
        pos += 2
        remaining = count - len(statuses)
        if not chunk & 0x8000:
            statuses.extend([(chunk >> 13) & 0x03] * min(chunk & 0x1FFF, remaining))
        elif not chunk & 0x4000:
            statuses.extend(((chunk >> (13 - i)) & 0x01) for i in range(min(14, remaining)))
        else:
            statuses.extend(((chunk >> (2 * (6 - i))) & 0x03) for i in range(min(7, remaining)))
    time_us = reference * _REFERENCE_US
    received: dict[int, int] = {}
    for offset, status in enumerate(statuses):
        if status == _SMALL:
            time_us += packet[pos] * _TICK_US
            pos += 1
        elif status == _LARGE:
            (delta,) = struct.unpack_from("!h", packet, pos)
            time_us += delta * _TICK_US
            pos += 2
        else:
            continue
        if pos > end:
            raise ValueError("truncated deltas")
        received[(base + offset) & 0xFFFF] = time_us
    return ParsedFeedback(base, count, reference, ref_and_count & 0xFF, received)
