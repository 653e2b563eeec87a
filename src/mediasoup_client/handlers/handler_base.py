"""What every engine shares, so the fake and the real one cannot drift apart: local ids (the
mid of a sender), one SSRC allocator, SCTP stream ids and ``sctpStreamParameters``, the
producer ``rtpParameters`` (through ``send_parameters``, with the stream id and the
scalability modes checked), registries with their lookups, connect-once, and a tracked,
awaitable teardown."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import uuid
from abc import abstractmethod
from collections.abc import Mapping, Set
from typing import Any, Generic, TypeVar

from ..background import BackgroundWork
from ..errors import InvalidStateError
from ..scalability_modes import checkScalabilityMode, simulcastScalabilityMode
from ..send_parameters import buildSendRtpParameters
from ..types import MediaKind, RtpParameters, SctpCapabilities, SctpStreamParameters
from .handler_interface import (
    HandlerInterface,
    HandlerRunOptions,
    HandlerSendDataChannelOptions,
    HandlerSendOptions,
)

SenderT = TypeVar("SenderT")
ReceiverT = TypeVar("ReceiverT")


class SsrcAllocator:
    """Random, non-zero SSRCs, never the same twice on one transport."""

    def __init__(self) -> None:
        self._used: set[int] = set()

    def __call__(self) -> int:
        while True:
            ssrc = random.randint(1, 0xFFFFFFFF)
            if ssrc not in self._used:
                self._used.add(ssrc)
                return ssrc


class HandlerBase(HandlerInterface, Generic[SenderT, ReceiverT]):
    # Scalability modes the engine really produces, per codec (lower-case mime type).
    scalabilityModes: Mapping[str, Set[str]] = {}

    def __init__(self, sctpCapabilities: SctpCapabilities) -> None:
        super().__init__()
        self._options: HandlerRunOptions | None = None
        self._closed = False
        self._cname = secrets.token_hex(8)
        # Producers of one transport share a MediaStream unless given a streamId.
        self._streamId = str(uuid.uuid4())
        self._localIds = itertools.count()
        self.generateSsrc = SsrcAllocator()
        self._sctpCapabilities = sctpCapabilities
        self._nextSctpStreamId = 0
        self._senders: dict[str, SenderT] = {}
        self._receivers: dict[str, ReceiverT] = {}
        self._connectTask: asyncio.Task[None] | None = None
        self.background = BackgroundWork(f"{self.name} handler")

    @property
    def closed(self) -> bool:
        return self._closed

    # Life cycle.

    def run(self, options: HandlerRunOptions) -> None:
        self._options = options
        self._start(options)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._options is None:
            return  # never ran: nothing was opened
        self.background.spawn(self._teardown(), "teardown")

    async def waitClosed(self) -> None:
        await self.background.drain()

    @abstractmethod
    def _start(self, options: HandlerRunOptions) -> None:
        """Bind to the server-side transport (no network yet)."""

    @abstractmethod
    async def _teardown(self) -> None:
        """Release senders, receivers, channels and the network (after ``close()``)."""

    @abstractmethod
    async def _connect(self) -> None:
        """Hand our DTLS parameters to the app (``onConnect``) and start connecting."""

    async def _connectOnce(self) -> None:
        """Connect on first use; later calls wait for the same attempt. A failed attempt is
        retried by the next call, as an engine re-signals."""
        self._checkOpen()
        if self._connectTask is None:
            self._connectTask = asyncio.ensure_future(self._connect())
        try:
            await asyncio.shield(self._connectTask)
        except BaseException:
            if self._connectTask.done():
                self._connectTask = None
            raise
        self._checkOpen()

    # What the engines compute alike.

    def _nextLocalId(self) -> str:
        return str(next(self._localIds))

    def _sendRtpParameters(self, options: HandlerSendOptions, localId: str) -> RtpParameters:
        """The producer's parameters (``localId`` is its mid). Raises before anything is
        created when a codec or a scalability mode cannot be sent."""
        kind: MediaKind = "audio" if options.track.kind == "audio" else "video"
        parameters = buildSendRtpParameters(
            kind=kind,
            extendedRtpCapabilities=self._runOptions().extendedRtpCapabilities,
            encodings=options.encodings,
            codec=options.codec,
            codecOptions=options.codecOptions,
            mid=localId,
            cname=self._cname,
            msid=f"{options.streamId or self._streamId} {options.track.id}",
            generateSsrc=self.generateSsrc,
        )
        mime_type = parameters["codecs"][0]["mimeType"]
        supported = self.scalabilityModes.get(mime_type.lower(), frozenset())
        for encoding in parameters["encodings"]:
            if "scalabilityMode" in encoding:
                checkScalabilityMode(encoding["scalabilityMode"], mime_type, supported)
        # As mediasoup-client in Chrome: one mode on every simulcast encoding, L1T3 by default.
        mode = simulcastScalabilityMode(parameters["encodings"], supported)
        if mode is not None:
            for encoding in parameters["encodings"]:
                encoding["scalabilityMode"] = mode
            checkScalabilityMode(mode, mime_type, supported)
        return parameters

    def _sctpStreamParameters(self, options: HandlerSendDataChannelOptions) -> SctpStreamParameters:
        """The next free stream id and the channel's reliability, as the server wants them."""
        streamId = self._nextSctpStreamId
        self._nextSctpStreamId = (streamId + 1) % self._sctpCapabilities["numStreams"]["OS"]
        parameters: Any = {"streamId": streamId, "ordered": options.ordered}
        if options.maxPacketLifeTime is not None:
            parameters["maxPacketLifeTime"] = options.maxPacketLifeTime
        if options.maxRetransmits is not None:
            parameters["maxRetransmits"] = options.maxRetransmits
        return parameters  # type: ignore[no-any-return]

    # Registries.

    def _runOptions(self) -> HandlerRunOptions:
        if self._options is None:
            raise InvalidStateError("handler not running")
        return self._options

    def _checkOpen(self) -> None:
        if self._closed:
            raise InvalidStateError("closed")

    def _sender(self, localId: str) -> SenderT:
        self._checkOpen()
        try:
            return self._senders[localId]
        except KeyError:
            raise InvalidStateError(f"no sender with localId {localId!r}") from None

    def _receiver(self, localId: str) -> ReceiverT:
        self._checkOpen()
        try:
            return self._receivers[localId]
        except KeyError:
            raise InvalidStateError(f"no receiver with localId {localId!r}") from None
