"""What the library's receive path decodes and which RTP header extensions and RTCP feedback it
offers the router (local payload types and ids: consumers carry the router's).

transport-cc is offered (header extension + feedback): the receive path reports every packet's
arrival to the router (``transport_feedback.py``), so the router's estimator learns what the
downlink carries and picks the simulcast layers that fit. REMB is not offered: a receiver-side
estimate would compete with the router's, and mediasoup uses transport-cc when both are there.
"""

from __future__ import annotations

from ....rtp_extensions import URI_AUDIO_LEVEL, URI_MID, URI_TRANSPORT_WIDE_CC
from ....types import RtcpFeedback, RtpCapabilities, RtpCodecCapability, RtpHeaderExtension
from ...native_capabilities import h264Parameters, opusCodec, videoCodecWithRtx

_VIDEO_FEEDBACK: list[RtcpFeedback] = [
    {"type": "transport-cc", "parameter": ""},
    {"type": "nack", "parameter": ""},
    {"type": "nack", "parameter": "pli"},
    {"type": "ccm", "parameter": "fir"},
]


def recvCodecs() -> list[RtpCodecCapability]:
    codecs = [opusCodec([{"type": "transport-cc", "parameter": ""}])]
    codecs += videoCodecWithRtx("video/VP8", 96, {}, _VIDEO_FEEDBACK)
    codecs += videoCodecWithRtx("video/H264", 100, h264Parameters("42e01f"), _VIDEO_FEEDBACK)
    codecs += videoCodecWithRtx("video/VP9", 98, {"profile-id": 0}, _VIDEO_FEEDBACK)
    codecs += videoCodecWithRtx("video/VP9", 102, {"profile-id": 2}, _VIDEO_FEEDBACK)
    return codecs


def recvHeaderExtensions() -> list[RtpHeaderExtension]:
    return [
        {"kind": "audio", "uri": URI_MID, "preferredId": 1},
        {"kind": "video", "uri": URI_MID, "preferredId": 1},
        {"kind": "audio", "uri": URI_TRANSPORT_WIDE_CC, "preferredId": 5},
        {"kind": "video", "uri": URI_TRANSPORT_WIDE_CC, "preferredId": 5},
        {"kind": "audio", "uri": URI_AUDIO_LEVEL, "preferredId": 10},
    ]


def getRecvRtpCapabilities() -> RtpCapabilities:
    """``recvCodecs()`` and ``recvHeaderExtensions()`` as one RtpCapabilities dict."""
    return {"codecs": recvCodecs(), "headerExtensions": recvHeaderExtensions()}
