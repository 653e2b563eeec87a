"""The engine boundary.

A handler is everything a Transport needs from a media engine, shaped like mediasoup's ORTC
objects rather than SDP: the Transport does validation, signaling and bookkeeping; the handler
owns ICE/DTLS/SRTP/SCTP, encoders, RTP streams and receivers. ``FakeHandler`` implements it
without a network for unit tests; ``AiortcHandler`` implements it on aiortc for real media.

Events a handler emits: ``@connectionstatechange`` (ConnectionState),
``@icegatheringstatechange`` (IceGatheringState) and ``@trackended`` (localId: the engine saw a
producer's source end or fail). The DTLS ``connect`` round trip to the application is not an
event but an awaited hook (``HandlerRunOptions.onConnect``), so the handler can wait for the
server before starting DTLS.

What every engine shares (ids, SSRCs, SCTP streams, registries, connect-once, teardown) lives
in ``handler_base.HandlerBase``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..enhanced_events import EnhancedEventEmitter
from ..types import (
    DtlsParameters,
    ExtendedRtpCapabilities,
    IceCandidate,
    IceParameters,
    IceServer,
    MediaKind,
    ProducerCodecOptions,
    RtpCapabilities,
    RtpCodecCapability,
    RtpEncodingParameters,
    RtpParameters,
    SctpCapabilities,
    SctpParameters,
    SctpStreamParameters,
    StatsReport,
    TransportDirection,
)


class MediaTrack(Protocol):
    """What the library needs of a track: aiortc's ``MediaStreamTrack`` satisfies it."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def readyState(self) -> str: ...

    def stop(self) -> None: ...

    def on(self, event: str, f: Callable[..., Any]) -> Callable[..., Any]: ...

    def remove_listener(self, event: str, f: Callable[..., Any]) -> None: ...


class DataChannel(Protocol):
    """What DataProducer/DataConsumer need of a data channel: aiortc's ``RTCDataChannel`` fits.

    Events: ``open``, ``close``, ``error`` (exc), ``message`` (str | bytes), ``bufferedamountlow``.
    """

    @property
    def id(self) -> int | None: ...

    @property
    def label(self) -> str: ...

    @property
    def protocol(self) -> str: ...

    @property
    def readyState(self) -> str: ...

    @property
    def bufferedAmount(self) -> int: ...

    @property
    def bufferedAmountLowThreshold(self) -> int: ...

    @bufferedAmountLowThreshold.setter
    def bufferedAmountLowThreshold(self, value: int) -> None: ...

    def send(self, data: str | bytes) -> None: ...

    def close(self) -> None: ...

    def on(self, event: str, f: Callable[..., Any]) -> Callable[..., Any]: ...

    def remove_all_listeners(self, event: str | None = None) -> None: ...


@dataclass
class HandlerRunOptions:
    direction: TransportDirection
    iceParameters: IceParameters
    iceCandidates: list[IceCandidate]
    dtlsParameters: DtlsParameters
    sctpParameters: SctpParameters | None
    iceServers: list[IceServer] | None
    iceTransportPolicy: str | None
    extendedRtpCapabilities: ExtendedRtpCapabilities
    # Awaits the application's "connect" handler with the local DTLS parameters; raises what
    # it raises. The handler calls it once, when the transport is first used.
    onConnect: Callable[[DtlsParameters], Awaitable[None]]


@dataclass
class HandlerSendOptions:
    track: MediaTrack
    # Normalised by the Transport: at least one entry, index 0 the lowest layer; no ssrc/rid.
    encodings: list[RtpEncodingParameters]
    codecOptions: ProducerCodecOptions | None = None
    codec: RtpCodecCapability | None = None
    # The "<streamId> <trackId>" the producer's rtpParameters carry (lip sync in receivers).
    streamId: str | None = None
    # What pausing does on the wire (mediasoup-client's options): zeroRtpOnPause, no RTP at
    # all; else disableTrackOnPause, black video and silent audio; else nothing.
    disableTrackOnPause: bool = True
    zeroRtpOnPause: bool = False


@dataclass
class HandlerSendResult:
    localId: str
    # Complete parameters for the server: mid, codecs (router payload types, codecOptions
    # applied), headerExtensions, encodings with ssrc/rtx/rid, rtcp.cname.
    rtpParameters: RtpParameters


