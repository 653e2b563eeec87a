"""The library's own RTP receive path: per consumer, RTP reception (media + RTX), NACK,
a frame-level jitter buffer with a deadline, key-frame requests, receiver reports, decoding
and W3C stats; per transport, transport-wide congestion control feedback.

``ConsumerReceiver`` receives one consumer over an ``RtpPort``; ``TransportFeedbackSender``
reports the transport's packet arrivals; ``getRecvRtpCapabilities`` says what it decodes and
which feedback it gives.
"""

from .capabilities import getRecvRtpCapabilities, recvCodecs, recvHeaderExtensions
from .consumer_receiver import ConsumerReceiver
from .track import ReceiveTrack
from .transport_feedback_sender import TransportFeedbackSender

__all__ = [
    "ConsumerReceiver",
    "ReceiveTrack",
    "TransportFeedbackSender",
    "getRecvRtpCapabilities",
    "recvCodecs",
    "recvHeaderExtensions",
]
