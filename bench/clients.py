"""The two clients behind one small interface, so every scenario runs the same code for both.

Both speak to the local SFU over the same protoo client (``ProtooPeer``) with the same requests
(getRouterRtpCapabilities, createWebRtcTransport, connectWebRtcTransport, join, produce,
getProducerStats, closeTransport); only the media client differs:

- ``ours``: mediasoup_client's ``Device`` (own RTP send path).
- ``pymediasoup``: pymediasoup 1.5.0's ``Device`` with its ``AiortcHandler`` (SDP +
  RTCPeerConnection, aiortc's stock ``RTCRtpSender``). Imported lazily: it only exists in
  ``bench/.venv-pymediasoup``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mediasoup_client.signaling.protoo import ProtooError, ProtooPeer


@dataclass
class ProducerInfo:
    """What a scenario needs to know about a producer: its router id and media SSRCs (one per
    encoding, lowest layer first) and the payload type of its codec."""

    id: str
    kind: str
    ssrcs: list[int]
    payloadType: int
    handle: Any = field(repr=False, default=None)


class SendTransport(Protocol):
    id: str

    async def produce(
        self,
        track: Any,
        *,
        encodings: list[dict[str, Any]] | None = None,
        codecOptions: dict[str, Any] | None = None,
    ) -> ProducerInfo: ...

    async def close(self) -> None: ...


@dataclass
class DataReceiver:
    """A receiving transport with SCTP; ``ready`` is set once the server's newDataConsumer
    request was accepted and every message goes to the ``onMessage`` given."""

    transportId: str
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dataConsumerId: str | None = None


MessageListener = Callable[[Any], None]


class BenchClient(Protocol):
    name: str
    # Whether ``encodings`` (maxBitrate, several simulcast layers) are honoured.
    honoursEncodings: bool
    # Whether Producer.pause() stops sending (pymediasoup's aiortc handler raises
    # NotImplementedError in pauseSending).
    canPause: bool

    async def join(self, url: str) -> None: ...

    async def createSendTransport(self) -> SendTransport: ...

    async def createDataReceiver(self, onMessage: MessageListener) -> DataReceiver: ...

    async def request(self, method: str, data: dict[str, Any] | None = None) -> Any: ...

    async def routerStats(self, producerId: str) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class _Signaling:
    """The protoo requests both clients make, in mediasoup-demo's order."""

    def __init__(self) -> None:
        self.peer: ProtooPeer | None = None

    async def connect(self, url: str) -> dict[str, Any]:
        self.peer = await ProtooPeer.connect(url)
        caps: dict[str, Any] = await self.peer.request("getRouterRtpCapabilities")
        return caps

    async def join(self, deviceName: str, sctpCapabilities: dict[str, Any]) -> None:
        # No rtpCapabilities: the server then creates no consumers for this peer (data
        # consumers only when a receiving transport exists, see createDataReceiver).
        await self.request(
            "join",
            {
                "displayName": deviceName,
                "device": {"name": deviceName},
                "sctpCapabilities": sctpCapabilities,
            },
        )

    async def request(self, method: str, data: dict[str, Any] | None = None) -> Any:
        assert self.peer is not None, "not connected"
        return await self.peer.request(method, data)

    async def createTransport(self, *, forceTcp: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = await self.request(
            "createWebRtcTransport",
            # No data channels: without the field the local SFU enables SCTP (mediasoup-client
            # 3.24 has no SCTP capabilities), and our client would then start an association.
            {
                "producing": True,
                "consuming": False,
                "forceTcp": forceTcp,
                "sctpCapabilities": None,
            },
        )
        return info

    async def createDataTransport(self, sctpCapabilities: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = await self.request(
            "createWebRtcTransport",
            {
                "producing": False,
                "consuming": True,
                "forceTcp": False,
                "sctpCapabilities": sctpCapabilities,
            },
        )
        return info

    def answer(
        self, transport: Any, *, dump: Callable[[Any], Any] = lambda value: value,
        producing: bool = False,
    ) -> None:  # fmt: skip
        """Answer ``transport``'s ``connect`` (and with ``producing`` its ``produce``) events
        with the server's requests; ``dump`` turns the client's parameter objects into the
        plain dicts the server takes (pymediasoup's are pydantic models)."""

        @transport.on("connect")
        async def onConnect(dtlsParameters: Any) -> None:
            await self.request(
                "connectWebRtcTransport",
                {"transportId": transport.id, "dtlsParameters": dump(dtlsParameters)},
            )

        if not producing:
            return

        @transport.on("produce")
        async def onProduce(kind: str, rtpParameters: Any, appData: dict[str, Any]) -> str:
            answer = await self.request(
                "produce",
                {
                    "transportId": transport.id,
                    "kind": kind,
                    "rtpParameters": dump(rtpParameters),
                    "appData": appData,
                },
            )
            return str(answer["id"])

    def onNewDataConsumer(self, accept: Callable[[dict[str, Any]], Any]) -> None:
        """Answer the server's newDataConsumer requests with ``await accept(data)``."""
        assert self.peer is not None, "not connected"

        async def onRequest(method: str, data: dict[str, Any]) -> Any:
            if method != "newDataConsumer":
                raise ProtooError(403, f"{method} not expected")
            await accept(data)
            return {}

        self.peer.on_request(onRequest)

    async def routerStats(self, producerId: str) -> list[dict[str, Any]]:
        stats = await self.request("getProducerStats", {"producerId": producerId})
        return list(stats) if isinstance(stats, list) else []

    async def closeTransport(self, transportId: str) -> None:
        with contextlib.suppress(Exception):
            await self.request("closeTransport", {"transportId": transportId})

    async def close(self) -> None:
        if self.peer is not None:
            await self.peer.close()


# Ours.
class _OurTransport:
    def __init__(self, signaling: _Signaling, transport: Any) -> None:
        self._signaling = signaling
        self._transport = transport
        self.id: str = transport.id

    async def produce(
        self,
        track: Any,
        *,
        encodings: list[dict[str, Any]] | None = None,
        codecOptions: dict[str, Any] | None = None,
    ) -> ProducerInfo:
        options: dict[str, Any] = {"track": track}
        if encodings:
            options["encodings"] = encodings
        if codecOptions:
            options["codecOptions"] = codecOptions
        producer = await self._transport.produce(**options)
        parameters = producer.rtpParameters
        return ProducerInfo(
            id=producer.id,
            kind=producer.kind,
            ssrcs=[int(e["ssrc"]) for e in parameters["encodings"]],
            payloadType=int(parameters["codecs"][0]["payloadType"]),
            handle=producer,
        )

    async def selectedPair(self) -> dict[str, Any] | None:
        """The transport's selected ICE candidate pair (types, protocols)."""
        pair: dict[str, Any] | None = (await self._transport.getStats()).get("candidate-pair")
        return pair

    async def close(self) -> None:
        self._transport.close()
        await self._signaling.closeTransport(self.id)


class OurClient:
    name = "ours"
    honoursEncodings = True
    canPause = True

    def __init__(self) -> None:
        self._signaling = _Signaling()
        self._device: Any = None
        # The connectivity path of new transports: iceServers, iceTransportPolicy, forceTcp.
        self.iceServers: list[dict[str, Any]] | None = None
        self.iceTransportPolicy: str | None = None
        self.forceTcp = False

    async def join(self, url: str) -> None:
        from mediasoup_client import Device

        caps = await self._signaling.connect(url)
        self._device = Device()
        await self._device.load(routerRtpCapabilities=caps)
        await self._signaling.join("mediasoup-client-python", self._device.sctpCapabilities)

    async def createSendTransport(self) -> SendTransport:
        info = await self._signaling.createTransport(forceTcp=self.forceTcp)
        transport = self._device.createSendTransport(
            id=info["id"],
            iceParameters=info["iceParameters"],
            iceCandidates=info["iceCandidates"],
            dtlsParameters=info["dtlsParameters"],
            sctpParameters=info.get("sctpParameters"),
            iceServers=self.iceServers,
            iceTransportPolicy=self.iceTransportPolicy,
        )
        self._signaling.answer(transport, producing=True)
        return _OurTransport(self._signaling, transport)

    async def createDataReceiver(self, onMessage: MessageListener) -> DataReceiver:
        info = await self._signaling.createDataTransport(self._device.sctpCapabilities)
        transport = self._device.createRecvTransport(
            id=info["id"],
            iceParameters=info["iceParameters"],
            iceCandidates=info["iceCandidates"],
            dtlsParameters=info["dtlsParameters"],
            sctpParameters=info["sctpParameters"],
        )
        signaling = self._signaling
        signaling.answer(transport)
        receiver = DataReceiver(transportId=transport.id)

        async def accept(data: dict[str, Any]) -> None:
            dataConsumer = await transport.consumeData(
                id=data["id"],
                dataProducerId=data["dataProducerId"],
                sctpStreamParameters=data["sctpStreamParameters"],
                label=data.get("label") or "",
                protocol=data.get("protocol") or "",
            )
            dataConsumer.on("message", onMessage)
            receiver.dataConsumerId = dataConsumer.id
            receiver.ready.set()

        signaling.onNewDataConsumer(accept)
        return receiver

    async def request(self, method: str, data: dict[str, Any] | None = None) -> Any:
        return await self._signaling.request(method, data)

    async def routerStats(self, producerId: str) -> list[dict[str, Any]]:
        return await self._signaling.routerStats(producerId)

    async def close(self) -> None:
        await self._signaling.close()


# pymediasoup.
def _modelDump(value: Any) -> Any:
    return value.model_dump(exclude_none=True)


class _TheirTransport:
    def __init__(self, signaling: _Signaling, transport: Any) -> None:
        self._signaling = signaling
        self._transport = transport
        self.id: str = transport.id

    async def produce(
        self,
        track: Any,
        *,
        encodings: list[dict[str, Any]] | None = None,
        codecOptions: dict[str, Any] | None = None,
    ) -> ProducerInfo:
        # Neither encodings nor codecOptions are passed: aiortc's RTCRtpSender ignores
        # encodings (no maxBitrate, no simulcast) and the start bitrate.
        producer = await self._transport.produce(track=track, stopTracks=True)
        parameters = producer.rtpParameters
        return ProducerInfo(
            id=producer.id,
            kind=producer.kind,
            ssrcs=[int(e.ssrc) for e in parameters.encodings],
            payloadType=int(parameters.codecs[0].payloadType),
            handle=producer,
        )

    async def close(self) -> None:
        # pymediasoup's Producer.close() does not stop aiortc's sender (its stopSending is a
        # no-op): closing the transport closes the RTCPeerConnection, which does.
        await self._transport.close()
        await self._signaling.closeTransport(self.id)


class PyMediasoupClient:
    name = "pymediasoup"
    honoursEncodings = False
    canPause = False

    def __init__(self) -> None:
        self._signaling = _Signaling()
        self._device: Any = None

    async def join(self, url: str) -> None:
        from pymediasoup import Device
        from pymediasoup.handlers.aiortc_handler import AiortcHandler
        from pymediasoup.rtp_parameters import RtpCapabilities

        caps = await self._signaling.connect(url)
        self._device = Device(handlerFactory=AiortcHandler.createFactory(tracks=[]))
        await self._device.load(RtpCapabilities.model_validate(caps))
        await self._signaling.join("pymediasoup", self._device.sctpCapabilities.model_dump())

    async def createSendTransport(self) -> SendTransport:
        info = await self._signaling.createTransport()
        transport = self._device.createSendTransport(
            id=info["id"],
            iceParameters=info["iceParameters"],
            iceCandidates=info["iceCandidates"],
            dtlsParameters=info["dtlsParameters"],
            sctpParameters=info.get("sctpParameters"),
        )
        self._signaling.answer(transport, dump=_modelDump, producing=True)
        return _TheirTransport(self._signaling, transport)

    async def createDataReceiver(self, onMessage: MessageListener) -> DataReceiver:
        from pymediasoup.sctp_parameters import SctpStreamParameters

        info = await self._signaling.createDataTransport(self._device.sctpCapabilities.model_dump())
        transport = self._device.createRecvTransport(
            id=info["id"],
            iceParameters=info["iceParameters"],
            iceCandidates=info["iceCandidates"],
            dtlsParameters=info["dtlsParameters"],
            sctpParameters=info["sctpParameters"],
        )
        signaling = self._signaling
        signaling.answer(transport, dump=_modelDump)
        receiver = DataReceiver(transportId=transport.id)

        async def accept(data: dict[str, Any]) -> None:
            dataConsumer = await transport.consumeData(
                id=data["id"],
                dataProducerId=data["dataProducerId"],
                sctpStreamParameters=SctpStreamParameters(**data["sctpStreamParameters"]),
                label=data.get("label") or "",
                protocol=data.get("protocol") or "",
            )
            dataConsumer.on("message", onMessage)
            receiver.dataConsumerId = dataConsumer.id
            receiver.ready.set()

        signaling.onNewDataConsumer(accept)
        return receiver

    async def request(self, method: str, data: dict[str, Any] | None = None) -> Any:
        return await self._signaling.request(method, data)

    async def routerStats(self, producerId: str) -> list[dict[str, Any]]:
        return await self._signaling.routerStats(producerId)

    async def close(self) -> None:
        await self._signaling.close()


def makeClient(name: str) -> BenchClient:
    if name == "ours":
        return OurClient()
    if name == "pymediasoup":
        return PyMediasoupClient()
    raise ValueError(f"unknown client {name!r}")
