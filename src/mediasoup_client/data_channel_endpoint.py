"""What DataProducer and DataConsumer share: one SCTP data channel, its events and its close."""

from __future__ import annotations

from typing import Protocol

from .endpoint import Endpoint
from .handlers.handler_interface import DataChannel
from .types import AppData, SctpStreamParameters


class DataEndpointLink(Protocol):
    """How a data endpoint tells its Transport that it closed."""

    def dataEndpointClosed(self, endpoint: DataChannelEndpoint) -> None: ...


class DataChannelEndpoint(Endpoint):
    """Events: ``open``, ``error`` (exception), ``close``, ``message`` (str | bytes),
    ``bufferedamountlow``, ``transportclose``. Observer: ``close``."""

    def __init__(
        self,
        *,
        id: str,
        dataChannel: DataChannel,
        sctpStreamParameters: SctpStreamParameters,
        appData: AppData | None,
        link: DataEndpointLink,
    ) -> None:
        super().__init__(id=id, appData=appData)
        self._dataChannel = dataChannel
        self._sctpStreamParameters = sctpStreamParameters
        self._link = link
        dataChannel.on("open", self._onOpen)
        dataChannel.on("error", self._onError)
        dataChannel.on("close", self._onClose)
        dataChannel.on("message", self._onMessage)
        dataChannel.on("bufferedamountlow", self._onBufferedAmountLow)

    @property
    def dataChannel(self) -> DataChannel:
        return self._dataChannel

    @property
    def sctpStreamParameters(self) -> SctpStreamParameters:
        return self._sctpStreamParameters

    @property
    def readyState(self) -> str:
        return self._dataChannel.readyState

    @property
    def label(self) -> str:
        return self._dataChannel.label

    @property
    def protocol(self) -> str:
        return self._dataChannel.protocol

    @property
    def bufferedAmount(self) -> int:
        return self._dataChannel.bufferedAmount

    @property
    def bufferedAmountLowThreshold(self) -> int:
        return self._dataChannel.bufferedAmountLowThreshold

    @bufferedAmountLowThreshold.setter
    def bufferedAmountLowThreshold(self, value: int) -> None:
        self._dataChannel.bufferedAmountLowThreshold = value

    def close(self) -> None:
        self._finish(event=None)

    def transportClosed(self) -> None:
        self._finish(event="transportclose")

    def _finish(self, event: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._dataChannel.close()
        self._link.dataEndpointClosed(self)
        self._emitClosed(event)

    def _onOpen(self) -> None:
        if not self._closed:
            self.safeEmit("open")

    def _onError(self, error: BaseException | None = None) -> None:
        if not self._closed:
            self.safeEmit("error", error or Exception("unknown DataChannel error"))

    def _onClose(self) -> None:
        # The channel closed by itself (remote close, SCTP gone): we close too.
        self._finish(event="close")

    def _onMessage(self, message: str | bytes) -> None:
        if not self._closed:
            self.safeEmit("message", message)

    def _onBufferedAmountLow(self) -> None:
        if not self._closed:
            self.safeEmit("bufferedamountlow")
