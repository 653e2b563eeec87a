"""One outgoing RTP stream (one SSRC, plus its RTX SSRC): packets, history, RTX, SR, counters.

Pure: times come in as arguments. A frame becomes ``OutgoingRtp`` packets whose per-send header
fields (abs-send-time, the transport-wide sequence number) are written when the scheduler
serialises them, and counters move when the scheduler reports them sent (``onSent``): the
transport's pacer sits in between.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from . import rtcp
from .history import SendHistory, SentPacket
from .retransmission import RetransmissionBudget
from .rtp_header import ExtensionWriter

# RTP padding is counted by one byte: at most this much per padding-only packet.
MAX_PADDING = 255


def randomSequenceNumber() -> int:
    # Start in the lower half so the first wrap-around is far away (SRTP rollover handling).
    return random.randint(0, 0x7FFF)


@dataclass(frozen=True, slots=True)
class RtxConfig:
    ssrc: int
    payloadType: int


@dataclass(slots=True)
class OutgoingRtp:
    """One RTP packet waiting to be sent."""

    stream: RtpStream
    ssrc: int
    payloadType: int
    sequenceNumber: int
    timestamp: int  # on the wire (offset applied, 32 bits)
    marker: bool
    payload: bytes
    extensions: ExtensionWriter
    retransmission: bool = False
    audioLevel: int | None = None
    voice: bool = False
    frameEnd: bool = False  # the last packet of a frame (counts framesSent)
    # The history entry: a media packet's own (its send time is set when it leaves), or the
    # one a retransmission repeats.
    original: SentPacket | None = None
    padding: int = 0  # bytes of RTP padding (a padding-only probe packet)

    @property
    def kind(self) -> str:
        if self.padding:
            return "padding"
        return "rtx" if self.retransmission else self.stream.kind

    def serialize(self, ntp: int, transportSequence: int | None = None) -> bytes:
        header = self.extensions.header(
            payloadType=self.payloadType,
            marker=self.marker,
            sequenceNumber=self.sequenceNumber,
            timestamp=self.timestamp,
            ssrc=self.ssrc,
            ntp=ntp,
            audioLevel=self.audioLevel,
            voice=self.voice,
            transportSequence=transportSequence,
            padding=bool(self.padding),
        )
        if self.padding:
            return header + bytes(self.padding - 1) + bytes([self.padding])
        return header + self.payload


@dataclass(slots=True)
class RemoteReport:
    """What the receiver last reported about this stream (remote-inbound-rtp)."""

    timestamp: float  # wall clock, seconds
    fractionLost: float
    packetsLost: int
    jitter: float  # seconds
    roundTripTime: float | None
    totalRoundTripTime: float
    roundTripTimeMeasurements: int


class RtpStream:
    """The packets of one encoding. ``timestamp`` values handed in are the sender's own
    unwrapped media clock; the stream adds its random offset and wraps to 32 bits."""

    def __init__(
        self,
        *,
        ssrc: int,
        payloadType: int,
        clockRate: int,
        extensionIds: Mapping[str, int],
        mid: str | None,
        rid: str | None,
        rtx: RtxConfig | None,
        timestampOffset: int,
        kind: str = "video",
    ) -> None:
        self.ssrc = ssrc
        self.kind = kind
        self.payloadType = payloadType
        self.clockRate = clockRate
        self.rid = rid
        self.rtx = rtx
        self._timestamp_offset = timestampOffset
        self._extensions = ExtensionWriter(extensionIds, mid=mid, rid=rid)
        self._rtx_extensions = ExtensionWriter(extensionIds, mid=mid, rid=None, repairedRid=rid)
        self._sequence_number = randomSequenceNumber()
        self._rtx_sequence_number = randomSequenceNumber()
        self._history = SendHistory()
        # Counters (W3C outbound-rtp names), moved by onSent.
        self.packetsSent = 0
        self.bytesSent = 0  # payload bytes, as W3C counts them
        self.headerBytesSent = 0
        self.retransmittedPacketsSent = 0
        self.retransmittedBytesSent = 0
        self.paddingPacketsSent = 0
        self.paddingBytesSent = 0
        self.nackedPacketsTooOld = 0  # NACKed after they left the history: not resent
        self.nackedPacketsNotResent = 0  # within an RTT of their last resend, or over budget
        self.packetsDroppedBeforeSending = 0  # stale in the pacer after a capacity drop
        self.framesSent = 0
        self.nackCount = 0
        self.pliCount = 0
        self.firCount = 0
        self.lastPacketSentTimestamp: float | None = None  # wall clock, seconds
        # The newest media timestamp sent and when its frame was captured (for SR).
        self._last_timestamp: int | None = None
        self._last_capture = 0.0
        self.remoteReport: RemoteReport | None = None

    @property
    def writesAudioLevel(self) -> bool:
        return self._extensions.writesAudioLevel

    @property
    def writesTransportSequence(self) -> bool:
        return self._extensions.writesTransportSequence

    @property
    def hasSent(self) -> bool:
        return self.packetsSent > 0

    def rtpTimestamp(self, timestamp: int) -> int:
        return (self._timestamp_offset + timestamp) & 0xFFFFFFFF

    def framePackets(
        self,
        payloads: list[bytes],
        *,
        timestamp: int,
        captureTime: float,
        now: float,
        talkSpurtStart: bool | None = None,
        audioLevel: int | None = None,
        voice: bool = False,
    ) -> list[OutgoingRtp]:
        """The packets of one frame. Video (``talkSpurtStart`` None) marks the frame's last
        packet; audio marks the first packet of a talk spurt."""
        if not payloads:
            return []
        rtp_timestamp = self.rtpTimestamp(timestamp)
        last = len(payloads) - 1
        packets: list[OutgoingRtp] = []
        for index, payload in enumerate(payloads):
            marker = index == last if talkSpurtStart is None else talkSpurtStart and index == 0
            entry = SentPacket(
                sequenceNumber=self._sequence_number,
                timestamp=rtp_timestamp,
                marker=marker,
                payload=payload,
                sentAt=now,
            )
            packet = OutgoingRtp(
                stream=self,
                ssrc=self.ssrc,
                payloadType=self.payloadType,
                sequenceNumber=self._sequence_number,
                timestamp=rtp_timestamp,
                marker=marker,
                payload=payload,
                extensions=self._extensions,
                audioLevel=audioLevel,
                voice=voice,
                frameEnd=index == last,
                original=entry,
            )
            self._history.add(entry)
            self._sequence_number = (self._sequence_number + 1) & 0xFFFF
            packets.append(packet)
        if self._last_timestamp is None or timestamp >= self._last_timestamp:
            self._last_timestamp = timestamp
            self._last_capture = captureTime
        return packets

    def retransmissions(
        self, sequenceNumbers: list[int], now: float, budget: RetransmissionBudget
    ) -> list[OutgoingRtp]:
        """Answer a NACK: resend what the history still holds, over RTX when negotiated, at
        most once per round trip and within the transport's retransmission budget."""
        self.nackCount += 1
        self._history.maxAge = budget.historyAge
        packets: list[OutgoingRtp] = []
        for seq in sequenceNumbers:
            packet = self._history.get(seq, now)
            if packet is None:
                self.nackedPacketsTooOld += 1
                budget.refusedTooOld += 1
                continue
            if packet.resendPending or (
                packet.lastResentAt is not None
                and now - packet.lastResentAt < budget.resendInterval
            ):
                self.nackedPacketsNotResent += 1
                budget.refusedTooRecent += 1
                continue
            if not budget.allow(len(packet.payload) + 60, now):
                self.nackedPacketsNotResent += 1
                continue
            packet.lastResentAt = now
            packet.resendPending = True
            packet.resends += 1
            if self.rtx is not None:
                packets.append(
                    OutgoingRtp(
                        stream=self,
                        ssrc=self.rtx.ssrc,
                        payloadType=self.rtx.payloadType,
                        sequenceNumber=self._nextRtxSequence(),
                        timestamp=packet.timestamp,
                        marker=packet.marker,
                        payload=packet.sequenceNumber.to_bytes(2, "big") + packet.payload,
                        extensions=self._rtx_extensions,
                        retransmission=True,
                        original=packet,
                    )
                )
            else:
                packets.append(
                    OutgoingRtp(
                        stream=self,
                        ssrc=self.ssrc,
                        payloadType=self.payloadType,
                        sequenceNumber=packet.sequenceNumber,
                        timestamp=packet.timestamp,
                        marker=packet.marker,
                        payload=packet.payload,
                        extensions=self._extensions,
                        retransmission=True,
                        original=packet,
                    )
                )
        return packets

    def forget(self, packet: OutgoingRtp) -> None:
        """``packet`` (media) was dropped before it left: never resend it."""
        if not packet.retransmission and not packet.padding:
            self._history.forget(packet.sequenceNumber)
            self.packetsDroppedBeforeSending += 1

    @property
    def canPad(self) -> bool:
        """Padding (for probes) goes on the RTX stream, once media was sent (the router
        knows the stream then); media SSRCs never carry it."""
        return self.rtx is not None and self.hasSent

    def paddingPackets(self, size: int) -> list[OutgoingRtp]:
        """Padding-only RTX packets carrying about ``size`` bytes in all (the router counts
        them for transport feedback and drops them: an RTX packet without an original)."""
        if not self.canPad:
            return []
        assert self.rtx is not None
        packets: list[OutgoingRtp] = []
        timestamp = self.rtpTimestamp(self._last_timestamp or 0)
        remaining = max(1, size)
        while remaining > 0:
            padding = min(MAX_PADDING, remaining)
            packets.append(
                OutgoingRtp(
                    stream=self,
                    ssrc=self.rtx.ssrc,
                    payloadType=self.rtx.payloadType,
                    sequenceNumber=self._nextRtxSequence(),
                    timestamp=timestamp,
                    marker=False,
                    payload=b"",
                    extensions=self._rtx_extensions,
                    retransmission=True,
                    padding=padding,
                )
            )
            remaining -= padding
        return packets

    def _nextRtxSequence(self) -> int:
        sequence = self._rtx_sequence_number
        self._rtx_sequence_number = (sequence + 1) & 0xFFFF
        return sequence

    def onSent(self, packet: OutgoingRtp, headerSize: int, wallTime: float, now: float) -> None:
        """Count a packet of this stream that left."""
        size = len(packet.payload)
        original = packet.original
        if packet.padding:
            self.paddingPacketsSent += 1
            self.paddingBytesSent += packet.padding
            return
        if packet.retransmission:
            if original is not None:
                original.resendPending = False
                original.lastResentAt = now
            self.retransmittedPacketsSent += 1
            self.retransmittedBytesSent += size
            return
        if original is not None:
            original.sentAt = now
        self.packetsSent += 1
        self.bytesSent += size
        self.headerBytesSent += headerSize
        self.lastPacketSentTimestamp = wallTime
        if packet.frameEnd:
            self.framesSent += 1

    def senderReport(self, now: float, ntp: int, cname: str | None) -> bytes | None:
        """SR (+ SDES cname) for this stream, None before its first packet."""
        if self._last_timestamp is None or not self.hasSent:
            return None
        # Extrapolate the media clock to "now" so the NTP/RTP pair describes one instant.
        elapsed = max(0.0, now - self._last_capture)
        rtp_timestamp = self.rtpTimestamp(self._last_timestamp + int(elapsed * self.clockRate))
        packet = rtcp.senderReport(
            ssrc=self.ssrc,
            ntp=ntp,
            rtpTimestamp=rtp_timestamp,
            packetCount=self.packetsSent,
            octetCount=self.bytesSent,
        )
        if cname:
            ssrcs = [self.ssrc] + ([self.rtx.ssrc] if self.rtx is not None else [])
            packet += rtcp.sdes(ssrcs, cname)
        return packet

    def onReportBlock(self, block: rtcp.ReportBlock, wallTime: float) -> None:
        previous = self.remoteReport
        total_rtt = previous.totalRoundTripTime if previous else 0.0
        measurements = previous.roundTripTimeMeasurements if previous else 0
        rtt = previous.roundTripTime if previous else None
        if block.roundTripTime is not None:
            rtt = block.roundTripTime
            total_rtt += rtt
            measurements += 1
        self.remoteReport = RemoteReport(
            timestamp=wallTime,
            fractionLost=block.fractionLost,
            packetsLost=block.packetsLost,
            jitter=block.jitter / self.clockRate,
            roundTripTime=rtt,
            totalRoundTripTime=total_rtt,
            roundTripTimeMeasurements=measurements,
        )
