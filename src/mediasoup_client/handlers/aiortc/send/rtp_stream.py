"""One outgoing RTP stream (one SSRC, plus its RTX SSRC): packets, history, RTX, SR, counters."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..rtp_port import RtpPort
from . import rtcp
from .history import SendHistory, SentPacket
from .rtp_header import ExtensionWriter, ntpTime, rtpHeader

logger = logging.getLogger(__name__)

# A NACK for a packet resent less than this long ago is a duplicate delivery, not a new loss.
_MIN_RESEND_INTERVAL = 0.005


def randomSequenceNumber() -> int:
    # Start in the lower half so the first wrap-around is far away (SRTP rollover handling).
    return random.randint(0, 0x7FFF)


@dataclass
class RtxConfig:
    ssrc: int
    payloadType: int


@dataclass
class RemoteReport:
    """What the receiver last reported about this stream (remote-inbound-rtp)."""

    timestamp: float  # time.time()
    fractionLost: float
    packetsLost: int
    jitter: float  # seconds
    roundTripTime: float | None
    totalRoundTripTime: float
    roundTripTimeMeasurements: int


class RtpStream:
    """Sends the payloads of one encoding and answers NACKs for it.

    ``timestamp`` values handed in are the sender's own unwrapped media clock; the stream adds
    its random offset and wraps to 32 bits.
    """

    def __init__(
        self,
        *,
        port: RtpPort,
        ssrc: int,
        payloadType: int,
        clockRate: int,
        extensionIds: Mapping[str, int],
        mid: str | None,
        rid: str | None,
        rtx: RtxConfig | None,
        timestampOffset: int,
    ) -> None:
        self.port = port
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
        # Counters (W3C outbound-rtp names).
        self.packetsSent = 0
        self.bytesSent = 0  # payload bytes, as W3C counts them
        self.headerBytesSent = 0
        self.retransmittedPacketsSent = 0
        self.retransmittedBytesSent = 0
        self.framesSent = 0
        self.nackCount = 0
        self.pliCount = 0
        self.firCount = 0
        self.lastPacketSentTimestamp: float | None = None  # time.time()
        # The newest media timestamp sent and when its frame was captured (for SR).
        self._last_timestamp: int | None = None
        self._last_capture: float = 0.0  # time.monotonic()
        self._last_sr_compact: int | None = None
        self.remoteReport: RemoteReport | None = None

    @property
    def writesAudioLevel(self) -> bool:
        return self._extensions.writesAudioLevel

    @property
    def hasSent(self) -> bool:
        return self.packetsSent > 0

    def rtpTimestamp(self, timestamp: int) -> int:
        return (self._timestamp_offset + timestamp) & 0xFFFFFFFF

    async def sendFrame(
        self,
        payloads: list[bytes],
        *,
        timestamp: int,
        captureTime: float,
        talkSpurtStart: bool | None = None,
        audioLevel: int | None = None,
        voice: bool = False,
    ) -> bool:
        """Send one frame's payloads. Video (``talkSpurtStart`` None) marks the frame's last
        packet; audio marks the first packet of a talk spurt. False if the port refused."""
        if not payloads:
            return True
        rtp_timestamp = self.rtpTimestamp(timestamp)
        last = len(payloads) - 1
        for index, payload in enumerate(payloads):
            marker = index == last if talkSpurtStart is None else talkSpurtStart and index == 0
            ntp = ntpTime()
            header = rtpHeader(
                payloadType=self.payloadType,
                marker=marker,
                sequenceNumber=self._sequence_number,
                timestamp=rtp_timestamp,
                ssrc=self.ssrc,
                extensions=self._extensions.build(ntp, audioLevel, voice),
            )
            try:
                await self.port.sendRtp(header + payload)
            except ConnectionError:
                return False
            now = time.monotonic()
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
            self.packetsSent += 1
            self.bytesSent += len(payload)
            self.headerBytesSent += len(header)
        self.framesSent += 1
        self.lastPacketSentTimestamp = time.time()
        if self._last_timestamp is None or timestamp >= self._last_timestamp:
            self._last_timestamp = timestamp
            self._last_capture = captureTime
        return True

    async def retransmit(self, sequenceNumbers: list[int]) -> None:
        """Answer a NACK: resend what the history still holds, over RTX when negotiated."""
        self.nackCount += 1
        for seq in sequenceNumbers:
            now = time.monotonic()
            packet = self._history.get(seq, now)
            if packet is None or now - packet.lastResentAt < _MIN_RESEND_INTERVAL:
                continue
            packet.lastResentAt = now
            ntp = ntpTime()
            if self.rtx is not None:
                payload = packet.sequenceNumber.to_bytes(2, "big") + packet.payload
                header = rtpHeader(
                    payloadType=self.rtx.payloadType,
                    marker=packet.marker,
                    sequenceNumber=self._rtx_sequence_number,
                    timestamp=packet.timestamp,
                    ssrc=self.rtx.ssrc,
                    extensions=self._rtx_extensions.build(ntp),
                )
                self._rtx_sequence_number = (self._rtx_sequence_number + 1) & 0xFFFF
            else:
                payload = packet.payload
                header = rtpHeader(
                    payloadType=self.payloadType,
                    marker=packet.marker,
                    sequenceNumber=packet.sequenceNumber,
                    timestamp=packet.timestamp,
                    ssrc=self.ssrc,
                    extensions=self._extensions.build(ntp),
                )
            try:
                await self.port.sendRtp(header + payload)
            except ConnectionError:
                return
            self.retransmittedPacketsSent += 1
            self.retransmittedBytesSent += len(payload)

    def senderReport(self, cname: str | None) -> bytes | None:
        """SR (+ SDES cname) for this stream, None before its first packet."""
        if self._last_timestamp is None:
            return None
        ntp = ntpTime()
        # Extrapolate the media clock to "now" so the NTP/RTP pair describes one instant.
        elapsed = max(0.0, time.monotonic() - self._last_capture)
        rtp_timestamp = self.rtpTimestamp(self._last_timestamp + int(elapsed * self.clockRate))
        packet = rtcp.senderReport(
            ssrc=self.ssrc,
            ntp=ntp,
            rtpTimestamp=rtp_timestamp,
            packetCount=self.packetsSent,
            octetCount=self.bytesSent,
        )
        self._last_sr_compact = (ntp >> 16) & 0xFFFFFFFF
        if cname:
            ssrcs = [self.ssrc] + ([self.rtx.ssrc] if self.rtx is not None else [])
            packet += rtcp.sdes(ssrcs, cname)
        return packet

    def onReportBlock(self, block: rtcp.ReportBlock) -> None:
        previous = self.remoteReport
        total_rtt = previous.totalRoundTripTime if previous else 0.0
        measurements = previous.roundTripTimeMeasurements if previous else 0
        rtt = previous.roundTripTime if previous else None
        if block.roundTripTime is not None:
            rtt = block.roundTripTime
            total_rtt += rtt
            measurements += 1
        self.remoteReport = RemoteReport(
            timestamp=time.time(),
            fractionLost=block.fractionLost,
            packetsLost=block.packetsLost,
            jitter=block.jitter / self.clockRate,
            roundTripTime=rtt,
            totalRoundTripTime=total_rtt,
            roundTripTimeMeasurements=measurements,
        )

    def resetHistory(self) -> None:
        self._history.clear()
