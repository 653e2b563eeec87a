"""The library's own RTP send path: encoders, packetizers, RTP/RTCP per encoding.

``ProducerSender`` sends one producer over an ``RtpPort``; ``getSendRtpCapabilities`` says what
it can encode and which header extensions it writes.
"""

from .capabilities import getSendRtpCapabilities, sendCodecs, sendHeaderExtensions
from .producer_sender import ProducerSender

__all__ = ["ProducerSender", "getSendRtpCapabilities", "sendCodecs", "sendHeaderExtensions"]
