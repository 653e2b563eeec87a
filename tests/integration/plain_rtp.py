"""A recorder-style plain RTP consumer of the local SFU, as ffmpeg or GStreamer would be one.

``PlainRtpReceiver`` is a UDP socket on 127.0.0.1 that takes what a mediasoup PlainTransport
sends (RTP, and RTCP on the same port with rtcpMux): it counts the media stream as RFC 3550's
receiver does (extended highest sequence, loss, interarrival jitter), notes the router's sender
reports, finds VP8 key frames and their size, and, when asked, sends receiver reports computed
from all that (``sendReceiverReports=True``) about once a second, as a recorder's RTCP does.

``PlainConsumer`` sets it up through the room server's test requests (``createPlainTransport``,
``connectPlainTransport``, ``consumePlain``) and records the router's view: every
``consumerLayersChanged`` and ``consumerTrace`` notification with its time, and the consumer's
target layer sampled from ``getConsumerInfo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, cast

from aiortc.rtp import (
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
)

from mediasoup_client.signaling.protoo import ProtooPeer

RR_INTERVAL = 1.0  # seconds, a recorder's usual RTCP interval on a small session


def vp8Descriptor(payload: bytes) -> tuple[int, bool, int] | None:
    """(descriptor length, start of a partition, partition index) of a VP8 RTP payload
    (RFC 7741 4.2), None when it is too short to hold one."""
    if not payload:
        return None
    first = payload[0]
    offset = 1
    if first & 0x80:  # X: extension byte
        if len(payload) < 2:
            return None
        extension = payload[1]
        offset = 2
        if extension & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= offset:
                return None
            offset += 2 if payload[offset] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            offset += 1
        if extension & 0x30:  # T or K: TID/Y/KEYIDX
            offset += 1
    if offset > len(payload):
        return None
    return offset, bool(first & 0x10), first & 0x07


def vp8KeyFrameSize(payload: bytes) -> tuple[int, int] | None:
    """(width, height) when ``payload`` is the first packet of a VP8 key frame (RFC 7741
    payload descriptor, then the key frame header), else None."""
    descriptor = vp8Descriptor(payload)
    if descriptor is None:
        return None
    offset, start, partition = descriptor
    if not start or partition != 0 or len(payload) < offset + 10:
        return None
    header = payload[offset:]
    if header[0] & 0x01:  # P bit 1: an inter frame
        return None
    if header[3:6] != b"\x9d\x01\x2a":
        return None
    width, height = struct.unpack_from("<HH", header, 6)
    return width & 0x3FFF, height & 0x3FFF


@dataclass
class StreamCounters:
    """RFC 3550 A.1/A.3/A.8 counters of one received SSRC."""

    ssrc: int
    clockRate: int
    baseSeq: int
    maxSeq: int
    cycles: int = 0
    received: int = 0
    expectedPrior: int = 0
    receivedPrior: int = 0
    jitter: float = 0.0
    lastTransit: float | None = None
    bytes: int = 0

    def update(self, seq: int, timestamp: int, arrival: float, size: int) -> None:
        delta = (seq - self.maxSeq) & 0xFFFF
        if 0 < delta < 0x8000:
            if seq < self.maxSeq:
                self.cycles += 1 << 16
            self.maxSeq = seq
        self.received += 1
        self.bytes += size
        transit = arrival * self.clockRate - timestamp
        if self.lastTransit is not None:
            d = abs(transit - self.lastTransit)
            self.jitter += (d - self.jitter) / 16
        self.lastTransit = transit

    @property
    def extendedMax(self) -> int:
        return self.cycles + self.maxSeq

    @property
    def expected(self) -> int:
        return self.extendedMax - self.baseSeq + 1

    def reportBlock(self, lsr: int, dlsr: int) -> RtcpReceiverInfo:
        expected = self.expected
        lost = expected - self.received
        expectedInterval = expected - self.expectedPrior
        receivedInterval = self.received - self.receivedPrior
        self.expectedPrior, self.receivedPrior = expected, self.received
        lostInterval = expectedInterval - receivedInterval
        fraction = (
            0
            if expectedInterval == 0 or lostInterval <= 0
            else (lostInterval << 8) // expectedInterval
        )
        return RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=max(min(lost, 0x7FFFFF), -0x800000),
            highest_sequence=self.extendedMax & 0xFFFF_FFFF,
            jitter=int(self.jitter),
            lsr=lsr,
            dlsr=dlsr,
        )


@dataclass
class KeyFrame:
    at: float
    width: int
    height: int


@dataclass
class ReceivedPacket:
    at: float
    seq: int
    timestamp: int
    marker: bool
    payload: bytes


@dataclass
class AssembledFrame:
    """One VP8 frame put together from its RTP packets."""

    timestamp: int
    arrival: float  # of its last packet
    data: bytes


def vp8Frames(packets: list[ReceivedPacket]) -> tuple[list[AssembledFrame], int]:
    """The complete VP8 frames in ``packets`` (in arrival order; one SSRC), and how many
    incomplete ones were left out (a missing packet, no start or no marker)."""
    frames: list[AssembledFrame] = []
    incomplete = 0
    current: list[ReceivedPacket] = []

    def finish() -> None:
        nonlocal incomplete
        if not current:
            return
        contiguous = all((b.seq - a.seq) & 0xFFFF == 1 for a, b in itertools.pairwise(current))
        first = vp8Descriptor(current[0].payload)
        if not (contiguous and current[-1].marker and first and first[1] and first[2] == 0):
            incomplete += 1
            return
        parts = []
        for packet in current:
            descriptor = vp8Descriptor(packet.payload)
            assert descriptor is not None
            parts.append(packet.payload[descriptor[0] :])
        frames.append(AssembledFrame(current[0].timestamp, current[-1].at, b"".join(parts)))

    for packet in packets:
        if current and packet.timestamp != current[0].timestamp:
            finish()
            current = []
        current.append(packet)
        if packet.marker:
            finish()
            current = []
    if current:
        incomplete += 1
    return frames, incomplete


class PlainRtpReceiver(asyncio.DatagramProtocol):
    """What a PlainTransport sends to one UDP port on 127.0.0.1."""

    def __init__(
        self,
        *,
        mediaSsrc: int,
        clockRate: int = 90000,
        sendReceiverReports: bool = False,
        keepPackets: bool = False,
    ) -> None:
        self.mediaSsrc = mediaSsrc
        self.clockRate = clockRate
        self.sendReceiverReports = sendReceiverReports
        self.keepPackets = keepPackets
        self.ssrc = random.randint(1, 0xFFFF_FFFF)
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.counters: StreamCounters | None = None
        self.keyFrames: list[KeyFrame] = []
        self.packets: list[ReceivedPacket] = []
        self.senderReports: list[tuple[float, int]] = []  # (arrival, NTP of the SR)
        self.receiverReportsSent = 0
        self.otherSsrcs: set[int] = set()
        self._lastSr: tuple[float, int] | None = None
        self._rrTask: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, **options: Any) -> PlainRtpReceiver:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: cls(**options), local_addr=("127.0.0.1", 0)
        )
        # Room for a key frame burst while the event loop is busy: a recorder loses nothing
        # on loopback.
        with contextlib.suppress(OSError):
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024
            )
        return protocol

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def start(self, remote: tuple[str, int]) -> None:
        """Where RTCP goes (the transport's tuple); starts the receiver reports if asked."""
        self.remote = remote
        if self.sendReceiverReports and self._rrTask is None:
            self._rrTask = asyncio.ensure_future(self._reportLoop())

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        if is_rtcp(data):
            for report in RtcpPacket.parse(data):
                if isinstance(report, RtcpSrPacket) and report.ssrc == self.mediaSsrc:
                    self._lastSr = (now, report.sender_info.ntp_timestamp)
                    self.senderReports.append(self._lastSr)
            return
        packet = RtpPacket.parse(data)
        if packet.ssrc != self.mediaSsrc:
            self.otherSsrcs.add(packet.ssrc)
            return
        if self.counters is None:
            self.counters = StreamCounters(
                packet.ssrc, self.clockRate, packet.sequence_number, packet.sequence_number
            )
        self.counters.update(packet.sequence_number, packet.timestamp, now, len(data))
        size = vp8KeyFrameSize(packet.payload)
        if size is not None:
            self.keyFrames.append(KeyFrame(now, *size))
        if self.keepPackets:
            self.packets.append(
                ReceivedPacket(
                    now,
                    packet.sequence_number,
                    packet.timestamp,
                    bool(packet.marker),
                    packet.payload,
                )
            )

    def receiverReport(self) -> bytes:
        if self.counters is None:
            return bytes(RtcpRrPacket(ssrc=self.ssrc))
        lsr = dlsr = 0
        if self._lastSr is not None:
            arrival, ntp = self._lastSr
            lsr = (ntp >> 16) & 0xFFFF_FFFF
            dlsr = int((time.monotonic() - arrival) * 65536)
        return bytes(RtcpRrPacket(ssrc=self.ssrc, reports=[self.counters.reportBlock(lsr, dlsr)]))

    async def _reportLoop(self) -> None:
        while True:
            await asyncio.sleep(RR_INTERVAL * random.uniform(0.5, 1.5))
            if self.transport is None or self.remote is None:
                return
            self.transport.sendto(self.receiverReport(), self.remote)
            self.receiverReportsSent += 1

    def frameSizeAt(self, at: float) -> tuple[int, int] | None:
        """The size of the last key frame received at or before ``at``."""
        size = None
        for keyFrame in self.keyFrames:
            if keyFrame.at > at:
                break
            size = (keyFrame.width, keyFrame.height)
        return size

    def close(self) -> None:
        if self._rrTask is not None:
            self._rrTask.cancel()
        if self.transport is not None:
            self.transport.close()


def recorderRtpCapabilities(routerCapabilities: dict[str, Any], style: str) -> dict[str, Any]:
    """What a recorder tells the router it receives.

    ``"minimal"``: VP8 only, no RTCP feedback, no header extensions (an ffmpeg SDP);
    ``"router"``: the router's own capabilities, as mediasoup's recording examples pass them
    (header extensions and transport-cc/goog-remb feedback included)."""
    if style == "router":
        return routerCapabilities
    if style != "minimal":
        raise ValueError(f"unknown capabilities style {style!r}")
    codecs = [
        {**codec, "rtcpFeedback": []}
        for codec in routerCapabilities["codecs"]
        if codec["mimeType"].lower() == "video/vp8"
    ]
    return {"codecs": codecs, "headerExtensions": []}


@dataclass
class LayerEvent:
    at: float
    spatialLayer: int | None
    temporalLayer: int | None


@dataclass
class TargetSample:
    at: float
    target: int
    current: int


@dataclass
class PlainConsumer:
    """A plain RTP consumer on the room server and the socket it sends to."""

    signaling: ProtooPeer
    transportId: str
    consumerId: str
    receiver: PlainRtpReceiver
    startedAt: float
    layerEvents: list[LayerEvent] = field(default_factory=list)
    traces: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    targets: list[TargetSample] = field(default_factory=list)
    rtpParameters: dict[str, Any] = field(default_factory=dict)
    _poller: asyncio.Task[None] | None = None

    @classmethod
    async def create(
        cls,
        signaling: ProtooPeer,
        producerId: str,
        *,
        spatialLayer: int,
        capabilities: str = "minimal",
        receiverReports: bool = False,
        keepPackets: bool = False,
        traceEventTypes: tuple[str, ...] = ("keyframe", "pli", "fir"),
        pollTargets: bool = False,
    ) -> PlainConsumer:
        routerCaps = await signaling.request("getRouterRtpCapabilities")
        transport = await signaling.request("createPlainTransport", {"rtcpMux": True})
        consumer: PlainConsumer | None = None
        events: list[tuple[str, dict[str, Any], float]] = []

        def onNotification(method: str, data: dict[str, Any]) -> None:
            if consumer is None:
                events.append((method, data, time.monotonic()))
            else:
                consumer._notification(method, data, time.monotonic())

        signaling.on_notification(onNotification)
        answer = await signaling.request(
            "consumePlain",
            {
                "transportId": transport["id"],
                "producerId": producerId,
                "rtpCapabilities": recorderRtpCapabilities(routerCaps, capabilities),
                "paused": True,
                "preferredLayers": {"spatialLayer": spatialLayer},
                "traceEventTypes": list(traceEventTypes),
            },
        )
        encoding = answer["rtpParameters"]["encodings"][0]
        receiver = await PlainRtpReceiver.open(
            mediaSsrc=encoding["ssrc"],
            sendReceiverReports=receiverReports,
            keepPackets=keepPackets,
        )
        await signaling.request(
            "connectPlainTransport",
            {"transportId": transport["id"], "ip": "127.0.0.1", "port": receiver.port},
        )
        tuple_ = transport["tuple"]
        receiver.start((tuple_["localIp"], tuple_["localPort"]))
        consumer = cls(
            signaling, transport["id"], answer["id"], receiver, startedAt=time.monotonic()
        )
        consumer.rtpParameters = answer["rtpParameters"]
        for method, data, at in events:
            consumer._notification(method, data, at)
        await signaling.request("resumeConsumer", {"consumerId": answer["id"]})
        if pollTargets:
            consumer._poller = asyncio.ensure_future(consumer._pollTargets())
        return consumer

    def _notification(self, method: str, data: dict[str, Any], at: float) -> None:
        if data.get("consumerId") != self.consumerId:
            return
        if method == "consumerLayersChanged":
            self.layerEvents.append(
                LayerEvent(at, data.get("spatialLayer"), data.get("temporalLayer"))
            )
        elif method == "consumerTrace":
            self.traces.append((at, data["trace"]))

    async def _pollTargets(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                info = await self.signaling.request(
                    "getConsumerInfo", {"consumerId": self.consumerId}
                )
                self.targets.append(
                    TargetSample(
                        time.monotonic(), info["targetSpatialLayer"], info["currentSpatialLayer"]
                    )
                )
            await asyncio.sleep(0.2)

    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.signaling.request(
            "getConsumerInfo", {"consumerId": self.consumerId}
        )
        return result

    async def setPreferredLayers(self, spatialLayer: int) -> None:
        await self.signaling.request(
            "setConsumerPreferredLayers",
            {"consumerId": self.consumerId, "spatialLayer": spatialLayer},
        )

    def currentLayerAt(self, at: float) -> int | None:
        layer = None
        for event in self.layerEvents:
            if event.at > at:
                break
            layer = event.spatialLayer
        return layer

    def timeOnLayer(self, layer: int, since: float, until: float) -> float:
        """Seconds of [since, until] the router forwarded ``layer`` (its layerschange events)."""
        total = 0.0
        current = self.currentLayerAt(since)
        mark = since
        for event in self.layerEvents:
            if event.at <= since:
                continue
            if event.at >= until:
                break
            if current == layer:
                total += event.at - mark
            current, mark = event.spatialLayer, event.at
        if current == layer:
            total += until - mark
        return total

    def switches(self, since: float, until: float) -> list[LayerEvent]:
        """Spatial layer changes in (since, until]."""
        out = []
        previous = self.currentLayerAt(since)
        for event in self.layerEvents:
            if since < event.at <= until and event.spatialLayer != previous:
                out.append(event)
                previous = event.spatialLayer
        return out

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        with contextlib.suppress(Exception):
            await self.signaling.request("closeTransport", {"transportId": self.transportId})
        self.receiver.close()
