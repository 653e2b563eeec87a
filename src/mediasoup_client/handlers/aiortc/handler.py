"""AiortcHandler: the real engine behind a Transport.

Transport side on aiortc's ORTC objects (``connection.py``), sending through the library's own
RTP send path (``send/``), receiving through its own receive path (``receive/``: jitter buffer,
NACK, transport-cc feedback, PyAV decoding) and data channels on aiortc's SCTP transport with
negotiated stream ids.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCDataChannel,
    RTCDataChannelParameters,
)

from ...errors import InvalidStateError
from ...scalability_modes import ENGINE_SCALABILITY_MODES
from ...types import (
    IceParameters,
    IceServer,
    RtpCapabilities,
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
from .connection import TransportConnection
from .receive import ConsumerReceiver, TransportFeedbackSender, getRecvRtpCapabilities
from .send import getSendRtpCapabilities
from .send.config import sendConfig
from .send.passthrough import (
    checkTrackReplacement,
    passthroughPipelineFactory,
    passthroughSendOptions,
)
from .send.producer_sender import PauseMode, ProducerSender
from .send.scheduler import ScheduledProducer, SendScheduler, sharedEncoderHub

logger = logging.getLogger(__name__)

SCTP_CAPABILITIES: SctpCapabilities = {"numStreams": {"OS": 1024, "MIS": 1024}}

# What the library's receive path decodes, with transport-cc (see receive/capabilities.py).
RECV_RTP_CAPABILITIES: RtpCapabilities = getRecvRtpCapabilities()


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


class AiortcHandler(HandlerBase[ScheduledProducer, ConsumerReceiver]):
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
        self._feedback: TransportFeedbackSender | None = None
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
                await receiver.stop()
        if self._feedback is not None:
            await self._feedback.stop()
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
        passthrough = passthroughSendOptions(options, self._runOptions().extendedRtpCapabilities)
        if passthrough is not None:  # a pre-encoded track: its codec, no encoder
            options = passthrough[0]
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
            pipelineFactory=passthroughPipelineFactory(passthrough[1]) if passthrough else None,
            encoderHub=sharedEncoderHub(),
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
        checkTrackReplacement(self._sender(localId).sender.pipeline, track)
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
        if self._feedback is None:
            self._feedback = TransportFeedbackSender(connection, self.generateSsrc())
        localId = self._nextLocalId()
        receiver = ConsumerReceiver(
            port=connection,
            kind=options.kind,
            rtpParameters=copy.deepcopy(options.rtpParameters),
            trackId=options.trackId,
            rtcpSsrc=self.generateSsrc(),
            feedback=self._feedback,
        )
        receiver.start()
        self._receivers[localId] = receiver
        return HandlerReceiveResult(localId=localId, track=receiver.track)

    async def stopReceiving(self, localId: str) -> None:
        receiver = self._receiver(localId)
        del self._receivers[localId]
        await receiver.stop()

    async def pauseReceiving(self, localId: str) -> None:
        self._receiver(localId).pause()

    async def resumeReceiving(self, localId: str) -> None:
        self._receiver(localId).resume()

    async def getReceiverStats(self, localId: str) -> StatsReport:
        report = self._receiver(localId).getStats()
        report.update(await self._conn().getStats())
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
    def _conn(self) -> TransportConnection:
        self._checkOpen()
        if self._connection is None:
            raise InvalidStateError("handler not running")
        return self._connection
