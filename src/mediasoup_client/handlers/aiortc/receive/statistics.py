"""What the receive side counts: RFC 3550 reception statistics per media SSRC (loss, extended
highest sequence number, interarrival jitter, the receiver report block), the sender's last
report (for LSR/DLSR and remote-outbound-rtp), and per-track frame and sample counters (W3C
inbound-rtp names).

Retransmissions are unwrapped to their media SSRC and counted there (``retransmitted*``, a
subset of ``packetsReceived`` as W3C defines it). Loss is RFC 3550's for the media SSRC: the
packets that did not arrive on it, repaired later or not (RFC 4588 makes RTX a stream of its
own), as libwebrtc counts it. That is what the receiver reports tell the router, whose
estimator takes its loss figure from them (mediasoup runs goog_cc with RTCP reports on): a
receiver reporting repaired packets as received hides congestion from it. Duplicates are not
counted twice.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

_DUPLICATE_WINDOW = 4096  # sequence numbers remembered for duplicate detection
_FPS_WINDOW = 1.0
_FREEZE_HISTORY = 30


def _clampLost(lost: int) -> int:
    """Cumulative packets lost as a 24-bit signed field."""
    return max(-0x800000, min(0x7FFFFF, lost))


@dataclass
class SenderReportInfo:
    ntp: int  # 64-bit NTP timestamp of the report
    rtpTimestamp: int
    packetsSent: int
    bytesSent: int
    receivedAt: float  # monotonic seconds
    receivedAtUnix: float  # time.time() when it arrived
    reportsReceived: int


@dataclass
class ReportBlockFields:
    ssrc: int
    fractionLost: int  # 0..255
    packetsLost: int
    highestSequence: int  # extended
    jitter: int  # timestamp units
    lsr: int
    dlsr: int  # 1/65536 s


class StreamStatistics:
    """Reception statistics of one media SSRC."""

    def __init__(self, ssrc: int, clockRate: int) -> None:
        self.ssrc = ssrc
        self.clockRate = clockRate
        self.packetsReceived = 0  # retransmissions included (W3C)
        self._originalsReceived = 0  # packets that came on the media SSRC itself
        self.bytesReceived = 0  # payload bytes (W3C)
        self.retransmittedPacketsReceived = 0
        self.retransmittedBytesReceived = 0
        self.packetsDuplicated = 0
        self.lastPacketReceivedTimestamp: float | None = None  # time.time()
        self._base: int | None = None  # first unwrapped sequence number
        self._expectedBefore = 0  # packets expected in sequence spaces before a restart
        self._highest: int | None = None
        self._seen: set[int] = set()
        self._seenOrder: collections.deque[int] = collections.deque()
        self._jitter = 0.0  # timestamp units
        self._lastTransit: float | None = None
        self._lastTimestamp: int | None = None
        self._expectedPrior = 0
        self._receivedPrior = 0
        self.senderReport: SenderReportInfo | None = None

    # Input.

    def onPacket(
        self,
        seq: int,
        timestamp: int,
        arrival: float,
        arrivalUnix: float,
        payloadSize: int,
        retransmitted: bool,
    ) -> bool:
        """Count one packet (sequence number unwrapped); False for a duplicate."""
        if seq in self._seen:
            self.packetsDuplicated += 1
            return False
        self._seen.add(seq)
        self._seenOrder.append(seq)
        if len(self._seenOrder) > _DUPLICATE_WINDOW:
            self._seen.discard(self._seenOrder.popleft())
        self.packetsReceived += 1
        if not retransmitted:
            self._originalsReceived += 1
        self.bytesReceived += payloadSize
        self.lastPacketReceivedTimestamp = arrivalUnix
        if retransmitted:
            self.retransmittedPacketsReceived += 1
            self.retransmittedBytesReceived += payloadSize
            return True  # the media SSRC's sequence space is what arrived on it
        if self._base is None or seq < self._base:
            self._base = seq
        if self._highest is None or seq > self._highest:
            self._highest = seq
            self._updateJitter(timestamp, arrival)
        return True

    def _updateJitter(self, timestamp: int, arrival: float) -> None:
        """RFC 3550 A.8, on the first packet of each frame (the packets of one frame share a
        timestamp and leave the sender together: their spacing is pacing, not jitter)."""
        if timestamp == self._lastTimestamp:
            return
        transit = arrival * self.clockRate - timestamp
        if self._lastTransit is not None:
            delta = abs(transit - self._lastTransit)
            self._jitter += (delta - self._jitter) / 16
        self._lastTransit = transit
        self._lastTimestamp = timestamp

    def onSenderReport(
        self,
        ntp: int,
        rtpTimestamp: int,
        packetsSent: int,
        bytesSent: int,
        now: float,
        nowUnix: float,
    ) -> None:
        count = self.senderReport.reportsReceived + 1 if self.senderReport else 1
        self.senderReport = SenderReportInfo(
            ntp, rtpTimestamp, packetsSent, bytesSent, now, nowUnix, count
        )

    def restart(self) -> None:
        """The sequence space starts over (consumer resumed after a pause: what was not sent
        or not taken while paused is not lost)."""
        self._expectedBefore = self.packetsExpected
        self._base = None
        self._highest = None
        self._lastTransit = None
        self._lastTimestamp = None

    # Output.

    @property
    def packetsExpected(self) -> int:
        if self._base is None or self._highest is None:
            return self._expectedBefore
        return self._expectedBefore + self._highest - self._base + 1

    @property
    def packetsLost(self) -> int:
        return max(0, self.packetsExpected - self._originalsReceived)

    @property
    def jitter(self) -> float:
        """Interarrival jitter in seconds."""
        return self._jitter / self.clockRate

    @property
    def hasReceived(self) -> bool:
        return self._highest is not None

    def reportBlock(self, now: float) -> ReportBlockFields:
        """The RR block, and starts a new interval for the fraction lost."""
        expected = self.packetsExpected
        received = self._originalsReceived
        expected_interval = expected - self._expectedPrior
        received_interval = received - self._receivedPrior
        self._expectedPrior = expected
        self._receivedPrior = received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        lsr = dlsr = 0
        report = self.senderReport
        if report is not None:
            lsr = (report.ntp >> 16) & 0xFFFFFFFF
            dlsr = min(0xFFFFFFFF, max(0, int((now - report.receivedAt) * 65536)))
        return ReportBlockFields(
            ssrc=self.ssrc,
            fractionLost=fraction,
            packetsLost=_clampLost(expected - received),
            highestSequence=(self._highest or 0) & 0xFFFFFFFF,
            jitter=int(self._jitter),
            lsr=lsr,
            dlsr=dlsr,
        )


class FrameCounters:
    """Decoded-frame counters of a video track (W3C inbound-rtp video members)."""

    def __init__(self) -> None:
        self.framesDecoded = 0
        self.keyFramesDecoded = 0
        self.framesReceived = 0
        self.framesDropped = 0
        self.frameWidth: int | None = None
        self.frameHeight: int | None = None
        self.totalDecodeTime = 0.0
        self.freezeCount = 0
        self.totalFreezesDuration = 0.0
        self.totalInterFrameDelay = 0.0
        self.totalSquaredInterFrameDelay = 0.0
        self.decodeErrors = 0
        self._recent: collections.deque[float] = collections.deque()  # output times
        self._durations: collections.deque[float] = collections.deque(maxlen=_FREEZE_HISTORY)
        self._lastOutput: float | None = None

    def onDecoded(
        self, now: float, width: int, height: int, keyFrame: bool, decodeTime: float
    ) -> None:
        self.framesDecoded += 1
        if keyFrame:
            self.keyFramesDecoded += 1
        self.frameWidth, self.frameHeight = width, height
        self.totalDecodeTime += decodeTime
        if self._lastOutput is not None:
            duration = now - self._lastOutput
            self.totalInterFrameDelay += duration
            self.totalSquaredInterFrameDelay += duration * duration
            if self._durations:
                average = sum(self._durations) / len(self._durations)
                # W3C: a freeze is a frame duration >= max(3 x average, average + 150 ms).
                if duration >= max(3 * average, average + 0.150):
                    self.freezeCount += 1
                    self.totalFreezesDuration += duration
            self._durations.append(duration)
        self._lastOutput = now
        self._recent.append(now)

    def resetTiming(self) -> None:
        """A pause is not a freeze: the next frame starts a new run."""
        self._lastOutput = None

    def framesPerSecond(self, now: float) -> float:
        recent = self._recent
        while recent and now - recent[0] > _FPS_WINDOW:
            recent.popleft()
        return float(len(recent)) / _FPS_WINDOW


class SampleCounters:
    """Decoded-audio counters (W3C inbound-rtp audio members)."""

    def __init__(self) -> None:
        self.totalSamplesReceived = 0
        self.concealedSamples = 0
        self.concealmentEvents = 0
        self.totalSamplesDuration = 0.0
        self.decodeErrors = 0

    def onDecoded(self, samples: int, sampleRate: int) -> None:
        self.totalSamplesReceived += samples
        self.totalSamplesDuration += samples / sampleRate

    def onConcealed(self, samples: int, sampleRate: int) -> None:
        self.totalSamplesReceived += samples
        self.totalSamplesDuration += samples / sampleRate
        self.concealedSamples += samples
        self.concealmentEvents += 1
