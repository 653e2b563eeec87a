"""DataConsumer: messages received from a router DataConsumer over SCTP."""

from __future__ import annotations

from .data_channel_endpoint import DataChannelEndpoint, DataEndpointLink
from .handlers.handler_interface import DataChannel
from .types import AppData, SctpStreamParameters


class DataConsumer(DataChannelEndpoint):
    """Emits ``message`` (``str`` or ``bytes``) for every message the router forwards."""

    def __init__(
        self,
        *,
        id: str,
        dataProducerId: str,
        dataChannel: DataChannel,
        sctpStreamParameters: SctpStreamParameters,
        appData: AppData | None,
        link: DataEndpointLink,
    ) -> None:
        super().__init__(
            id=id,
            dataChannel=dataChannel,
            sctpStreamParameters=sctpStreamParameters,
            appData=appData,
            link=link,
        )
        self._dataProducerId = dataProducerId

    @property
    def dataProducerId(self) -> str:
        return self._dataProducerId
