"""Transport-wide congestion control feedback (RTCP RTPFB, FMT 15), parsed and written.

The format of draft-holmer-rmcat-transport-wide-cc-extensions-01 (section 3.1), which the
router sends about every 100 ms for the transport-wide sequence numbers we write:

    base sequence number (16) | packet status count (16)
    reference time (24, signed, in 64 ms) | feedback packet count (8)
    packet chunks (16 bits each), then one receive delta per received packet, padding.

A chunk is a run (``0 SS LLLLLLLLLLLLL``: one status for up to 8191 packets) or a vector
(``1 0`` + 14 one-bit statuses, or ``1 1`` + 7 two-bit statuses). Statuses: 0 not received,
1 received with a small delta (one byte, 0..255 x 250 us), 2 received with a large or negative
delta (two bytes, signed, x 250 us). The first delta is relative to the reference time, every
other one to the previous received packet. aiortc parses any RTPFB as a NACK, so this is read
from the raw RTCP (``extractTransportFeedback``).

Pure: bytes in, values out, and the reverse (``TransportFeedback.serialize``, used by tests and
by anything that wants to act as a receiver).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

RTCP_RTPFB = 205
FMT_TRANSPORT_FEEDBACK = 15
DELTA_TICK = 0.00025  # seconds per receive-delta unit (250 us)
REFERENCE_TICK = 0.064  # seconds per reference-time unit

_NOT_RECEIVED = 0
_SMALL = 1
_LARGE = 2
_MAX_RUN = 0x1FFF


@dataclass(slots=True)
class TransportFeedback:
    """One feedback packet. ``packets``: (sequence number, receive delta in 250 us ticks,
    None when not received), from the base sequence number on, in order."""

    senderSsrc: int
    mediaSsrc: int
    baseSequence: int
    referenceTime: int  # signed, in 64 ms units
    feedbackCount: int
    packets: list[tuple[int, int | None]] = field(default_factory=list)

    def arrivals(self) -> Iterator[tuple[int, float | None]]:
        """(sequence number, arrival time in seconds on the receiver's clock, or None)."""
        ticks = 0
        base = self.referenceTime * REFERENCE_TICK
        for sequence, delta in self.packets:
            if delta is None:
                yield sequence, None
            else:
                ticks += delta
                yield sequence, base + ticks * DELTA_TICK

    def serialize(self) -> bytes:
        """The RTCP packet (header included, padded to 32 bits without the P bit, as
        mediasoup writes it)."""
        statuses = [_status(delta) for _seq, delta in self.packets]
        chunks = b"".join(struct.pack("!H", chunk) for chunk in _chunks(statuses))
        deltas = b"".join(
            struct.pack("!B", delta) if status == _SMALL else struct.pack("!h", delta)
            for (_seq, delta), status in zip(self.packets, statuses, strict=True)
            if delta is not None
        )
        body = (
            struct.pack("!IIHH", self.senderSsrc, self.mediaSsrc, self.baseSequence & 0xFFFF,
                        len(self.packets))
            + ((self.referenceTime & 0xFFFFFF) << 8 | (self.feedbackCount & 0xFF)).to_bytes(
                4, "big"
            )
            + chunks
            + deltas
        )  # fmt: skip
        body += b"\x00" * (-len(body) % 4)
        header = struct.pack("!BBH", 0x80 | FMT_TRANSPORT_FEEDBACK, RTCP_RTPFB, len(body) // 4)
        return header + body


def _status(delta: int | None) -> int:
    if delta is None:
        return _NOT_RECEIVED
    if not -0x8000 <= delta <= 0x7FFF:
        raise ValueError(f"receive delta {delta} does not fit 16 bits")
    return _SMALL if 0 <= delta <= 0xFF else _LARGE


def _chunks(statuses: list[int]) -> Iterator[int]:
    """Encode statuses greedily: runs of 14 or more (7 or more at the end) as run chunks, else
    vectors (one-bit when the next 14 need no large delta). The receive path's feedback
    generator sizes its packets for this rule (a vector chunk per 7 statuses, a run chunk
    per long loss run)."""
    position = 0
    count = len(statuses)
    while position < count:
        status = statuses[position]
        run = 1
        while position + run < count and statuses[position + run] == status and run < _MAX_RUN:
            run += 1
        if run >= 14 or (position + run == count and run >= 7):
            yield (status << 13) | run
            position += run
            continue
        window = statuses[position : position + 14]
        if _LARGE not in window:
            bits = 0
            for index, value in enumerate(window):
                bits |= value << (13 - index)
            yield 0x8000 | bits
            position += 14
        else:
            bits = 0
            for index, value in enumerate(statuses[position : position + 7]):
                bits |= value << (12 - 2 * index)
            yield 0xC000 | bits
            position += 7


def parseTransportFeedback(fci: bytes, *, padded: bool = False) -> TransportFeedback:
    """The feedback in ``fci``: the RTCP packet after its 4-byte header (sender SSRC first).
    ``padded``: the header's P bit was set (the last byte counts the padding). ValueError for
    a malformed packet."""
    if padded:
        if not fci or not 0 < fci[-1] <= len(fci):
            raise ValueError("invalid RTCP padding")
        fci = fci[: -fci[-1]]
    if len(fci) < 16:
        raise ValueError("transport feedback too short")
    sender, media, base, count = struct.unpack_from("!IIHH", fci, 0)
    word = int.from_bytes(fci[12:16], "big")
    reference = word >> 8
    if reference & 0x800000:
        reference -= 0x1000000
    statuses: list[int] = []
    position = 16
    while len(statuses) < count:
        if position + 2 > len(fci):
            raise ValueError("transport feedback truncated in its chunks")
        (chunk,) = struct.unpack_from("!H", fci, position)
        position += 2
        remaining = count - len(statuses)
        if not chunk & 0x8000:
            status = (chunk >> 13) & 0x3
            run = chunk & _MAX_RUN
            if run == 0:
                raise ValueError("empty run chunk")
            statuses.extend([status] * min(run, remaining))
        elif not chunk & 0x4000:
            statuses.extend((chunk >> (13 - i)) & 1 for i in range(min(14, remaining)))
        else:
            statuses.extend((chunk >> (12 - 2 * i)) & 3 for i in range(min(7, remaining)))
    packets: list[tuple[int, int | None]] = []
    for index, status in enumerate(statuses):
        sequence = (base + index) & 0xFFFF
        if status == _NOT_RECEIVED:
            packets.append((sequence, None))
        elif status == _SMALL:
            if position + 1 > len(fci):
                raise ValueError("transport feedback truncated in its deltas")
            packets.append((sequence, fci[position]))
            position += 1
        elif status == _LARGE:
            if position + 2 > len(fci):
                raise ValueError("transport feedback truncated in its deltas")
            packets.append((sequence, struct.unpack_from("!h", fci, position)[0]))
            position += 2
        else:
            raise ValueError("reserved packet status")
    return TransportFeedback(sender, media, base, reference, word & 0xFF, packets)


def compoundPackets(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(first header byte, packet type, the packet with its header) for each packet of a
    (compound) RTCP datagram, up to the first one that is not RTCP version 2 or overruns it."""
    position = 0
    while position + 4 <= len(data):
        first, packet_type, length = struct.unpack_from("!BBH", data, position)
        end = position + 4 + length * 4
        if first >> 6 != 2 or end > len(data):
            return
        yield first, packet_type, data[position:end]
        position = end


def extractTransportFeedback(data: bytes) -> list[TransportFeedback]:
    """Every well-formed transport feedback packet of a (compound) RTCP datagram; other
    packets and malformed feedback are skipped."""
    found: list[TransportFeedback] = []
    for first, packet_type, packet in compoundPackets(data):
        if packet_type == RTCP_RTPFB and first & 0x1F == FMT_TRANSPORT_FEEDBACK:
            with contextlib.suppress(ValueError):
                found.append(parseTransportFeedback(packet[4:], padded=bool(first & 0x20)))
    return found
