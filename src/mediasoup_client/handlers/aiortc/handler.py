"""AiortcHandler: the real engine behind a Transport.

Transport side on aiortc's ORTC objects (``connection.py``), sending through the library's own
RTP send path (``send/``), receiving through aiortc's ``RTCRtpReceiver`` (decoders included)
and data channels on aiortc's SCTP transport with negotiated stream ids.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable
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
from ...scalability_modes import ENGINE_SCALABILITY_MODES
from ...types import (
    IceParameters,
    IceServer,
    RtcpFeedback,
    RtpCapabilities,
    RtpParameters,
    SctpCapabilities,
    StatsReport,
    TransportDirection,
)
from ..handler_base import HandlerBase
from ..handler_interface import (
    HandlerFactory,
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
    NamedHandlerFactory,
)
from . import compat
from .connection import TransportConnection
from .send import getSendRtpCapabilities
from .send.config import sendConfig
from .send.producer_sender import PauseMode, ProducerSender
from .send.scheduler import ScheduledProducer, SendScheduler

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


ConnectionFactory = Callable[[HandlerRunOptions], TransportConnection]


def _realConnection(options: HandlerRunOptions) -> TransportConnection:
    return TransportConnection(
        iceParameters=options.iceParameters,
        iceCandidates=options.iceCandidates,
        dtlsParameters=options.dtlsParameters,
        sctpParameters=options.sctpParameters,
        iceServers=options.iceServers,
        iceTransportPolicy=options.iceTransportPolicy,
        onConnect=options.onConnect,
    )


class AiortcHandler(HandlerBase[ScheduledProducer, _Receiver]):
    scalabilityModes = ENGINE_SCALABILITY_MODES

    @classmethod
    def createFactory(cls) -> HandlerFactory:
        return NamedHandlerFactory("aiortc", cls)

    def __init__(self, connectionFactory: ConnectionFactory | None = None) -> None:
        super().__init__(copy.deepcopy(SCTP_CAPABILITIES))
        # The transport side; tests put an in-memory one here (engine contract tests).
        self._connectionFactory = connectionFactory or _realConnection
        self._connection: TransportConnection | None = None
        self._scheduler: SendScheduler | None = None
        self._dataChannels: list[RTCDataChannel] = []

    @property
    def name(self) -> str:
        return "aiortc"

    async def getNativeRtpCapabilities(self, direction: TransportDirection) -> RtpCapabilities:
        if direction == "send":
            return getSendRtpCapabilities()
        return copy.deepcopy(RECV_RTP_CAPABILITIES)

    async def getNativeSctpCapabilities(self) -> SctpCapabilities:
        return copy.deepcopy(SCTP_CAPABILITIES)

    def _start(self, options: HandlerRunOptions) -> None:
        self._connection = self._connectionFactory(options)
        self._connection.on(
            "connectionstatechange", lambda state: self.emit("@connectionstatechange", state)
        )
        self._connection.on(
            "icegatheringstatechange", lambda state: self.emit("@icegatheringstatechange", state)
        )

    async def _connect(self) -> None:
        await self._conn().signal()

    async def _teardown(self) -> None:
        senders, receivers = list(self._senders.values()), list(self._receivers.values())
        self._senders.clear()
        self._receivers.clear()
        for channel in self._dataChannels:
            channel.close()
        for sender in senders:
            with contextlib.suppress(Exception):
                await sender.stop()
        for receiver in receivers:
            with contextlib.suppress(Exception):
                await receiver.receiver.stop()
        if self._connection is not None:
            await self._connection.close()

    async def updateIceServers(self, iceServers: list[IceServer]) -> None:
        self._conn().updateIceServers(iceServers)

    async def restartIce(self, iceParameters: IceParameters) -> None:
        await self._conn().restartIce(iceParameters)

    async def getTransportStats(self) -> StatsReport:
        report = await self._conn().getStats()
        if self._scheduler is not None:
            # The send side's estimate (availableOutgoingBitrate on the candidate pair) and
            # congestion-control figures.
            for key, entry in self._scheduler.transportStats().items():
                report.setdefault(key, {}).update(entry)
        return report

    # Sending.
    async def send(self, options: HandlerSendOptions) -> HandlerSendResult:
        connection = self._conn()
        localId = self._nextLocalId()
        rtpParameters = self._sendRtpParameters(options, localId)
        config = sendConfig(copy.deepcopy(rtpParameters), options.codecOptions)
        await self._connectOnce()
        if self._scheduler is None:
            self._scheduler = SendScheduler(connection)
        sender = ProducerSender(
            config,
            pauseMode=PauseMode.fromOptions(
                disableTrackOnPause=options.disableTrackOnPause,
                zeroRtpOnPause=options.zeroRtpOnPause,
            ),
        )
        def onTrackEnded() -> None:
            self.emit("@trackended", localId)

        producer = self._scheduler.add(sender, options.track, onTrackEnded=onTrackEnded)
        producer.start()
        self._senders[localId] = producer
        return HandlerSendResult(localId=localId, rtpParameters=rtpParameters)

    async def stopSending(self, localId: str) -> None:
        producer = self._sender(localId)
        del self._senders[localId]
        await producer.stop()

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
        sctp = self._conn().sctpTransport
        if sctp is None:
            raise InvalidStateError("SCTP not enabled")
        sctpStreamParameters = self._sctpStreamParameters(options)
        await self._connectOnce()
        channel = RTCDataChannel(
            sctp,
            RTCDataChannelParameters(
                label=options.label,
                protocol=options.protocol,
                ordered=options.ordered,
                maxPacketLifeTime=options.maxPacketLifeTime,
                maxRetransmits=options.maxRetransmits,
                negotiated=True,
                id=sctpStreamParameters["streamId"],
            ),
        )
        self._dataChannels.append(channel)
        return HandlerSendDataChannelResult(
            dataChannel=channel, sctpStreamParameters=sctpStreamParameters
        )

    # Receiving.
    async def receive(self, options: HandlerReceiveOptions) -> HandlerReceiveResult:
        connection = self._conn()
        await self._connectOnce()
        localId = self._nextLocalId()
        receiver = RTCRtpReceiver(options.kind, connection.dtlsTransport)
        compat.attachReceiverTrack(receiver, options.kind, options.trackId)
        compat.setReceiverRtcpSsrc(receiver, self.generateSsrc())
        await receiver.receive(_receiveParameters(options.rtpParameters))
        entry = _Receiver(
            receiver, ConsumerTrack(receiver.track, options.trackId), options.rtpParameters
        )
        self._receivers[localId] = entry
        if options.kind == "video":
            self.background.spawn(self._requestKeyFrame(entry), "the first key frame request")
        return HandlerReceiveResult(localId=localId, track=entry.track)

    async def stopReceiving(self, localId: str) -> None:
        entry = self._receiver(localId)
        del self._receivers[localId]
        await entry.receiver.stop()

    async def pauseReceiving(self, localId: str) -> None:
        entry = self._receiver(localId)
        entry.paused = True
        compat.setReceiverEnabled(entry.receiver, False)

    async def resumeReceiving(self, localId: str) -> None:
        entry = self._receiver(localId)
        entry.paused = False
        compat.setReceiverEnabled(entry.receiver, True)
        if entry.track.kind == "video":
            self.background.spawn(self._requestKeyFrame(entry), "a key frame request")

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
        sctp = self._conn().sctpTransport
        if sctp is None:
            raise InvalidStateError("SCTP not enabled")
        await self._connectOnce()
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

    def _conn(self) -> TransportConnection:
        self._checkOpen()
        if self._connection is None:
            raise InvalidStateError("handler not running")
        return self._connection
