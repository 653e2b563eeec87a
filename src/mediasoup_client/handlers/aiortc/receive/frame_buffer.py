"""The video jitter buffer: assembles frames from packets and hands them to the decoder in
order, complete and decodable, with a deadline.

Decodable means a key frame, or the frame right after the last one delivered (mediasoup keeps a
consumer's sequence numbers contiguous across layer switches and dropped temporal layers, so
"no sequence gap since the last delivered frame" is exactly "the references are there").

When a sequence gap blocks delivery, the buffer waits for the retransmission, but not forever:
once the blocked frame is late by more than ``maxWait`` (by the wall clock since the gap was
noticed, or by the media time that arrived after it, which is what an outage shows), or the NACK
module gave up on a missing packet, the frames up to there are dropped and the buffer waits for
a key frame (``keyFrameNeeded``). A complete key frame after a gap is delivered at once,
whatever is still missing before it.

Sequence numbers and timestamps are unwrapped (``sequence.Unwrapper``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_PACKETS = 4096  # buffered packets; the oldest go first beyond this
_MAX_FRAME_PACKETS = 2048


@dataclass(slots=True)
class BufferedPacket:
    seq: int
    timestamp: int
    marker: bool
    frameStart: bool
    keyFrame: bool
    data: bytes
    arrival: float
    padding: bool = False  # no payload: keeps the sequence contiguous, belongs to no frame


@dataclass(slots=True)
class EncodedFrame:
    data: bytes
    timestamp: int  # unwrapped RTP timestamp
    keyFrame: bool
    firstSeq: int
    lastSeq: int
    packetCount: int
    lastArrival: float  # when its last packet arrived


@dataclass
class BufferOutput:
    frames: list[EncodedFrame] = field(default_factory=list)
    keyFrameNeeded: bool = False  # the buffer gave up on a gap and waits for a key frame
    framesDropped: int = 0
    clearNackUpTo: int | None = None  # missing packets before this are no longer wanted

    def merge(self, other: BufferOutput) -> None:
        self.frames.extend(other.frames)
        self.keyFrameNeeded = self.keyFrameNeeded or other.keyFrameNeeded
        self.framesDropped += other.framesDropped
        if other.clearNackUpTo is not None:
            self.clearNackUpTo = max(self.clearNackUpTo or other.clearNackUpTo, other.clearNackUpTo)


class VideoFrameBuffer:
    def __init__(self, clockRate: int = 90000, maxPackets: int = MAX_PACKETS) -> None:
        self._clockRate = clockRate
        self._maxPackets = maxPackets
        self._packets: dict[int, BufferedPacket] = {}
        self._keyTimestamps: dict[int, int] = {}  # timestamp -> a seq flagged key frame
        self._next: int | None = None  # first sequence number not delivered yet
        self._lastTimestamp: int | None = None  # of the last frame delivered
        self._newestSeq: int | None = None
        self._newestTimestamp: int | None = None
        self._blockedSince: float | None = None
        self._unrecoverable: set[int] = set()
        self.waitingForKeyFrame = True
        self.framesAssembled = 0  # complete frames handed out (W3C framesReceived)
        self.framesDropped = 0
        self.lastKeyPacketAt: float | None = None  # newest packet of a key frame in flight
        self._keyInFlight: int | None = None

    @property
    def blocked(self) -> bool:
        return self._blockedSince is not None

    # Input.

    def insert(self, packet: BufferedPacket, now: float, maxWait: float) -> BufferOutput:
        if self._next is not None and packet.seq < self._next:
            return BufferOutput()  # already delivered or given up (a late retransmission)
        if packet.seq in self._packets:
            return BufferOutput()
        self._packets[packet.seq] = packet
        if packet.keyFrame:
            self._keyTimestamps.setdefault(packet.timestamp, packet.seq)
            if self._keyInFlight is None or packet.timestamp >= self._keyInFlight:
                self._keyInFlight = packet.timestamp
        if packet.timestamp == self._keyInFlight:
            self.lastKeyPacketAt = now
        if self._newestSeq is None or packet.seq > self._newestSeq:
            self._newestSeq = packet.seq
        if self._newestTimestamp is None or packet.timestamp > self._newestTimestamp:
            self._newestTimestamp = packet.timestamp
        output = BufferOutput()
        if len(self._packets) > self._maxPackets:
            self._trim(output)
        self._poll(now, maxWait, output)
        return self._account(output)

    def unrecoverable(self, seqs: list[int], now: float, maxWait: float) -> BufferOutput:
        """The NACK module gave up on these: a gap they leave before the next frame is final."""
        self._unrecoverable.update(seqs)
        return self.poll(now, maxWait)

    def requireKeyFrame(self) -> None:
        """Decode only from a key frame on (decoder error, resume after pause)."""
        self.waitingForKeyFrame = True
        self._next = None
        self._blockedSince = None

    def reset(self) -> None:
        """Forget everything buffered (pause): the next frame must be a key frame."""
        self._packets.clear()
        self._keyTimestamps.clear()
        self._newestSeq = None
        self._newestTimestamp = None
        self._keyInFlight = None
        self.requireKeyFrame()

    # Delivery.

    def poll(self, now: float, maxWait: float) -> BufferOutput:
        """Deliver what is decodable; give up on a gap that is past its deadline."""
        output = BufferOutput()
        self._poll(now, maxWait, output)
        return self._account(output)

    def _account(self, output: BufferOutput) -> BufferOutput:
        self.framesDropped += output.framesDropped
        self.framesAssembled += len(output.frames)
        return output

    def _poll(self, now: float, maxWait: float, output: BufferOutput) -> None:
        while True:
            if self.waitingForKeyFrame:
                frame = self._earliestKeyFrame()
                if frame is None:
                    break
                self._deliver(frame, output, jumped=True)
                continue
            assert self._next is not None
            frame, missing = self._frameAt(self._next)
            if frame is not None:
                self._deliver(frame, output, jumped=False)
                continue
            if missing is None:
                self._blockedSince = None  # the frame is still arriving, nothing lost
                break
            # A gap blocks delivery. A complete key frame after it ends the wait at once.
            key = self._earliestKeyFrame(after=missing)
            if key is not None:
                self._deliver(key, output, jumped=True)
                continue
            if self._blockedSince is None:
                self._blockedSince = now
            if missing in self._unrecoverable or self._lateness(now) > maxWait:
                self._giveUp(output)
            break
        if self._unrecoverable:
            floor = self._next if self._next is not None else (self._newestSeq or 0) + 1
            self._unrecoverable = {s for s in self._unrecoverable if s >= floor}

    def _lateness(self, now: float) -> float:
        assert self._blockedSince is not None
        lateness = now - self._blockedSince
        if self._newestTimestamp is not None and self._lastTimestamp is not None:
            lateness = max(
                lateness, (self._newestTimestamp - self._lastTimestamp) / self._clockRate
            )
        return lateness

    def _frameAt(self, start: int) -> tuple[EncodedFrame | None, int | None]:
        """The complete frame starting at ``start`` (skipping padding), or the first missing
        sequence number that stops it (None when it is merely not finished yet)."""
        packets = self._packets
        seq = start
        while (packet := packets.get(seq)) is not None and packet.padding:
            seq += 1
        if packet is None:
            return None, self._missingAt(seq)
        return self._assemble(seq)

    def _missingAt(self, seq: int) -> int | None:
        newest = self._newestSeq
        return seq if newest is not None and seq < newest else None

    def _assemble(self, first: int) -> tuple[EncodedFrame | None, int | None]:
        packets = self._packets
        head = packets[first]
        parts: list[bytes] = []
        key = False
        seq = first
        last = first
        while seq - first < _MAX_FRAME_PACKETS:
            packet = packets.get(seq)
            if packet is None:
                return None, self._missingAt(seq)
            if packet.timestamp != head.timestamp or (packet.padding and seq > first):
                break  # the previous packet ended the frame (its marker bit was not set)
            parts.append(packet.data)
            key = key or packet.keyFrame
            last = seq
            if packet.marker:
                break
            seq += 1
        frame = EncodedFrame(
            data=b"".join(parts),
            timestamp=head.timestamp,
            keyFrame=key,
            firstSeq=first,
            lastSeq=last,
            packetCount=last - first + 1,
            lastArrival=packets[last].arrival,
        )
        return frame, None

    def _isFrameStart(self, seq: int) -> bool:
        packet = self._packets[seq]
        if packet.frameStart:
            return True
        previous = self._packets.get(seq - 1)
        return previous is not None and previous.timestamp != packet.timestamp

    def _earliestKeyFrame(self, after: int | None = None) -> EncodedFrame | None:
        for timestamp in sorted(self._keyTimestamps):
            seq = self._keyTimestamps[timestamp]
            if seq not in self._packets:
                continue
            # Walk back to the first packet of that frame.
            while (prev := self._packets.get(seq - 1)) is not None and prev.timestamp == timestamp:
                seq -= 1
            if after is not None and seq <= after:
                continue
            if not self._isFrameStart(seq):
                continue
            frame, _missing = self._assemble(seq)
            if frame is not None and frame.keyFrame:
                return frame
        return None

    def _deliver(self, frame: EncodedFrame, output: BufferOutput, *, jumped: bool) -> None:
        if jumped:
            dropped = self._dropBefore(frame.firstSeq)
            # Frames skipped on the way to this key frame: those partly here, and at least one
            # when a gap (not a wait for the first key frame) was jumped.
            output.framesDropped += max(dropped, 0 if self._next is None else 1)
            output.clearNackUpTo = frame.firstSeq
        for seq in range(frame.firstSeq, frame.lastSeq + 1):
            self._packets.pop(seq, None)
        self._keyTimestamps.pop(frame.timestamp, None)
        self._next = frame.lastSeq + 1
        self._lastTimestamp = frame.timestamp
        self._blockedSince = None
        self.waitingForKeyFrame = False
        output.frames.append(frame)

    def _giveUp(self, output: BufferOutput) -> None:
        """Drop what cannot be decoded any more and wait for a key frame."""
        keep_from = self._newestKeyStart()
        cut = keep_from if keep_from is not None else (self._newestSeq or 0) + 1
        dropped = self._dropBefore(cut)
        output.framesDropped += max(dropped, 1)
        output.keyFrameNeeded = True
        output.clearNackUpTo = cut
        self.waitingForKeyFrame = True
        self._next = None
        self._blockedSince = None

    def _newestKeyStart(self) -> int | None:
        """The first packet of the newest key frame in the buffer, if any."""
        if not self._keyTimestamps:
            return None
        timestamp = max(self._keyTimestamps)
        seq = self._keyTimestamps[timestamp]
        while (prev := self._packets.get(seq - 1)) is not None and prev.timestamp == timestamp:
            seq -= 1
        return seq

    def _dropBefore(self, seq: int) -> int:
        """Drop buffered packets before ``seq``; returns how many frames they belonged to."""
        doomed = [s for s in self._packets if s < seq]
        timestamps = {self._packets[s].timestamp for s in doomed if not self._packets[s].padding}
        for s in doomed:
            del self._packets[s]
        for timestamp in [t for t, s in self._keyTimestamps.items() if s < seq]:
            del self._keyTimestamps[timestamp]
        return len(timestamps)

    def _trim(self, output: BufferOutput) -> None:
        oldest = min(self._packets)
        if self._next is not None and oldest >= self._next:
            # Dropping undelivered media: the next frame has to be a key frame.
            self._giveUp(output)
        else:
            self._dropBefore(oldest + 1)
