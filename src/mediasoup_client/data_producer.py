"""DataProducer: messages sent to the router over an SCTP data channel."""

from __future__ import annotations

from .data_channel_endpoint import DataChannelEndpoint
from .errors import InvalidStateError


class DataProducer(DataChannelEndpoint):
    """``send(data)`` with ``str`` (text) or ``bytes`` (binary) messages."""

    def send(self, data: str | bytes) -> None:
        if self._closed:
            raise InvalidStateError("closed")
        if not isinstance(data, str | bytes | bytearray | memoryview):
            raise TypeError("data must be str or bytes")
        if self._dataChannel.readyState != "open":
            raise InvalidStateError(f"data channel is {self._dataChannel.readyState}")
        self._dataChannel.send(bytes(data) if not isinstance(data, str | bytes) else data)
