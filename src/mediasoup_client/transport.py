"""Transport: one mediasoup WebRtcTransport, for sending or for receiving."""

from __future__ import annotations

import copy
import logging
from typing import Any

from . import ortc
from .background import BackgroundWork
from .command_queue import CommandQueue
from .consumer import Consumer
from .data_channel_endpoint import DataChannelEndpoint
from .data_consumer import DataConsumer
from .data_producer import DataProducer
from .endpoint import Endpoint
from .errors import InvalidStateError, UnsupportedError
from .handlers.handler_interface import (
    HandlerFactory,
    HandlerReceiveDataChannelOptions,
    HandlerReceiveOptions,
    HandlerRunOptions,
    HandlerSendDataChannelOptions,
    HandlerSendOptions,
    MediaTrack,
)
from .producer import Producer
from .send_parameters import normalizeEncodings
from .types import (
    AppData,
    ConnectionState,
    DtlsParameters,
    ExtendedRtpCapabilities,
    IceCandidate,
    IceGatheringState,
    IceParameters,
    IceServer,
    ProducerCodecOptions,
    RtpCapabilities,
    RtpCodecCapability,
    RtpEncodingParameters,
    RtpParameters,
    SctpParameters,
    SctpStreamParameters,
    StatsReport,
    TransportDirection,
)

logger = logging.getLogger(__name__)