@dataclass
class HandlerReceiveOptions:
    trackId: str
    kind: MediaKind
    rtpParameters: RtpParameters
    streamId: str | None = None


@dataclass
class HandlerReceiveResult:
    localId: str
    track: MediaTrack


@dataclass
class HandlerSendDataChannelOptions:
    ordered: bool = True
    maxPacketLifeTime: int | None = None
    maxRetransmits: int | None = None
    label: str = ""
    protocol: str = ""


@dataclass
class HandlerSendDataChannelResult:
    dataChannel: DataChannel
    sctpStreamParameters: SctpStreamParameters


@dataclass
class HandlerReceiveDataChannelOptions:
    sctpStreamParameters: SctpStreamParameters
    label: str = ""
    protocol: str = ""


@dataclass
class HandlerReceiveDataChannelResult:
    dataChannel: DataChannel


class HandlerInterface(EnhancedEventEmitter, ABC):
    """One transport's engine. Created by a ``HandlerFactory``; ``run()`` starts it."""

    @property
    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    async def getNativeRtpCapabilities(self, direction: TransportDirection) -> RtpCapabilities:
        """What this engine can send (``"send"``) or receive (``"recv"``); payload types and
        extension ids are the engine's own."""

    @abstractmethod
    async def getNativeSctpCapabilities(self) -> SctpCapabilities: ...

    @abstractmethod
    def run(self, options: HandlerRunOptions) -> None:
        """Bind the handler to one server-side transport. Must not touch the network yet."""

    @abstractmethod
    def close(self) -> None:
        """Stop every sender, receiver and data channel and release the network (in the
        background: ``waitClosed()`` waits for it). A handler that never ran has nothing to
        release."""

    @abstractmethod
    async def waitClosed(self) -> None:
        """Return once ``close()`` has released everything."""

    @abstractmethod
    async def updateIceServers(self, iceServers: list[IceServer]) -> None: ...

    @abstractmethod
    async def restartIce(self, iceParameters: IceParameters) -> None: ...

    @abstractmethod
    async def getTransportStats(self) -> StatsReport: ...

    # Sending.
    @abstractmethod
    async def send(self, options: HandlerSendOptions) -> HandlerSendResult: ...

    @abstractmethod
    async def stopSending(self, localId: str) -> None: ...

    @abstractmethod
    async def pauseSending(self, localId: str) -> None: ...

    @abstractmethod
    async def resumeSending(self, localId: str) -> None: ...

    @abstractmethod
    async def replaceTrack(self, localId: str, track: MediaTrack | None) -> None: ...

    @abstractmethod
    async def setMaxSpatialLayer(self, localId: str, spatialLayer: int) -> None: ...

    @abstractmethod
    async def setRtpEncodingParameters(self, localId: str, params: dict[str, Any]) -> None: ...

    @abstractmethod
    async def getSenderStats(self, localId: str) -> StatsReport: ...

    @abstractmethod
    async def sendDataChannel(
        self, options: HandlerSendDataChannelOptions
    ) -> HandlerSendDataChannelResult: ...

    # Receiving (one consumer per call).
    @abstractmethod
    async def receive(self, options: HandlerReceiveOptions) -> HandlerReceiveResult: ...

    @abstractmethod
    async def stopReceiving(self, localId: str) -> None: ...

    @abstractmethod
    async def pauseReceiving(self, localId: str) -> None: ...

    @abstractmethod
    async def resumeReceiving(self, localId: str) -> None: ...

    @abstractmethod
    async def getReceiverStats(self, localId: str) -> StatsReport: ...

    @abstractmethod
    async def receiveDataChannel(
        self, options: HandlerReceiveDataChannelOptions
    ) -> HandlerReceiveDataChannelResult: ...

    @abstractmethod
    def getDataChannelMaxMessageSize(self) -> int | None: ...


class HandlerFactory(Protocol):
    """Makes a fresh, not yet running handler. Device uses one to read the native
    capabilities and each Transport gets its own. ``name`` is the engine's ``handlerName``;
    a plain callable works too (Device then asks a handler it makes for its name)."""

    def __call__(self) -> HandlerInterface: ...


@dataclass(frozen=True)
class NamedHandlerFactory:
    """A ``HandlerFactory`` that knows its engine's name without making a handler."""

    name: str
    create: Callable[[], HandlerInterface]

    def __call__(self) -> HandlerInterface:
        return self.create()
