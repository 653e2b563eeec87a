"""mediasoup-client v3 for Python: join a mediasoup SFU and send and receive audio, video and data.

Names follow mediasoup-client (camelCase), so its documentation reads verbatim.
"""

from __future__ import annotations

from .consumer import Consumer
from .data_consumer import DataConsumer
from .data_producer import DataProducer
from .device import Device
from .errors import InvalidStateError, UnsupportedError
from .handlers.fake_handler import FakeHandler
from .handlers.handler_interface import HandlerFactory, HandlerInterface
from .producer import Producer
from .scalability_modes import parseScalabilityMode
from .transport import Transport
from .types import (
    DtlsParameters,
    IceCandidate,
    IceParameters,
    MediaKind,
    ProducerCodecOptions,
    RtpCapabilities,
    RtpCodecCapability,
    RtpEncodingParameters,
    RtpParameters,
    SctpCapabilities,
    SctpParameters,
    SctpStreamParameters,
)

__version__ = "0.1.0"

__all__ = [
    "Consumer",
    "DataConsumer",
    "DataProducer",
    "Device",
    "DtlsParameters",
    "FakeHandler",
    "HandlerFactory",
    "HandlerInterface",
    "IceCandidate",
    "IceParameters",
    "InvalidStateError",
    "MediaKind",
    "Producer",
    "ProducerCodecOptions",
    "RtpCapabilities",
    "RtpCodecCapability",
    "RtpEncodingParameters",
    "RtpParameters",
    "SctpCapabilities",
    "SctpParameters",
    "SctpStreamParameters",
    "Transport",
    "UnsupportedError",
    "__version__",
    "parseScalabilityMode",
]