class Transport(Endpoint):
    """Signaling events (awaited; plain or async handlers, called with keyword arguments):
    ``connect(dtlsParameters)``, ``produce(kind, rtpParameters, appData) -> id``,
    ``producedata(sctpStreamParameters, label, protocol, appData) -> id``.
    Other events: ``connectionstatechange(state)``, ``icegatheringstatechange(state)``.
    Observer: ``close newproducer newconsumer newdataproducer newdataconsumer``.
    """

    def __init__(
        self,
        *,
        direction: TransportDirection,
        id: str,
        iceParameters: IceParameters,
        iceCandidates: list[IceCandidate],
        dtlsParameters: DtlsParameters,
        sctpParameters: SctpParameters | None,
        iceServers: list[IceServer] | None,
        iceTransportPolicy: str | None,
        appData: AppData | None,
        handlerFactory: HandlerFactory,
        extendedRtpCapabilities: ExtendedRtpCapabilities,
        recvRtpCapabilities: RtpCapabilities,
        canProduceByKind: dict[str, bool],
    ) -> None:
        super().__init__(id=id, appData=appData)
        self._direction: TransportDirection = direction
        self._connectionState: ConnectionState = "new"
        self._iceGatheringState: IceGatheringState = "new"
        self._recvRtpCapabilities = recvRtpCapabilities
        self._canProduceByKind = canProduceByKind
        self._sctpParameters = sctpParameters
        self._producers: dict[str, Producer] = {}
        self._consumers: dict[str, Consumer] = {}
        self._dataProducers: dict[str, DataProducer] = {}
        self._dataConsumers: dict[str, DataConsumer] = {}
        self._queue = CommandQueue()
        self._background = BackgroundWork(f"transport {id}")
        self._handler = handlerFactory()
        self._link = _EndpointLink(self)
        self._handler.on("@connectionstatechange", self._onConnectionStateChange)
        self._handler.on("@icegatheringstatechange", self._onIceGatheringStateChange)
        self._handler.on("@trackended", self._onEngineTrackEnded)
        self._handler.run(
            HandlerRunOptions(
                direction=direction,
                iceParameters=iceParameters,
                iceCandidates=iceCandidates,
                dtlsParameters=dtlsParameters,
                sctpParameters=sctpParameters,
                iceServers=iceServers,
                iceTransportPolicy=iceTransportPolicy,
                extendedRtpCapabilities=extendedRtpCapabilities,
                onConnect=self._onHandlerConnect,
            )
        )

    # Properties.
    @property
    def direction(self) -> TransportDirection:
        return self._direction

    @property
    def handler(self) -> Any:
        """The engine behind this transport (for diagnostics)."""
        return self._handler

    @property
    def connectionState(self) -> ConnectionState:
        return self._connectionState

    @property
    def iceGatheringState(self) -> IceGatheringState:
        return self._iceGatheringState

    # Transport-level methods.
    def close(self) -> None:
        """Close the transport and, with it, every producer, consumer and data endpoint
        (each emits ``transportclose``)."""
        if self._closed:
            return
        self._closed = True
        self._queue.close()
        self._connectionState = "closed"
        endpoints: list[Producer | Consumer | DataChannelEndpoint] = [
            *self._producers.values(),
            *self._consumers.values(),
            *self._dataProducers.values(),
            *self._dataConsumers.values(),
        ]
        # Endpoints first, so each reports transportclose before the engine's teardown
        # closes its channel or track underneath it.
        for endpoint in endpoints:
            endpoint.transportClosed()
        self._handler.close()
        self._producers.clear()
        self._consumers.clear()
        self._dataProducers.clear()
        self._dataConsumers.clear()
        self._emitClosed(None)

    async def waitClosed(self) -> None:
        """After ``close()``: return once the engine has released the network (sockets,
        tasks). Applications that exit right after closing can await it."""
        await self._handler.waitClosed()

    async def getStats(self) -> StatsReport:
        if self._closed:
            raise InvalidStateError("closed")
        return await self._handler.getTransportStats()

    async def restartIce(self, *, iceParameters: IceParameters | None = None) -> None:
        """Apply the ICE parameters the server's ``restartIce`` returned."""
        if self._closed:
            raise InvalidStateError("closed")
        if not isinstance(iceParameters, dict):
            raise TypeError("missing iceParameters")
        params = iceParameters
        await self._queue.push(lambda: self._handler.restartIce(params))

    async def updateIceServers(self, *, iceServers: list[IceServer] | None = None) -> None:
        if self._closed:
            raise InvalidStateError("closed")
        if not isinstance(iceServers, list):
            raise TypeError("missing iceServers")
        servers = iceServers
        await self._queue.push(lambda: self._handler.updateIceServers(servers))

    def getDataChannelMaxMessageSize(self) -> int | None:
        return self._handler.getDataChannelMaxMessageSize()

    # Producing.
    async def produce(
        self,
        *,
        track: MediaTrack | None = None,
        encodings: list[RtpEncodingParameters] | None = None,
        codecOptions: ProducerCodecOptions | None = None,
        codec: RtpCodecCapability | None = None,
        streamId: str | None = None,
        stopTracks: bool = True,
        disableTrackOnPause: bool = True,
        zeroRtpOnPause: bool = False,
        appData: AppData | None = None,
    ) -> Producer:
        """Send ``track`` to the router. ``encodings`` with several entries means simulcast,
        index 0 the lowest layer. ``rtpParameters.msid`` is "<streamId> <track.id>";
        producers of one transport share a stream id unless ``streamId`` is given.

        While paused (as in mediasoup-client): with ``zeroRtpOnPause`` no RTP is sent; else
        with ``disableTrackOnPause`` (default) the track counts as disabled, and the wire
        carries black video and silent audio, as a browser's disabled track does; with
        neither, media keeps flowing."""
        if self._closed:
            raise InvalidStateError("closed")
        if track is None:
            raise TypeError("missing track")
        if self._direction != "send":
            raise UnsupportedError("not a sending transport")
        if not self._canProduceByKind.get(track.kind, False):
            raise UnsupportedError(f"cannot produce {track.kind}")
        if track.readyState == "ended":
            raise InvalidStateError("track ended")
        self._checkConnectListener()
        if self.listenerCount("produce") == 0:
            raise TypeError('no "produce" listener set into this transport')
        if appData is not None and not isinstance(appData, dict):
            raise TypeError("if given, appData must be a dict")
        if streamId is not None and (not isinstance(streamId, str) or not streamId.strip()):
            raise TypeError("if given, streamId must be a non-empty str")
        sending_track = track

        async def command() -> Producer:
            if encodings is not None and not isinstance(encodings, list):
                raise TypeError("encodings must be a list")
            result = await self._handler.send(
                HandlerSendOptions(
                    track=sending_track,
                    encodings=normalizeEncodings(encodings),
                    codecOptions=codecOptions,
                    codec=codec,
                    streamId=streamId,
                    disableTrackOnPause=disableTrackOnPause,
                    zeroRtpOnPause=zeroRtpOnPause,
                )
            )
            try:
                ortc.validateAndNormalizeRtpParameters(result.rtpParameters)
                answer = await self.emitAndWait(
                    "produce",
                    kind=sending_track.kind,
                    rtpParameters=result.rtpParameters,
                    appData=appData if appData is not None else {},
                )
                producer = Producer(
                    id=_answerId(answer, "produce"),
                    localId=result.localId,
                    track=sending_track,
                    rtpParameters=result.rtpParameters,
                    stopTracks=stopTracks,
                    disableTrackOnPause=disableTrackOnPause,
                    zeroRtpOnPause=zeroRtpOnPause,
                    appData=appData,
                    link=self._link,
                )
            except BaseException:
                await self._stopSendingQuietly(result.localId)
                raise
            self._producers[producer.id] = producer
            self._observer.safeEmit("newproducer", producer)
            return producer

        try:
            return await self._queue.push(command)
        except BaseException:
            if stopTracks:
                try:
                    track.stop()
                except Exception:
                    logger.debug("stopping the track of a failed produce() failed", exc_info=True)
            raise

    # Consuming.
    async def consume(
        self,
        *,
        id: str | None = None,
        producerId: str | None = None,
        kind: str | None = None,
        rtpParameters: RtpParameters | None = None,
        streamId: str | None = None,
        appData: AppData | None = None,
    ) -> Consumer:
        """Receive a router Consumer (the parameters the server's ``consume`` returned)."""
        if self._closed:
            raise InvalidStateError("closed")
        if self._direction != "recv":
            raise UnsupportedError("not a receiving transport")
        if not isinstance(id, str):
            raise TypeError("missing id")
        if not isinstance(producerId, str):
            raise TypeError("missing producerId")
        if kind not in ("audio", "video"):
            raise TypeError(f"invalid kind {kind!r}")
        self._checkConnectListener()
        if appData is not None and not isinstance(appData, dict):
            raise TypeError("if given, appData must be a dict")
        if not isinstance(rtpParameters, dict):
            raise TypeError("missing rtpParameters")
        parameters: RtpParameters = copy.deepcopy(rtpParameters)
        ortc.validateAndNormalizeRtpParameters(parameters)
        if not ortc.canReceive(parameters, self._recvRtpCapabilities):
            raise UnsupportedError("cannot consume this Producer")
        consumer_id, producer_id, media_kind = id, producerId, kind

        async def command() -> Consumer:
            result = await self._handler.receive(
                HandlerReceiveOptions(
                    trackId=consumer_id,
                    kind="audio" if media_kind == "audio" else "video",
                    rtpParameters=parameters,
                    streamId=streamId,
                )
            )
            consumer = Consumer(
                id=consumer_id,
                localId=result.localId,
                producerId=producer_id,
                track=result.track,
                rtpParameters=parameters,
                appData=appData,
                link=self._link,
                streamId=streamId,
            )
            self._consumers[consumer.id] = consumer
            self._observer.safeEmit("newconsumer", consumer)
            return consumer

        return await self._queue.push(command)

    # Data.
    async def produceData(
        self,
        *,
        ordered: bool = True,
        maxPacketLifeTime: int | None = None,
        maxRetransmits: int | None = None,
        label: str = "",
        protocol: str = "",
        appData: AppData | None = None,
    ) -> DataProducer:
        if self._closed:
            raise InvalidStateError("closed")
        if self._direction != "send":
            raise UnsupportedError("not a sending transport")
        if self._sctpParameters is None:
            raise UnsupportedError("SCTP not enabled by remote transport")
        self._checkConnectListener()
        if self.listenerCount("producedata") == 0:
            raise TypeError('no "producedata" listener set into this transport')
        if appData is not None and not isinstance(appData, dict):
            raise TypeError("if given, appData must be a dict")
        if maxPacketLifeTime is not None and maxRetransmits is not None:
            raise TypeError("cannot set both maxPacketLifeTime and maxRetransmits")
        # Partial reliability implies unordered delivery, as in mediasoup-client.
        if maxPacketLifeTime or maxRetransmits:
            ordered = False

        async def command() -> DataProducer:
            result = await self._handler.sendDataChannel(
                HandlerSendDataChannelOptions(
                    ordered=ordered,
                    maxPacketLifeTime=maxPacketLifeTime,
                    maxRetransmits=maxRetransmits,
                    label=label,
                    protocol=protocol,
                )
            )
            try:
                ortc.validateAndNormalizeSctpStreamParameters(result.sctpStreamParameters)
                answer = await self.emitAndWait(
                    "producedata",
                    sctpStreamParameters=result.sctpStreamParameters,
                    label=label,
                    protocol=protocol,
                    appData=appData if appData is not None else {},
                )
                dataProducer = DataProducer(
                    id=_answerId(answer, "producedata"),
                    dataChannel=result.dataChannel,
                    sctpStreamParameters=result.sctpStreamParameters,
                    appData=appData,
                    link=self._link,
                )
            except BaseException:
                result.dataChannel.close()
                raise
            self._dataProducers[dataProducer.id] = dataProducer
            self._observer.safeEmit("newdataproducer", dataProducer)
            return dataProducer

        return await self._queue.push(command)

    async def consumeData(
        self,
        *,
        id: str | None = None,
        dataProducerId: str | None = None,
        sctpStreamParameters: SctpStreamParameters | None = None,
        label: str = "",
        protocol: str = "",
        appData: AppData | None = None,
    ) -> DataConsumer:
        if self._closed:
            raise InvalidStateError("closed")
        if self._direction != "recv":
            raise UnsupportedError("not a receiving transport")
        if self._sctpParameters is None:
            raise UnsupportedError("SCTP not enabled by remote transport")
        if not isinstance(id, str):
            raise TypeError("missing id")
        if not isinstance(dataProducerId, str):
            raise TypeError("missing dataProducerId")
        self._checkConnectListener()
        if appData is not None and not isinstance(appData, dict):
            raise TypeError("if given, appData must be a dict")
        if not isinstance(sctpStreamParameters, dict):
            raise TypeError("missing sctpStreamParameters")
        parameters: SctpStreamParameters = copy.deepcopy(sctpStreamParameters)
        ortc.validateAndNormalizeSctpStreamParameters(parameters)
        data_consumer_id, data_producer_id = id, dataProducerId

        async def command() -> DataConsumer:
            result = await self._handler.receiveDataChannel(
                HandlerReceiveDataChannelOptions(
                    sctpStreamParameters=parameters, label=label, protocol=protocol
                )
            )
            dataConsumer = DataConsumer(
                id=data_consumer_id,
                dataProducerId=data_producer_id,
                dataChannel=result.dataChannel,
                sctpStreamParameters=parameters,
                appData=appData,
                link=self._link,
            )
            self._dataConsumers[dataConsumer.id] = dataConsumer
            self._observer.safeEmit("newdataconsumer", dataConsumer)
            return dataConsumer

        return await self._queue.push(command)

    # Internals.
    def _checkConnectListener(self) -> None:
        if self.listenerCount("connect") == 0 and self._connectionState == "new":
            raise TypeError('no "connect" listener set into this transport')

    async def _onHandlerConnect(self, dtlsParameters: DtlsParameters) -> None:
        if self._closed:
            raise InvalidStateError("closed")
        await self.emitAndWait("connect", dtlsParameters=dtlsParameters)

    async def _stopSendingQuietly(self, localId: str) -> None:
        try:
            await self._handler.stopSending(localId)
        except Exception:
            logger.debug("cleaning up a failed produce() failed", exc_info=True)

    def _onConnectionStateChange(self, state: ConnectionState) -> None:
        if state == self._connectionState or self._closed:
            return
        self._connectionState = state
        self.safeEmit("connectionstatechange", state)

    def _onEngineTrackEnded(self, localId: str) -> None:
        for producer in self._producers.values():
            if producer.localId == localId:
                producer.trackEnded()

    def _onIceGatheringStateChange(self, state: IceGatheringState) -> None:
        if state == self._iceGatheringState or self._closed:
            return
        self._iceGatheringState = state
        self.safeEmit("icegatheringstatechange", state)


