"""Join a mediasoup-demo compatible room over protoo with a Device: the glue the CLI, the
benchmarks and the integration tests share. Outside the core library."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..consumer import Consumer
from ..data_consumer import DataConsumer
from ..data_producer import DataProducer
from ..device import Device
from ..handlers.handler_interface import HandlerFactory, MediaTrack
from ..producer import Producer
from ..transport import Transport
from .protoo import ProtooPeer

logger = logging.getLogger(__name__)


class RoomClient:
    """One peer in a room. ``await RoomClient.join(url)``; then ``produce()`` and friends.

    Consumers the server pushes (``newConsumer``/``newDataConsumer``) are consumed on the
    receive transport and collected in ``consumers``/``dataConsumers``; ``consumerAdded`` and
    ``dataConsumerAdded`` are events that tests can wait on.
    """

    def __init__(
        self,
        protoo: ProtooPeer,
        device: Device,
        sendTransport: Transport | None,
        recvTransport: Transport | None,
    ) -> None:
        self.protoo = protoo
        self.device = device
        self.sendTransport = sendTransport
        self.recvTransport = recvTransport
        self.consumers: dict[str, Consumer] = {}
        self.dataConsumers: dict[str, DataConsumer] = {}
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self.consumerAdded = asyncio.Event()
        self.dataConsumerAdded = asyncio.Event()

    @classmethod
    async def join(
        cls,
        url: str,
        *,
        displayName: str = "mediasoup-client-python",
        produce: bool = True,
        consume: bool = True,
        sctp: bool = True,
        handlerFactory: HandlerFactory | None = None,
    ) -> RoomClient:
        protoo = await ProtooPeer.connect(url)
        try:
            device = Device(handlerFactory=handlerFactory)
            routerRtpCapabilities = await protoo.request("getRouterRtpCapabilities")
            await device.load(routerRtpCapabilities=routerRtpCapabilities)
            sctpCapabilities = device.sctpCapabilities if sctp else None
            send = (
                await cls._createTransport(protoo, device, "send", sctpCapabilities)
                if produce
                else None
            )
            recv = (
                await cls._createTransport(protoo, device, "recv", sctpCapabilities)
                if consume
                else None
            )
            client = cls(protoo, device, send, recv)
            protoo.on_request(client._onRequest)
            protoo.on_notification(client._onNotification)
            await protoo.request(
                "join",
                {
                    "displayName": displayName,
                    "device": {"name": "mediasoup-client-python", "flag": "python"},
                    "rtpCapabilities": device.rtpCapabilities if consume else None,
                    "sctpCapabilities": sctpCapabilities,
                },
            )
            return client
        except BaseException:
            await protoo.close()
            raise

    @staticmethod
    async def _createTransport(
        protoo: ProtooPeer, device: Device, direction: str, sctpCapabilities: Any
    ) -> Transport:
        info = await protoo.request(
            "createWebRtcTransport",
            {
                "forceTcp": False,
                "producing": direction == "send",
                "consuming": direction == "recv",
                "sctpCapabilities": sctpCapabilities,
            },
        )
        options = {
            "id": info["id"],
            "iceParameters": info["iceParameters"],
            "iceCandidates": info["iceCandidates"],
            "dtlsParameters": info["dtlsParameters"],
            "sctpParameters": info.get("sctpParameters"),
        }
        transport = (
            device.createSendTransport(**options)
            if direction == "send"
            else device.createRecvTransport(**options)
        )

        async def connect(dtlsParameters: Any) -> None:
            await protoo.request(
                "connectWebRtcTransport",
                {"transportId": transport.id, "dtlsParameters": dtlsParameters},
            )

        async def produce(kind: str, rtpParameters: Any, appData: Any) -> str:
            answer = await protoo.request(
                "produce",
                {
                    "transportId": transport.id,
                    "kind": kind,
                    "rtpParameters": rtpParameters,
                    "appData": appData,
                },
            )
            return str(answer["id"])

        async def producedata(
            sctpStreamParameters: Any, label: str, protocol: str, appData: Any
        ) -> str:
            answer = await protoo.request(
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

        transport.on("connect", connect)
        transport.on("produce", produce)
        transport.on("producedata", producedata)
        return transport

    async def produce(self, track: MediaTrack, **options: Any) -> Producer:
        if self.sendTransport is None:
            raise RuntimeError("this client does not produce")
        return await self.sendTransport.produce(track=track, **options)

    async def produceData(self, **options: Any) -> DataProducer:
        if self.sendTransport is None:
            raise RuntimeError("this client does not produce")
        return await self.sendTransport.produceData(**options)

    async def routerProducerStats(self, producer: Producer) -> list[dict[str, Any]]:
        """What the router counted for ``producer``: one entry per received RTP stream."""
        stats: list[dict[str, Any]] = await self.protoo.request(
            "getProducerStats", {"producerId": producer.id}
        )
        return stats

    async def closeProducer(self, producer: Producer) -> None:
        producer.close()
        await self.protoo.request("closeProducer", {"producerId": producer.id})

    async def close(self) -> None:
        for transport in (self.sendTransport, self.recvTransport):
            if transport is not None:
                transport.close()
        await self.protoo.close()

    async def _onRequest(self, method: str, data: dict[str, Any]) -> Any:
        if method == "newConsumer":
            if self.recvTransport is None:
                raise RuntimeError("not consuming")
            consumer = await self.recvTransport.consume(
                id=data["id"],
                producerId=data["producerId"],
                kind=data["kind"],
                rtpParameters=data["rtpParameters"],
                appData={**(data.get("appData") or {}), "peerId": data.get("peerId")},
            )
            self.consumers[consumer.id] = consumer
            consumer.observer.on("close", lambda: self.consumers.pop(consumer.id, None))
            self.consumerAdded.set()
            return {}
        if method == "newDataConsumer":
            if self.recvTransport is None:
                raise RuntimeError("not consuming")
            dataConsumer = await self.recvTransport.consumeData(
                id=data["id"],
                dataProducerId=data["dataProducerId"],
                sctpStreamParameters=data["sctpStreamParameters"],
                label=data.get("label", ""),
                protocol=data.get("protocol", ""),
                appData={**(data.get("appData") or {}), "peerId": data.get("peerId")},
            )
            self.dataConsumers[dataConsumer.id] = dataConsumer
            self.dataConsumerAdded.set()
            return {}
        raise RuntimeError(f"unknown request {method}")

    def _onNotification(self, method: str, data: dict[str, Any]) -> None:
        self.notifications.append((method, data))
        if method == "consumerClosed":
            consumer = self.consumers.pop(data.get("consumerId", ""), None)
            if consumer is not None:
                consumer.close()
        elif method == "dataConsumerClosed":
            dataConsumer = self.dataConsumers.pop(data.get("dataConsumerId", ""), None)
            if dataConsumer is not None:
                dataConsumer.close()
