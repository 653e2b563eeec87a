"""AiortcHandler: the real engine behind a Transport.

Transport side on aiortc's ORTC objects (``connection.py``), sending through the library's own
RTP send path (``send/``), receiving through aiortc's ``RTCRtpReceiver`` (decoders included)
and data channels on aiortc's SCTP transport with negotiated stream ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import random
import secrets
from typing import Any

import av
from aiortc import (
    RTCDataChannel,
    RTCDataChannelParameters,
    RTCRtcpParameters,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpReceiver,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import (
    RTCRtpDecodingParameters,
    RTCRtpReceiveParameters,
    RTCRtpRtxParameters,
)
from av.frame import Frame
from av.packet import Packet

from ...errors import InvalidStateError
from ...send_parameters import buildSendRtpParameters
from ...types import (
    IceParameters,
    IceServer,
    MediaKind,
    RtcpFeedback,
    RtpCapabilities,
    RtpParameters,
    SctpCapabilities,
    StatsReport,
    TransportDirection,
)
from ..handler_interface import (
    HandlerFactory,
    HandlerInterface,
    HandlerReceiveDataChannelOptions,
    HandlerReceiveDataChannelResult,
    HandlerReceiveOptions,
    HandlerReceiveResult,
    HandlerRunOptions,
    HandlerSendDataChannelOptions,
    HandlerSendDataChannelResult,
    HandlerSendOptions,
    HandlerSendResult,
    MediaTrack,
)
from . import compat
from .connection import TransportConnection
from .send import ProducerSender, getSendRtpCapabilities

logger = logging.getLogger(__name__)

SCTP_CAPABILITIES: SctpCapabilities = {"numStreams": {"OS": 1024, "MIS": 1024}}

_RECV_VIDEO_FEEDBACK: list[RtcpFeedback] = [
    {"type": "nack", "parameter": ""},
    {"type": "nack", "parameter": "pli"},
    {"type": "ccm", "parameter": "fir"},
]

# What aiortc's receivers decode. No goog-remb and no transport-cc on purpose: aiortc's
# per-receiver estimator never sees mediasoup's probation packets, so a router that trusted
# its REMB would keep a consumer on its lowest simulcast layer; without receive-side BWE the
# router forwards the layers the app asks for (setConsumerPreferredLayers).
RECV_RTP_CAPABILITIES: RtpCapabilities = {
    "codecs": [
        {
            "kind": "audio",
            "mimeType": "audio/opus",
            "preferredPayloadType": 111,
            "clockRate": 48000,
            "channels": 2,
            "parameters": {"minptime": 10, "useinbandfec": 1},
            "rtcpFeedback": [],
        },
        {
            "kind": "video",
            "mimeType": "video/VP8",
            "preferredPayloadType": 96,
            "clockRate": 90000,
            "rtcpFeedback": _RECV_VIDEO_FEEDBACK,
        },
        {
            "kind": "video",
            "mimeType": "video/rtx",
            "preferredPayloadType": 97,
            "clockRate": 90000,
            "parameters": {"apt": 96},
        },
        {
            "kind": "video",
            "mimeType": "video/H264",
            "preferredPayloadType": 100,
            "clockRate": 90000,
            "parameters": {
                "level-asymmetry-allowed": 1,
                "packetization-mode": 1,
                "profile-level-id": "42e01f",
            },
            "rtcpFeedback": _RECV_VIDEO_FEEDBACK,
        },
        {
            "kind": "video",
            "mimeType": "video/rtx",
            "preferredPayloadType": 101,
            "clockRate": 90000,
            "parameters": {"apt": 100},
        },
    ],
    "headerExtensions": [
        {"kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1},
        {"kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1},
        {"kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "preferredId": 10},
    ],
}


def _receiveParameters(rtpParameters: RtpParameters) -> RTCRtpReceiveParameters:
    """aiortc's receive parameters for a consumer's RTP parameters (router payload types)."""
    codecs = [
        RTCRtpCodecParameters(
            mimeType=codec["mimeType"],
            clockRate=codec["clockRate"],
            channels=codec.get("channels"),
            payloadType=codec["payloadType"],
            rtcpFeedback=[],
            parameters=dict(codec.get("parameters", {})),
        )
        for codec in rtpParameters["codecs"]
    ]
    media_pt = rtpParameters["codecs"][0]["payloadType"]
    encodings = [
        RTCRtpDecodingParameters(
            ssrc=encoding["ssrc"],
            payloadType=media_pt,
            rtx=RTCRtpRtxParameters(ssrc=encoding["rtx"]["ssrc"]) if "rtx" in encoding else None,
        )
        for encoding in rtpParameters.get("encodings", [])
        if "ssrc" in encoding
    ]
    rtcp = rtpParameters.get("rtcp", {})
    return RTCRtpReceiveParameters(
        codecs=codecs,
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=ext["id"], uri=ext["uri"])
            for ext in rtpParameters.get("headerExtensions", [])
        ],
        encodings=encodings,
        muxId=rtpParameters.get("mid", ""),
        rtcp=RTCRtcpParameters(cname=rtcp.get("cname"), mux=True),
    )


class ConsumerTrack(MediaStreamTrack):
    """The track a Consumer hands out: aiortc's decoded frames, counted for the stats
    (``framesDecoded`` = frames delivered to the reader, and their size)."""

    def __init__(self, source: MediaStreamTrack, id: str) -> None:
        super().__init__()
        self.kind = source.kind
        self._id = id
        self._source = source
        self.framesDecoded = 0
        self.frameWidth: int | None = None
        self.frameHeight: int | None = None
        source.on("ended", self.stop)

    async def recv(self) -> Frame | Packet[Any]:
        frame = await self._source.recv()
        self.framesDecoded += 1
        if isinstance(frame, av.VideoFrame):
            self.frameWidth, self.frameHeight = frame.width, frame.height
        return frame

    def stop(self) -> None:
        super().stop()
        self._source.stop()


class _Receiver:
    def __init__(
        self, receiver: RTCRtpReceiver, track: ConsumerTrack, rtpParameters: RtpParameters
    ) -> None:
        self.receiver = receiver
        self.track = track
        self.rtpParameters = rtpParameters
        self.paused = False

    @property
    def mediaSsrcs(self) -> list[int]:
        return [e["ssrc"] for e in self.rtpParameters.get("encodings", []) if "ssrc" in e]


class AiortcHandler(HandlerInterface):
    @classmethod
    def createFactory(cls) -> HandlerFactory:
        return cls

    def __init__(self) -> None:
        super().__init__()
        self._options: HandlerRunOptions | None = None
        self._connection: TransportConnection | None = None
        self._closed = False
        self._cname = secrets.token_hex(8)
        self._mids = itertools.count()
        self._receiverIds = itertools.count()
        self._usedSsrcs: set[int] = set()
        self._senders: dict[str, ProducerSender] = {}
        self._receivers: dict[str, _Receiver] = {}
        self._dataChannels: list[RTCDataChannel] = []
        self._nextSctpStreamId = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return "aiortc"

    async def getNativeRtpCapabilities(self, direction: TransportDirection) -> RtpCapabilities:
        if direction == "send":
            return getSendRtpCapabilities()
        return copy.deepcopy(RECV_RTP_CAPABILITIES)

    async def getNativeSctpCapabilities(self) -> SctpCapabilities:
        return copy.deepcopy(SCTP_CAPABILITIES)

    def run(self, options: HandlerRunOptions) -> None:
        self._options = options
        self._connection = TransportConnection(
            iceParameters=options.iceParameters,
            iceCandidates=options.iceCandidates,
            dtlsParameters=options.dtlsParameters,
            sctpParameters=options.sctpParameters,
            iceServers=options.iceServers,
            iceTransportPolicy=options.iceTransportPolicy,
            onConnect=options.onConnect,
        )
        self._connection.on(
            "connectionstatechange", lambda state: self.emit("@connectionstatechange", state)
        )
        self._connection.on(
            "icegatheringstatechange", lambda state: self.emit("@icegatheringstatechange", state)
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        senders, receivers = list(self._senders.values()), list(self._receivers.values())
        self._senders.clear()
        self._receivers.clear()
        for channel in self._dataChannels:
            channel.close()
        connection = self._connection

        async def teardown() -> None:
            for sender in senders:
                with contextlib.suppress(Exception):
                    await sender.stop()
            for receiver in receivers:
                with contextlib.suppress(Exception):
                    await receiver.receiver.stop()
            if connection is not None:
                await connection.close()

        self._spawn(teardown())

    async def updateIceServers(self, iceServers: list[IceServer]) -> None:
        self._conn().updateIceServers(iceServers)

    async def restartIce(self, iceParameters: IceParameters) -> None:
        await self._conn().restartIce(iceParameters)

    async def getTransportStats(self) -> StatsReport:
        return await self._conn().getStats()

    # Sending.
    async def send(self, options: HandlerSendOptions) -> HandlerSendResult:
        connection = self._conn()
        kind: MediaKind = "audio" if options.track.kind == "audio" else "video"
        mid = str(next(self._mids))
        rtpParameters = buildSendRtpParameters(
            kind=kind,
            extendedRtpCapabilities=self._runOptions().extendedRtpCapabilities,
            encodings=options.encodings,
            codec=options.codec,
            codecOptions=options.codecOptions,
            mid=mid,
            cname=self._cname,
            generateSsrc=self._generateSsrc,
        )
        await connection.signal()
        sender = ProducerSender(
            port=connection,
            track=options.track,
            rtpParameters=copy.deepcopy(rtpParameters),
            codecOptions=options.codecOptions,
            zeroRtpOnPause=options.zeroRtpOnPause,
        )
        sender.start()
        self._senders[mid] = sender
        return HandlerSendResult(localId=mid, rtpParameters=rtpParameters)

    async def stopSending(self, localId: str) -> None:
        sender = self._senders.pop(localId, None)
        if sender is None:
            raise InvalidStateError(f"no sender with localId {localId!r}")
        await sender.stop()

    async def pauseSending(self, localId: str) -> None:
        self._sender(localId).pause()

    async def resumeSending(self, localId: str) -> None:
        self._sender(localId).resume()

    async def replaceTrack(self, localId: str, track: MediaTrack | None) -> None:
        await self._sender(localId).replaceTrack(track)

    async def setMaxSpatialLayer(self, localId: str, spatialLayer: int) -> None:
        self._sender(localId).setMaxSpatialLayer(spatialLayer)

    async def setRtpEncodingParameters(self, localId: str, params: dict[str, Any]) -> None:
        self._sender(localId).setRtpEncodingParameters(params)

    async def getSenderStats(self, localId: str) -> StatsReport:
        return self._sender(localId).getStats()

    async def sendDataChannel(
        self, options: HandlerSendDataChannelOptions
    ) -> HandlerSendDataChannelResult:
        connection = self._conn()
        sctp = connection.sctpTransport
        if sctp is None:
            raise InvalidStateError("SCTP not enabled")
        streamId = self._nextSctpStreamId
        self._nextSctpStreamId = (streamId + 1) % SCTP_CAPABILITIES["numStreams"]["OS"]
        await connection.signal()
        channel = RTCDataChannel(
            sctp,
            RTCDataChannelParameters(
                label=options.label,
                protocol=options.protocol,
                ordered=options.ordered,
                maxPacketLifeTime=options.maxPacketLifeTime,
                maxRetransmits=options.maxRetransmits,
                negotiated=True,
                id=streamId,
            ),
        )
        self._dataChannels.append(channel)
        sctpStreamParameters: Any = {"streamId": streamId, "ordered": options.ordered}
        if options.maxPacketLifeTime is not None:
            sctpStreamParameters["maxPacketLifeTime"] = options.maxPacketLifeTime
        if options.maxRetransmits is not None:
            sctpStreamParameters["maxRetransmits"] = options.maxRetransmits
        return HandlerSendDataChannelResult(
            dataChannel=channel, sctpStreamParameters=sctpStreamParameters
        )

    # Receiving.
    async def receive(self, optionsList: list[HandlerReceiveOptions]) -> list[HandlerReceiveResult]:
        connection = self._conn()
        await connection.signal()
        results: list[HandlerReceiveResult] = []
        for options in optionsList:
            localId = f"r{next(self._receiverIds)}"
            receiver = RTCRtpReceiver(options.kind, connection.dtlsTransport)
            compat.attachReceiverTrack(receiver, options.kind, options.trackId)
            compat.setReceiverRtcpSsrc(receiver, self._generateSsrc())
            await receiver.receive(_receiveParameters(options.rtpParameters))
            entry = _Receiver(
                receiver, ConsumerTrack(receiver.track, options.trackId), options.rtpParameters
            )
            self._receivers[localId] = entry
            if options.kind == "video":
                self._spawn(self._requestKeyFrame(entry))
            results.append(HandlerReceiveResult(localId=localId, track=entry.track))
        return results

    async def stopReceiving(self, localIds: list[str]) -> None:
        for localId in localIds:
            entry = self._receivers.pop(localId, None)
            if entry is not None:
                await entry.receiver.stop()

    async def pauseReceiving(self, localIds: list[str]) -> None:
        for localId in localIds:
            entry = self._receiver(localId)
            entry.paused = True
            compat.setReceiverEnabled(entry.receiver, False)

    async def resumeReceiving(self, localIds: list[str]) -> None:
        for localId in localIds:
            entry = self._receiver(localId)
            entry.paused = False
            compat.setReceiverEnabled(entry.receiver, True)
            if entry.track.kind == "video":
                self._spawn(self._requestKeyFrame(entry))

    async def getReceiverStats(self, localId: str) -> StatsReport:
        entry = self._receiver(localId)
        report: StatsReport = {}
        for stats in (await entry.receiver.getStats()).values():
            values: dict[str, Any] = {k: v for k, v in vars(stats).items() if not k.startswith("_")}
            values["timestamp"] = values["timestamp"].timestamp() * 1000
            if values["type"] == "inbound-rtp":
                values["framesDecoded"] = entry.track.framesDecoded
                if entry.track.frameWidth is not None:
                    values["frameWidth"] = entry.track.frameWidth
                    values["frameHeight"] = entry.track.frameHeight
            report[values["id"]] = values
        return report

    async def receiveDataChannel(
        self, options: HandlerReceiveDataChannelOptions
    ) -> HandlerReceiveDataChannelResult:
        connection = self._conn()
        sctp = connection.sctpTransport
        if sctp is None:
            raise InvalidStateError("SCTP not enabled")
        await connection.signal()
        params = options.sctpStreamParameters
        channel = RTCDataChannel(
            sctp,
            RTCDataChannelParameters(
                label=options.label,
                protocol=options.protocol,
                ordered=params.get("ordered", True),
                maxPacketLifeTime=params.get("maxPacketLifeTime"),
                maxRetransmits=params.get("maxRetransmits"),
                negotiated=True,
                id=params.get("streamId", 0),
            ),
        )
        self._dataChannels.append(channel)
        return HandlerReceiveDataChannelResult(dataChannel=channel)

    def getDataChannelMaxMessageSize(self) -> int | None:
        options = self._options
        if options is None or options.sctpParameters is None:
            return None
        return options.sctpParameters["maxMessageSize"]

    # Internals.
    async def _requestKeyFrame(self, entry: _Receiver) -> None:
        """Ask for a key frame as soon as media can flow, so video appears at once."""
        try:
            await self._conn().waitConnected()
        except ConnectionError:
            return
        for ssrc in entry.mediaSsrcs:
            await compat.sendReceiverPli(entry.receiver, ssrc)

    def _generateSsrc(self) -> int:
        while True:
            ssrc = random.randint(1, 0xFFFFFFFF)
            if ssrc not in self._usedSsrcs:
                self._usedSsrcs.add(ssrc)
                return ssrc

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _conn(self) -> TransportConnection:
        if self._closed:
            raise InvalidStateError("closed")
        if self._connection is None:
            raise InvalidStateError("handler not running")
        return self._connection

    def _runOptions(self) -> HandlerRunOptions:
        if self._options is None:
            raise InvalidStateError("handler not running")
        return self._options

    def _sender(self, localId: str) -> ProducerSender:
        self._conn()
        try:
            return self._senders[localId]
        except KeyError:
            raise InvalidStateError(f"no sender with localId {localId!r}") from None

    def _receiver(self, localId: str) -> _Receiver:
        self._conn()
        try:
            return self._receivers[localId]
        except KeyError:
            raise InvalidStateError(f"no receiver with localId {localId!r}") from None
