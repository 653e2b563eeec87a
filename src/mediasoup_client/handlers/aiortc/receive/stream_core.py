"""ReceiveCore: everything about one consumer's RTP that needs no I/O.

Packets (parsed RTP) and time in, actions out: RTCP to send (NACK, PLI), encoded video frames
to decode, audio packets to decode. The asyncio layer (``consumer_receiver.py``) feeds it from
the transport, runs ``tick`` every ``TICK`` seconds and carries out what it returns.

One media SSRC and its RTX SSRC, as every mediasoup consumer has (a simulcast consumer's layers
all arrive on its one SSRC). Retransmissions are unwrapped (RFC 4588: the original sequence
number leads the payload) and counted on the media SSRC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ....types import RtpParameters
from . import rtcp
from .audio_buffer import AudioJitterBuffer, AudioOutput, AudioPacket
from .capture_clock import CaptureClock
from .depacketizers import createDepacketizer
from .frame_buffer import BufferedPacket, BufferOutput, EncodedFrame, VideoFrameBuffer
from .nack import NackModule, NackResult
from .sequence import sequenceUnwrapper, timestampUnwrapper
from .statistics import StreamStatistics

TICK = 0.02  # seconds between tick() calls
MIN_FRAME_WAIT = 0.2
MAX_FRAME_WAIT = 0.4
MIN_AUDIO_WAIT = 0.02
MAX_AUDIO_WAIT = 0.1
MIN_KEY_FRAME_INTERVAL = 0.3


@dataclass
class CoreActions:
    rtcp: list[bytes] = field(default_factory=list)
    videoFrames: list[EncodedFrame] = field(default_factory=list)
    # (packet, whether packets were lost right before it)
    audioPackets: list[tuple[AudioPacket, bool]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rtcp or self.videoFrames or self.audioPackets)


def _feedback(codec: Any, kind: str, parameter: str = "") -> bool:
    return any(
        fb.get("type") == kind and (fb.get("parameter") or "") == parameter
        for fb in codec.get("rtcpFeedback") or []
    )


class ReceiveCore:
    def __init__(self, *, kind: str, rtpParameters: RtpParameters, rtcpSsrc: int) -> None:
        codecs = rtpParameters["codecs"]
        if not codecs:
            raise TypeError("rtpParameters has no codecs")
        codec = codecs[0]
        encodings = [e for e in rtpParameters.get("encodings") or [] if "ssrc" in e]
        if not encodings:
            raise TypeError("rtpParameters has no encoding with an ssrc")
        self.kind = kind
        self.mimeType = codec["mimeType"]
        self.clockRate = codec["clockRate"]
        self.payloadType = codec["payloadType"]
        self.rtcpSsrc = rtcpSsrc
        self.mediaSsrc: int = encodings[0]["ssrc"]
        rtx = encodings[0].get("rtx")
        self.rtxSsrc: int | None = rtx["ssrc"] if rtx else None
        self.rtxPayloadType: int | None = None
        for candidate in codecs[1:]:
            apt = (candidate.get("parameters") or {}).get("apt")
            if candidate["mimeType"].lower().endswith("/rtx") and apt == self.payloadType:
                self.rtxPayloadType = candidate["payloadType"]
        self.nackEnabled = kind == "video" and _feedback(codec, "nack")
        self.pliEnabled = kind == "video" and _feedback(codec, "nack", "pli")
        self.firEnabled = kind == "video" and _feedback(codec, "ccm", "fir")
        self._depacketizer = createDepacketizer(self.mimeType)
        self._seq = sequenceUnwrapper()
        self._timestamp = timestampUnwrapper()
        self.stats = StreamStatistics(self.mediaSsrc, self.clockRate)
        self.captureClock = CaptureClock(self.clockRate)
        self.nack = NackModule() if self.nackEnabled else None
        self.video = VideoFrameBuffer(self.clockRate) if kind == "video" else None
        self.audio = AudioJitterBuffer() if kind == "audio" else None
        self.paused = False
        self.nackCount = 0  # NACK packets sent
        self.pliCount = 0
        self.firCount = 0
        self.packetsDiscarded = 0  # malformed payloads
        self._keyFrameWanted = False
        self._lastPliAt: float | None = None
        self._packetsSincePli = 0
        self._firstTimestamp: int | None = None

    # Routing facts for the transport.

    @property
    def ssrcs(self) -> list[int]:
        return [self.mediaSsrc] + ([self.rtxSsrc] if self.rtxSsrc is not None else [])

    @property
    def payloadTypes(self) -> list[int]:
        types = [self.payloadType]
        if self.rtxPayloadType is not None:
            types.append(self.rtxPayloadType)
        return types

    # Timing policy.

    @property
    def roundTripTime(self) -> float:
        return self.nack.rtt if self.nack is not None else 0.1

    def frameWait(self, now: float) -> float:
        """How long a gap may hold a video frame back before it is dropped: room for a second
        request when the first retransmission is lost too (two round trips and a resend
        delay), plus the path's jitter."""
        if self.nack is None:
            return MIN_FRAME_WAIT
        resend = self.nack.resendDelay(now)
        wait = 2 * self.roundTripTime + resend + 3 * self.stats.jitter + 0.04
        return min(MAX_FRAME_WAIT, max(MIN_FRAME_WAIT, wait))

    def audioWait(self) -> float:
        return min(MAX_AUDIO_WAIT, max(MIN_AUDIO_WAIT, 3 * self.stats.jitter + 0.02))

    def keyFrameInterval(self) -> float:
        """The least time between two key-frame requests: the answer needs a round trip to
        the router and the producer's encoder."""
        return max(MIN_KEY_FRAME_INTERVAL, 3 * self.roundTripTime)

    def captureTimeOf(self, pts: int) -> float | None:
        """The capture time (Unix seconds, ``capture_clock.py``) of the frame ``pts`` gave
        (``pts`` as ``pts()`` returned it); None before the first sender report."""
        if self._firstTimestamp is None:
            return None
        return self.captureClock.wallTimeOf(pts + self._firstTimestamp)

    def pts(self, timestamp: int) -> int:
        """The frame's presentation time in clock-rate units from the first one received."""
        if self._firstTimestamp is None:
            self._firstTimestamp = timestamp
        return timestamp - self._firstTimestamp

    # Input.

    def onRtp(self, packet: Any, now: float, nowUnix: float) -> CoreActions:
        """One RTP packet of this consumer (media or RTX), as aiortc parsed it."""
        actions = CoreActions()
        payload: bytes = packet.payload
        sequence_number: int = packet.sequence_number
        retransmitted = False
        if packet.ssrc == self.rtxSsrc and packet.payload_type == self.rtxPayloadType:
            if len(payload) < 2:
                return actions  # RTX padding (bandwidth probing): no media in it
            sequence_number = int.from_bytes(payload[:2], "big")
            payload = payload[2:]
            retransmitted = True
        elif packet.ssrc != self.mediaSsrc or packet.payload_type != self.payloadType:
            # aiortc hands an unknown SSRC to the only receiver of its payload type.
            return actions
        if self.paused:
            return actions
        seq = self._seq.unwrap(sequence_number)
        if not self.stats.onPacket(
            seq, packet.timestamp, now, nowUnix, len(payload), retransmitted
        ):
            return actions  # a duplicate
        self._packetsSincePli += 1
        timestamp = self._timestamp.unwrap(packet.timestamp)
        if self.audio is not None:
            self._audioOutput(
                self.audio.insert(AudioPacket(seq, timestamp, payload, now), now, self.audioWait()),
                actions,
            )
            return actions
        assert self.video is not None
        if not payload:
            buffered = BufferedPacket(
                seq, timestamp, bool(packet.marker), False, False, b"", now, padding=True
            )
            key_start = False
        else:
            try:
                piece = self._depacketizer.depacketize(payload)
            except ValueError:
                self.packetsDiscarded += 1
                output = self.video.unrecoverable([seq], now, self.frameWait(now))
                self._videoOutput(output, actions)
                self._requestKeyFrameIfDue(now, actions)
                return actions
            buffered = BufferedPacket(
                seq,
                timestamp,
                bool(packet.marker),
                piece.frameStart,
                piece.keyFrame,
                piece.data,
                now,
            )
            key_start = piece.frameStart and piece.keyFrame
        if self.nack is not None:
            self._nackOutput(
                self.nack.onPacket(seq, now, keyFrameStart=key_start, retransmitted=retransmitted),
                now,
                actions,
            )
        self._videoOutput(self.video.insert(buffered, now, self.frameWait(now)), actions)
        self._requestKeyFrameIfDue(now, actions)
        return actions

    def onSenderReport(self, packet: Any, now: float, nowUnix: float) -> None:
        report = rtcp.senderReportOf(packet)
        if report is None or report[0] != self.mediaSsrc:
            return
        _ssrc, ntp, rtp_timestamp, packets, octets = report
        self.stats.onSenderReport(ntp, rtp_timestamp, packets, octets, now, nowUnix)
        rtt = self.nack.rtt if self.nack is not None and self.nack.rttMeasured else None
        self.captureClock.onSenderReport(ntp, rtp_timestamp, nowUnix, rtt)

    def tick(self, now: float) -> CoreActions:
        actions = CoreActions()
        if self.paused:
            return actions
        if self.nack is not None:
            self._nackOutput(self.nack.process(now), now, actions)
        if self.video is not None:
            self._videoOutput(self.video.poll(now, self.frameWait(now)), actions)
            self._requestKeyFrameIfDue(now, actions)
        if self.audio is not None:
            self._audioOutput(self.audio.poll(now, self.audioWait()), actions)
        return actions

    def onDecodeError(self, now: float) -> CoreActions:
        """The decoder rejected a frame: decode again from a key frame only."""
        actions = CoreActions()
        if self.video is not None:
            self.video.requireKeyFrame()
            self._keyFrameWanted = True
            self._requestKeyFrameIfDue(now, actions)
        return actions

    def requestKeyFrame(self, now: float) -> CoreActions:
        """Ask for a key frame now (start), within the rate limit."""
        actions = CoreActions()
        if self.video is not None:
            self._keyFrameWanted = True
            self._requestKeyFrameIfDue(now, actions)
        return actions

    def pause(self) -> None:
        """Drop media before the buffers until ``resume`` (RTCP and stats of what arrived so
        far stay)."""
        self.paused = True

    def resume(self, now: float) -> CoreActions:
        """Take media again, from a key frame; what was dropped while paused is not lost."""
        self.paused = False
        self.stats.restart()
        if self.nack is not None:
            self.nack.reset()
        if self.video is not None:
            self.video.reset()
        if self.audio is not None:
            self.audio.reset()
        return self.requestKeyFrame(now)

    def receiverReport(self, now: float) -> bytes | None:
        if not self.stats.hasReceived:
            return None
        return rtcp.receiverReport(self.rtcpSsrc, [self.stats.reportBlock(now)])

    # Internals.

    def _nackOutput(self, result: NackResult, now: float, actions: CoreActions) -> None:
        if result.nacks:
            self.nackCount += 1
            actions.rtcp.append(rtcp.genericNack(self.rtcpSsrc, self.mediaSsrc, result.nacks))
        if result.keyFrameRequest and self.video is not None:
            self.video.requireKeyFrame()
            self._keyFrameWanted = True
        if result.gaveUp and self.video is not None:
            output = self.video.unrecoverable(result.gaveUp, now, self.frameWait(now))
            self._videoOutput(output, actions)

    def _videoOutput(self, output: BufferOutput, actions: CoreActions) -> None:
        if output.clearNackUpTo is not None and self.nack is not None:
            self.nack.clearUpTo(output.clearNackUpTo)
        if output.keyFrameNeeded:
            self._keyFrameWanted = True
        actions.videoFrames.extend(output.frames)

    def _audioOutput(self, output: AudioOutput, actions: CoreActions) -> None:
        actions.audioPackets.extend(zip(output.packets, output.afterLoss, strict=True))

    def _requestKeyFrameIfDue(self, now: float, actions: CoreActions) -> None:
        """PLI when one is wanted, or again while the wait for a key frame goes on with
        packets arriving and no key frame among them; never more often than
        ``keyFrameInterval``."""
        if not self.pliEnabled or self.video is None:
            self._keyFrameWanted = False
            return
        interval = self.keyFrameInterval()
        last = self._lastPliAt
        if self._keyFrameWanted:
            due = last is None or now - last >= interval
        else:
            progress = max(last or 0.0, self.video.lastKeyPacketAt or 0.0)
            due = (
                last is not None
                and self.video.waitingForKeyFrame
                and self._packetsSincePli > 0
                and now - progress >= interval
            )
        if not due:
            return
        self._keyFrameWanted = False
        self._lastPliAt = now
        self._packetsSincePli = 0
        self.pliCount += 1
        actions.rtcp.append(rtcp.pictureLossIndication(self.rtcpSsrc, self.mediaSsrc))
