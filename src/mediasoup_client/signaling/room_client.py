"""RoomClient: one peer of a mediasoup-demo compatible room, over protoo, with a Device.

The join sequence is mediasoup-demo's (``RoomClient.js``): getRouterRtpCapabilities →
``device.load`` → createWebRtcTransport for sending and for receiving → join. The transports
exist before ``join`` because the server pushes the room's existing producers to a newcomer
(``newConsumer`` requests) right after answering it.

Shared by the CLI, the benchmarks and the integration tests. The core library never imports it.

Events (the library's EnhancedEventEmitter: a listener that raises is logged and changes nothing
else, so the server's ``newConsumer`` request is accepted once the Consumer exists):
``newconsumer(consumer)``, ``consumerclosed(consumer)``,
``newdataconsumer(dataConsumer)``, ``newpeer(info)``, ``peerclosed(peerId)``,
``notification(method, data)`` (every server notification, after it was handled) and
``disconnected()`` (the signaling connection went away without ``close()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..consumer import Consumer
from ..data_consumer import DataConsumer
from ..data_producer import DataProducer
from ..device import Device
from ..enhanced_events import EnhancedEventEmitter
from ..handlers.handler_interface import HandlerFactory, MediaTrack
from ..producer import Producer
from ..transport import Transport
from ..types import (
    DtlsParameters,
    RtpParameters,
    SctpCapabilities,
    SctpStreamParameters,
    TransportDirection,
)
from .protoo import ProtooError, ProtooPeer

logger = logging.getLogger(__name__)

# What the server records about us (mediasoup-demo shows it in its UI).
DEVICE_INFO = {"flag": "python", "name": "mediasoup-client-python", "version": __version__}

# Called with ("send" | "recv", the server's createWebRtcTransport answer) before each transport
# is created; returns the answer to use (e.g. ``netem.transportInfoHook``: candidates that go
# through an impairment relay).
TransportInfoHook = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class RoomClient(EnhancedEventEmitter):
    """A joined peer. Create it with ``await RoomClient.join(url)``."""

    def __init__(
        self,
        protoo: ProtooPeer,
        device: Device,
        url: str,
        transportInfoHook: TransportInfoHook | None = None,
    ) -> None:
        super().__init__()
        self._protoo = protoo
        self._transportInfoHook = transportInfoHook
        self._device = device
        self._url = url
        query = parse_qs(urlsplit(url).query)
        self._roomId = query.get("roomId", [""])[0]
        self._peerId = query.get("peerId", [""])[0]
        self._closed = False
        self._sendTransport: Transport | None = None
        self._recvTransport: Transport | None = None
        self.producers: dict[str, Producer] = {}
        self.consumers: dict[str, Consumer] = {}
        self.dataProducers: dict[str, DataProducer] = {}
        self.dataConsumers: dict[str, DataConsumer] = {}
        # Other joined peers: id -> {"id", "displayName", "device"}.
        self.peers: dict[str, dict[str, Any]] = {}
        # The latest scores the router reported (lists of {ssrc, rid?, score}).
        self.producerScores: dict[str, list[dict[str, Any]]] = {}
        self.consumerScores: dict[str, dict[str, Any]] = {}
        # Consumer id -> {"spatialLayer", "temporalLayer"} (None values: nothing forwarded).
        self.consumerLayers: dict[str, dict[str, Any]] = {}
        protoo.on_request(self._onRequest)
        protoo.on_notification(self._onNotification)
        self._watcher = asyncio.ensure_future(self._watchConnection())

    @classmethod
    async def join(
        cls,
        url: str,
        *,
        device: Device | None = None,
        handlerFactory: HandlerFactory | None = None,
        displayName: str = "mediasoup-client-python",
        produce: bool = True,
        consume: bool = True,
        sctp: bool = True,
        connectTimeout: float = 10.0,
        transportInfoHook: TransportInfoHook | None = None,
    ) -> RoomClient:
        """Connect to ``url`` and join its room. ``ConnectionError`` when the server cannot be
        reached, ``ProtooError`` when it refuses a step; nothing is left open on failure."""
        protoo = await ProtooPeer.connect(url, timeout=connectTimeout)
        client: RoomClient | None = None
        try:
            client = cls(
                protoo,
                device if device is not None else Device(handlerFactory),
                url,
                transportInfoHook,
            )
            await client._join(displayName=displayName, produce=produce, consume=consume, sctp=sctp)
        except BaseException:
            if client is not None:
                await client.close()
            else:
                await protoo.close()
            raise
        return client

    # Properties.
    @property
    def url(self) -> str:
        return self._url

    @property
    def roomId(self) -> str:
        return self._roomId

    @property
    def peerId(self) -> str:
        return self._peerId

    @property
    def device(self) -> Device:
        return self._device

    @property
    def protoo(self) -> ProtooPeer:
        return self._protoo

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def sendTransport(self) -> Transport:
        if self._sendTransport is None:
            raise RuntimeError("joined without a sending transport")
        return self._sendTransport

    @property
    def recvTransport(self) -> Transport:
        if self._recvTransport is None:
            raise RuntimeError("joined without a receiving transport")
        return self._recvTransport

    # Producing.
    async def produce(self, track: MediaTrack, **options: Any) -> Producer:
        """``sendTransport.produce(track=track, **options)`` (mediasoup-client's options)."""
        producer = await self.sendTransport.produce(track=track, **options)
        self.producers[producer.id] = producer
        producer.observer.on("close", lambda: self.producers.pop(producer.id, None))
        return producer

    async def closeProducer(self, producer: Producer) -> None:
        producer.close()
        with contextlib.suppress(ProtooError, ConnectionError, TimeoutError):
            await self.request("closeProducer", {"producerId": producer.id})

    async def pauseProducer(self, producer: Producer) -> None:
        """Pause locally and on the router (as mediasoup-demo does)."""
        producer.pause()
        await self.request("pauseProducer", {"producerId": producer.id})

    async def resumeProducer(self, producer: Producer) -> None:
        producer.resume()
        await self.request("resumeProducer", {"producerId": producer.id})

    async def produceData(self, **options: Any) -> DataProducer:
        dataProducer = await self.sendTransport.produceData(**options)
        self.dataProducers[dataProducer.id] = dataProducer
        dataProducer.observer.on("close", lambda: self.dataProducers.pop(dataProducer.id, None))
        return dataProducer

    # Consuming.
    async def setConsumerPreferredLayers(
        self, consumer: Consumer, spatialLayer: int, temporalLayer: int | None = None
    ) -> None:
        data: dict[str, Any] = {"consumerId": consumer.id, "spatialLayer": spatialLayer}
        if temporalLayer is not None:
            data["temporalLayer"] = temporalLayer
        await self.request("setConsumerPreferredLayers", data)

    # What the router sees.
    async def routerStats(self, producer: Producer) -> list[dict[str, Any]]:
        """The router's ``getProducerStats``: one inbound entry per received stream."""
        return _statsList(await self.request("getProducerStats", {"producerId": producer.id}))

    async def consumerRouterStats(self, consumer: Consumer) -> list[dict[str, Any]]:
        return _statsList(await self.request("getConsumerStats", {"consumerId": consumer.id}))

    async def transportRouterStats(self, transport: Transport) -> list[dict[str, Any]]:
        return _statsList(await self.request("getTransportStats", {"transportId": transport.id}))

    async def request(self, method: str, data: dict[str, Any] | None = None) -> Any:
        """Any protoo request to the room server."""
        return await self._protoo.request(method, data)

    async def close(self) -> None:
        """Close the transports (and with them every producer and consumer), then leave."""
        if self._closed:
            return
        self._closed = True
        self._watcher.cancel()
        transports = [t for t in (self._sendTransport, self._recvTransport) if t is not None]
        for transport in transports:
            transport.close()
        await self._protoo.close()
        for transport in transports:
            await transport.waitClosed()
        self.remove_all_listeners()

    # Joining.
    async def _join(self, *, displayName: str, produce: bool, consume: bool, sctp: bool) -> None:
        routerRtpCapabilities = await self.request("getRouterRtpCapabilities")
        await self._device.load(routerRtpCapabilities=routerRtpCapabilities)
        sctpCapabilities = self._device.sctpCapabilities if sctp else None
        if produce:
            self._sendTransport = await self._createTransport("send", sctpCapabilities)
        if consume:
            self._recvTransport = await self._createTransport("recv", sctpCapabilities)
        answer = await self.request(
            "join",
            {
                "displayName": displayName,
                "device": DEVICE_INFO,
                # Without a receiving transport, the server must not send us consumers.
                "rtpCapabilities": self._device.rtpCapabilities if consume else None,
                "sctpCapabilities": sctpCapabilities if consume else None,
            },
        )
        for info in (answer or {}).get("peers", []):
            if isinstance(info, dict) and "id" in info:
                self.peers[str(info["id"])] = info

    async def _createTransport(
        self, direction: TransportDirection, sctpCapabilities: SctpCapabilities | None
    ) -> Transport:
        info = await self.request(
            "createWebRtcTransport",
            {
                "forceTcp": False,
                "producing": direction == "send",
                "consuming": direction == "recv",
                "sctpCapabilities": sctpCapabilities,
            },
        )
        if self._transportInfoHook is not None:
            info = await self._transportInfoHook(direction, info)
        options = {
            "id": info["id"],
            "iceParameters": info["iceParameters"],
            "iceCandidates": info["iceCandidates"],
            "dtlsParameters": info["dtlsParameters"],
            "sctpParameters": info.get("sctpParameters"),
        }
        if direction == "send":
            transport = self._device.createSendTransport(**options)
            transport.on("produce", self._produceHandler(transport))
            transport.on("producedata", self._produceDataHandler(transport))
        else:
            transport = self._device.createRecvTransport(**options)
        transport.on("connect", self._connectHandler(transport))
        return transport

    def _connectHandler(self, transport: Transport) -> Callable[..., Any]:
        async def onConnect(dtlsParameters: DtlsParameters) -> None:
            await self.request(
                "connectWebRtcTransport",
                {"transportId": transport.id, "dtlsParameters": dtlsParameters},
            )

        return onConnect

    def _produceHandler(self, transport: Transport) -> Callable[..., Any]:
        async def onProduce(kind: str, rtpParameters: RtpParameters, appData: Any) -> str:
            answer = await self.request(
                "produce",
                {
                    "transportId": transport.id,
                    "kind": kind,
                    "rtpParameters": rtpParameters,
                    "appData": appData,
                },
            )
            return str(answer["id"])

        return onProduce

    def _produceDataHandler(self, transport: Transport) -> Callable[..., Any]:
        async def onProduceData(
            sctpStreamParameters: SctpStreamParameters, label: str, protocol: str, appData: Any
        ) -> str:
            answer = await self.request(
                "produceData",
                {
                    "transportId": transport.id,
                    "sctpStreamParameters": sctpStreamParameters,
                    "label": label,
                    "protocol": protocol,
                    "appData": appData,
                },
            )
            return str(answer["id"])

        return onProduceData

    # Server requests and notifications.
    async def _onRequest(self, method: str, data: dict[str, Any]) -> Any:
        if method == "newConsumer":
            return await self._onNewConsumer(data)
        if method == "newDataConsumer":
            return await self._onNewDataConsumer(data)
        raise ProtooError(400, f"unknown request {method!r}")

    async def _onNewConsumer(self, data: dict[str, Any]) -> dict[str, Any]:
        if self._recvTransport is None or self._closed:
            raise ProtooError(403, "not consuming")
        consumer = await self._recvTransport.consume(
            id=data["id"],
            producerId=data["producerId"],
            kind=data["kind"],
            rtpParameters=data["rtpParameters"],
            appData={
                **(data.get("appData") or {}),
                "peerId": data.get("peerId"),
                "producerPaused": bool(data.get("producerPaused")),
            },
        )
        self.consumers[consumer.id] = consumer
        consumer.observer.on("close", lambda: self.consumers.pop(consumer.id, None))
        self.emit("newconsumer", consumer)
        # Accepting (the empty answer) is what makes the server resume the consumer.
        return {}

    async def _onNewDataConsumer(self, data: dict[str, Any]) -> dict[str, Any]:
        if self._recvTransport is None or self._closed:
            raise ProtooError(403, "not consuming")
        dataConsumer = await self._recvTransport.consumeData(
            id=data["id"],
            dataProducerId=data["dataProducerId"],
            sctpStreamParameters=data["sctpStreamParameters"],
            label=data.get("label") or "",
            protocol=data.get("protocol") or "",
            appData={**(data.get("appData") or {}), "peerId": data.get("peerId")},
        )
        self.dataConsumers[dataConsumer.id] = dataConsumer
        dataConsumer.observer.on("close", lambda: self.dataConsumers.pop(dataConsumer.id, None))
        self.emit("newdataconsumer", dataConsumer)
        return {}

    def _onNotification(self, method: str, data: dict[str, Any]) -> None:
        if self._closed:
            return
        if method == "producerScore":
            self.producerScores[str(data.get("producerId"))] = list(data.get("score") or [])
        elif method == "consumerScore":
            self.consumerScores[str(data.get("consumerId"))] = dict(data.get("score") or {})
        elif method == "consumerLayersChanged":
            self.consumerLayers[str(data.get("consumerId"))] = {
                "spatialLayer": data.get("spatialLayer"),
                "temporalLayer": data.get("temporalLayer"),
            }
        elif method == "consumerClosed":
            consumer = self.consumers.pop(str(data.get("consumerId")), None)
            if consumer is not None:
                consumer.close()
                self.emit("consumerclosed", consumer)
        elif method in ("consumerPaused", "consumerResumed"):
            consumer = self.consumers.get(str(data.get("consumerId")))
            if consumer is not None:
                consumer.appData["producerPaused"] = method == "consumerPaused"
        elif method == "dataConsumerClosed":
            dataConsumer = self.dataConsumers.pop(str(data.get("dataConsumerId")), None)
            if dataConsumer is not None:
                dataConsumer.close()
        elif method == "newPeer":
            self.peers[str(data.get("id"))] = data
            self.emit("newpeer", data)
        elif method == "peerClosed":
            peerId = str(data.get("peerId"))
            self.peers.pop(peerId, None)
            self.emit("peerclosed", peerId)
        self.emit("notification", method, data)

    async def _watchConnection(self) -> None:
        await self._protoo.wait_closed()
        if not self._closed:
            logger.warning("the room connection was lost")
            self.emit("disconnected")


def _statsList(answer: Any) -> list[dict[str, Any]]:
    """mediasoup's getStats() answers are lists of dicts; tolerate anything else."""
    if isinstance(answer, list):
        return [entry for entry in answer if isinstance(entry, dict)]
    return []