class _EndpointLink:
    """What a transport's producers, consumers and data endpoints ask of it (the Producer-,
    Consumer- and DataEndpointLink protocols): engine work queued behind the transport's
    other commands, and their close. Kept off the Transport's own API."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _push(self, command: Any) -> Any:
        return self._transport._queue.push(command)

    @property
    def _handler(self) -> Any:
        return self._transport._handler

    async def stopSending(self, localId: str) -> None:
        await self._push(lambda: self._handler.stopSending(localId))

    async def pauseSending(self, localId: str) -> None:
        await self._push(lambda: self._handler.pauseSending(localId))

    async def resumeSending(self, localId: str) -> None:
        await self._push(lambda: self._handler.resumeSending(localId))

    async def replaceTrack(self, localId: str, track: MediaTrack | None) -> None:
        await self._push(lambda: self._handler.replaceTrack(localId, track))

    async def setMaxSpatialLayer(self, localId: str, spatialLayer: int) -> None:
        await self._push(lambda: self._handler.setMaxSpatialLayer(localId, spatialLayer))

    async def setRtpEncodingParameters(self, localId: str, params: dict[str, Any]) -> None:
        await self._push(lambda: self._handler.setRtpEncodingParameters(localId, params))

    async def getSenderStats(self, localId: str) -> StatsReport:
        if self._transport.closed:
            raise InvalidStateError("closed")
        return await self._handler.getSenderStats(localId)  # type: ignore[no-any-return]

    async def pauseReceiving(self, localId: str) -> None:
        await self._push(lambda: self._handler.pauseReceiving(localId))

    async def resumeReceiving(self, localId: str) -> None:
        await self._push(lambda: self._handler.resumeReceiving(localId))

    async def getReceiverStats(self, localId: str) -> StatsReport:
        if self._transport.closed:
            raise InvalidStateError("closed")
        return await self._handler.getReceiverStats(localId)  # type: ignore[no-any-return]

    def producerClosed(self, producer: Producer) -> None:
        transport = self._transport
        transport._producers.pop(producer.id, None)
        if not transport.closed:
            localId = producer.localId
            transport._background.spawn(self.stopSending(localId), "stopSending")

    def consumerClosed(self, consumer: Consumer) -> None:
        transport = self._transport
        transport._consumers.pop(consumer.id, None)
        if not transport.closed:
            localId = consumer.localId
            transport._background.spawn(
                self._push(lambda: self._handler.stopReceiving(localId)), "stopReceiving"
            )

    def dataEndpointClosed(self, endpoint: DataChannelEndpoint) -> None:
        self._transport._dataProducers.pop(endpoint.id, None)
        self._transport._dataConsumers.pop(endpoint.id, None)


def _answerId(answer: Any, event: str) -> str:
    """The id a signaling handler returned: a ``str`` (or mediasoup-demo's ``{"id": ...}``)."""
    if isinstance(answer, dict):
        answer = answer.get("id")
    if not isinstance(answer, str) or not answer:
        raise TypeError(f'the "{event}" listener must return the server-side id (a str)')
    return answer
