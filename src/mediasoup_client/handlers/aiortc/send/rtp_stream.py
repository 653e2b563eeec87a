"""One outgoing RTP stream (one SSRC, plus its RTX SSRC): packets, history, RTX, SR, counters.

Pure: times come in as arguments. A frame becomes ``OutgoingRtp`` packets whose per-send header
fields (abs-send-time) are written when the scheduler serialises them, and counters move when
the scheduler reports them sent (``onSent``), so a pacer can sit in between.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from . import rtcp
from .history import SendHistory, SentPacket
from .rtp_header import ExtensionWriter, rtpHeader

# A NACK for a packet resent less than this long ago is a duplicate delivery, not a new loss.
MIN_RESEND_INTERVAL = 0.005


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

    def serialize(self, ntp: int) -> bytes:
        return (
            rtpHeader(
                payloadType=self.payloadType,
                marker=self.marker,
                sequenceNumber=self.sequenceNumber,
                timestamp=self.timestamp,
                ssrc=self.ssrc,
                extensions=self.extensions.build(ntp, self.audioLevel, self.voice),
            )
            + self.payload
        )


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
    ) -> None:
        self.ssrc = ssrc
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
            )
            self._history.add(
                SentPacket(
                    sequenceNumber=self._sequence_number,
                    timestamp=rtp_timestamp,
                    marker=marker,
                    payload=payload,
                    sentAt=now,
                )
            )
            self._sequence_number = (self._sequence_number + 1) & 0xFFFF
            packets.append(packet)
        if self._last_timestamp is None or timestamp >= self._last_timestamp:
            self._last_timestamp = timestamp
            self._last_capture = captureTime
        return packets

    def retransmissions(self, sequenceNumbers: list[int], now: float) -> list[OutgoingRtp]:
        """Answer a NACK: resend what the history still holds, over RTX when negotiated."""
        self.nackCount += 1
        packets: list[OutgoingRtp] = []
        for seq in sequenceNumbers:
            packet = self._history.get(seq, now)
            if packet is None or now - packet.lastResentAt < MIN_RESEND_INTERVAL:
                continue
            packet.lastResentAt = now
            if self.rtx is not None:
                packets.append(
                    OutgoingRtp(
                        stream=self,
                        ssrc=self.rtx.ssrc,
                        payloadType=self.rtx.payloadType,
                        sequenceNumber=self._rtx_sequence_number,
                        timestamp=packet.timestamp,
                        marker=packet.marker,
                        payload=packet.sequenceNumber.to_bytes(2, "big") + packet.payload,
                        extensions=self._rtx_extensions,
                        retransmission=True,
                    )
                )
                self._rtx_sequence_number = (self._rtx_sequence_number + 1) & 0xFFFF
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
                    )
                )
        return packets

    def onSent(self, packet: OutgoingRtp, headerSize: int, wallTime: float) -> None:
        """Count a packet of this stream that left."""
        size = len(packet.payload)
        if packet.retransmission:
            self.retransmittedPacketsSent += 1
            self.retransmittedBytesSent += size
            return
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
