"""What the library's own send path can encode and which RTP header extensions it writes.

Payload types and extension ids here are local preferences only: the producer's final
``rtpParameters`` carry the router's, and the sender reads those. transport-cc is offered on
every codec with the transport-wide sequence number extension, so a router that has it sends
transport feedback (mediasoup creates its feedback server for the transport's first producer
that has both) and the send-side estimator runs on it; a router without it sends REMB (which
needs abs-send-time, also written), and REMB is then the estimate's ceiling.
"""

from __future__ import annotations

from ....rtp_extensions import (
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    URI_RID,
    URI_RRID,
    URI_TRANSPORT_WIDE_CC,
)
from ....types import RtcpFeedback, RtpCapabilities, RtpCodecCapability, RtpHeaderExtension
from ...native_capabilities import h264Parameters, opusCodec, videoCodecWithRtx
from .encoders import vp9Available

_VIDEO_FEEDBACK: list[RtcpFeedback] = [
    {"type": "goog-remb", "parameter": ""},
    {"type": "transport-cc", "parameter": ""},
    {"type": "ccm", "parameter": "fir"},
    {"type": "nack", "parameter": ""},
    {"type": "nack", "parameter": "pli"},
]


def sendCodecs() -> list[RtpCodecCapability]:
    """The codecs the send path encodes, in preference order (a fresh copy every call)."""
    # Opus NACK is not offered: mediasoup-client only adds it when codecOptions.opusNack asks.
    codecs = [opusCodec([{"type": "transport-cc", "parameter": ""}])]
    codecs += videoCodecWithRtx("video/VP8", 96, {}, _VIDEO_FEEDBACK)
    if vp9Available():
        codecs += videoCodecWithRtx("video/VP9", 98, {"profile-id": 0}, _VIDEO_FEEDBACK)
    codecs += videoCodecWithRtx("video/H264", 100, h264Parameters("42e01f"), _VIDEO_FEEDBACK)
    # Main and High: for pre-encoded H264 (passthrough sends the file's profile). Our encoder
    # writes Constrained Baseline, which Main and High decoders decode too.
    for pt, profile in ((102, "4d0034"), (104, "640034")):
        codecs += videoCodecWithRtx("video/H264", pt, h264Parameters(profile), _VIDEO_FEEDBACK)
    return codecs


def sendHeaderExtensions() -> list[RtpHeaderExtension]:
    """The header extensions the send path writes (a fresh copy every call)."""
    return [
        {"kind": "audio", "uri": URI_MID, "preferredId": 1},
        {"kind": "video", "uri": URI_MID, "preferredId": 1},
        {"kind": "video", "uri": URI_RID, "preferredId": 2},
        {"kind": "video", "uri": URI_RRID, "preferredId": 3},
        {"kind": "audio", "uri": URI_ABS_SEND_TIME, "preferredId": 4},
        {"kind": "video", "uri": URI_ABS_SEND_TIME, "preferredId": 4},
        {"kind": "audio", "uri": URI_TRANSPORT_WIDE_CC, "preferredId": 5},
        {"kind": "video", "uri": URI_TRANSPORT_WIDE_CC, "preferredId": 5},
        {"kind": "audio", "uri": URI_AUDIO_LEVEL, "preferredId": 10},
    ]


def getSendRtpCapabilities() -> RtpCapabilities:
    """``sendCodecs()`` and ``sendHeaderExtensions()`` as one RtpCapabilities dict."""
    return {"codecs": sendCodecs(), "headerExtensions": sendHeaderExtensions()}
