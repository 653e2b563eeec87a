"""DataProducer: messages sent to the router over an SCTP data channel."""

from __future__ import annotations

from .data_channel_endpoint import DataChannelEndpoint


class DataProducer(DataChannelEndpoint):
    """``send(data)`` with ``str`` (text) or ``bytes`` (binary) messages."""
