"""Device: what this endpoint can send and receive against one mediasoup router."""

from __future__ import annotations

import copy
from typing import Any, TypeVar, cast

from . import ortc
from .enhanced_events import EnhancedEventEmitter
from .errors import InvalidStateError
from .handlers.handler_interface import HandlerFactory, HandlerInterface
from .transport import Transport
from .types import (
    AppData,
    DtlsParameters,
    ExtendedRtpCapabilities,
    IceCandidate,
    IceParameters,
    IceServer,
    RtpCapabilities,
    SctpCapabilities,
    SctpParameters,
    TransportDirection,
)

T = TypeVar("T")


def defaultHandlerFactory() -> HandlerFactory:
    """The real engine (aiortc), imported only when a Device needs it."""
    from .handlers.aiortc.handler import AiortcHandler

    return AiortcHandler.createFactory()


class Device:
    """Observer: ``newtransport``."""

    def __init__(self, handlerFactory: HandlerFactory | None = None) -> None:
        self._handlerFactory = (
            handlerFactory if handlerFactory is not None else defaultHandlerFactory()
        )
        self._handlerName: str | None = getattr(self._handlerFactory, "name", None)
        self._loaded = False
        self._extendedRtpCapabilities: ExtendedRtpCapabilities | None = None
        self._sendRtpCapabilities: RtpCapabilities | None = None
        self._recvRtpCapabilities: RtpCapabilities | None = None
        self._sctpCapabilities: SctpCapabilities | None = None
        self._canProduceByKind: dict[str, bool] = {"audio": False, "video": False}
        self._observer = EnhancedEventEmitter()

    @property
    def handlerName(self) -> str:
        if not isinstance(self._handlerName, str):
            # A plain callable factory: ask a handler it makes (never run, so closing it
            # releases nothing).
            probe = self._handlerFactory()
            self._handlerName = probe.name
            probe.close()
        return self._handlerName

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def rtpCapabilities(self) -> RtpCapabilities:
        """What this device can receive: hand it to the server as the peer's capabilities."""
        return self.recvRtpCapabilities

    @property
    def recvRtpCapabilities(self) -> RtpCapabilities:
        return self._require(self._recvRtpCapabilities)

    @property
    def sendRtpCapabilities(self) -> RtpCapabilities:
        return self._require(self._sendRtpCapabilities)

    @property
    def sctpCapabilities(self) -> SctpCapabilities:
        return self._require(self._sctpCapabilities)

    @property
    def observer(self) -> EnhancedEventEmitter:
        return self._observer

    async def load(self, *, routerRtpCapabilities: RtpCapabilities | None = None) -> None:
        """Validate the router's capabilities and work out what can be sent and received.
        A failed load leaves the device unloaded and usable."""
        if self._loaded:
            raise InvalidStateError("already loaded")
        router_caps: Any = copy.deepcopy(routerRtpCapabilities)
        ortc.validateAndNormalizeRtpCapabilities(router_caps)
        handler = self._handlerFactory()
        try:
            send_extended = ortc.getExtendedRtpCapabilities(
                await self._nativeCapabilities(handler, "send"), router_caps
            )
            send_caps = ortc.getSendRtpCapabilities(send_extended)
            ortc.validateAndNormalizeRtpCapabilities(send_caps)
            recv_caps = ortc.getRecvRtpCapabilities(
                ortc.getExtendedRtpCapabilities(
                    await self._nativeCapabilities(handler, "recv"), router_caps
                )
            )
            ortc.validateAndNormalizeRtpCapabilities(recv_caps)
            sctp_caps = await handler.getNativeSctpCapabilities()
        finally:
            handler.close()
        self._extendedRtpCapabilities = send_extended
        self._recvRtpCapabilities = recv_caps
        self._sendRtpCapabilities = send_caps
        self._sctpCapabilities = sctp_caps
        self._canProduceByKind = {
            "audio": ortc.canSend("audio", send_caps),
            "video": ortc.canSend("video", send_caps),
        }
        self._loaded = True

    def canProduce(self, kind: str) -> bool:
        if not self._loaded:
            raise InvalidStateError("not loaded")
        if kind not in ("audio", "video"):
            raise TypeError(f"invalid kind {kind!r}")
        return self._canProduceByKind[kind]

    def createSendTransport(self, **options: Any) -> Transport:
        """Options: ``id, iceParameters, iceCandidates, dtlsParameters, sctpParameters=None,
        iceServers=None, iceTransportPolicy=None, appData=None`` (the server's answer)."""
        return self._createTransport("send", **options)

    def createRecvTransport(self, **options: Any) -> Transport:
        return self._createTransport("recv", **options)

    def _createTransport(
        self,
        direction: TransportDirection,
        *,
        id: str | None = None,
        iceParameters: IceParameters | None = None,
        iceCandidates: list[IceCandidate] | None = None,
        dtlsParameters: DtlsParameters | None = None,
        sctpParameters: SctpParameters | None = None,
        iceServers: list[IceServer] | None = None,
        iceTransportPolicy: str | None = None,
        appData: AppData | None = None,
    ) -> Transport:
        if not self._loaded or self._extendedRtpCapabilities is None:
            raise InvalidStateError("not loaded")
        if not isinstance(id, str):
            raise TypeError("missing id")
        if not isinstance(iceParameters, dict):
            raise TypeError("missing iceParameters")
        if not isinstance(iceCandidates, list):
            raise TypeError("missing iceCandidates")
        if not isinstance(dtlsParameters, dict):
            raise TypeError("missing dtlsParameters")
        if sctpParameters is not None and not isinstance(sctpParameters, dict):
            raise TypeError("wrong sctpParameters")
        if appData is not None and not isinstance(appData, dict):
            raise TypeError("if given, appData must be a dict")
        transport = Transport(
            direction=direction,
            id=id,
            iceParameters=iceParameters,
            iceCandidates=iceCandidates,
            dtlsParameters=dtlsParameters,
            sctpParameters=sctpParameters,
            iceServers=iceServers,
            iceTransportPolicy=iceTransportPolicy,
            appData=appData,
            handlerFactory=self._handlerFactory,
            extendedRtpCapabilities=self._extendedRtpCapabilities,
            recvRtpCapabilities=self.recvRtpCapabilities,
            canProduceByKind=dict(self._canProduceByKind),
        )
        self._observer.safeEmit("newtransport", transport)
        return transport

    @staticmethod
    async def _nativeCapabilities(
        handler: HandlerInterface, direction: TransportDirection
    ) -> RtpCapabilities:
        caps: Any = copy.deepcopy(await handler.getNativeRtpCapabilities(direction))
        ortc.validateAndNormalizeRtpCapabilities(caps)
        return cast(RtpCapabilities, caps)

    def _require(self, value: T | None) -> T:
        if not self._loaded or value is None:
            raise InvalidStateError("not loaded")
        return value
