"""AiortcHandler: the real engine behind a Transport.

Transport side on aiortc's ORTC objects (``connection.py``), sending through the library's own
RTP send path (``send/``), receiving through its own receive path (``receive/``: jitter buffer,
NACK, transport-cc feedback, PyAV decoding) and data channels on aiortc's SCTP transport with
negotiated stream ids.
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

from aiortc import RTCDataChannel, RTCDataChannelParameters

from ...errors import InvalidStateError
from ...send_parameters import buildSendRtpParameters
from ...types import (
    IceParameters,
    IceServer,
    MediaKind,
    RtpCapabilities,
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
from .connection import TransportConnection
from .receive import ConsumerReceiver, TransportFeedbackSender, getRecvRtpCapabilities
from .send import ProducerSender, getSendRtpCapabilities

logger = logging.getLogger(__name__)

SCTP_CAPABILITIES: SctpCapabilities = {"numStreams": {"OS": 1024, "MIS": 1024}}

# What the library's receive path decodes, with transport-cc (see receive/capabilities.py).
RECV_RTP_CAPABILITIES: RtpCapabilities = getRecvRtpCapabilities()


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
        self._receivers: dict[str, ConsumerReceiver] = {}
        self._feedback: TransportFeedbackSender | None = None
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
        feedback = self._feedback

        async def teardown() -> None:
            for sender in senders:
                with contextlib.suppress(Exception):
                    await sender.stop()
            for receiver in receivers:
                with contextlib.suppress(Exception):
                    await receiver.stop()
            if feedback is not None:
                await feedback.stop()
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
        if self._feedback is None:
            self._feedback = TransportFeedbackSender(connection, self._generateSsrc())
        results: list[HandlerReceiveResult] = []
        for options in optionsList:
            localId = f"r{next(self._receiverIds)}"
            receiver = ConsumerReceiver(
                port=connection,
                kind=options.kind,
                rtpParameters=copy.deepcopy(options.rtpParameters),
                trackId=options.trackId,
                rtcpSsrc=self._generateSsrc(),
                feedback=self._feedback,
            )
            receiver.start()
            self._receivers[localId] = receiver
            results.append(HandlerReceiveResult(localId=localId, track=receiver.track))
        return results

    async def stopReceiving(self, localIds: list[str]) -> None:
        for localId in localIds:
            receiver = self._receivers.pop(localId, None)
            if receiver is not None:
                await receiver.stop()

    async def pauseReceiving(self, localIds: list[str]) -> None:
        for localId in localIds:
            self._receiver(localId).pause()

    async def resumeReceiving(self, localIds: list[str]) -> None:
        for localId in localIds:
            self._receiver(localId).resume()

    async def getReceiverStats(self, localId: str) -> StatsReport:
        report = self._receiver(localId).getStats()
        report.update(await self._conn().getStats())
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

    def _receiver(self, localId: str) -> ConsumerReceiver:
        self._conn()
        try:
            return self._receivers[localId]
        except KeyError:
            raise InvalidStateError(f"no receiver with localId {localId!r}") from None
