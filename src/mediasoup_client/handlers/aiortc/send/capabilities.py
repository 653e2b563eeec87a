"""What the library's own send path can encode and which RTP header extensions it writes.

Payload types and extension ids here are local preferences only: the producer's final
``rtpParameters`` carry the router's, and the sender reads those. transport-cc is offered on
every codec with the transport-wide sequence number extension, so a router that has it sends
transport feedback (mediasoup creates its feedback server for the transport's first producer
that has both) and the send-side estimator runs on it; a router without it sends REMB (which
needs abs-send-time, also written), and REMB is then the estimate's ceiling.
"""

from __future__ import annotations

import copy

from ....rtp_extensions import (
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    URI_RID,
    URI_RRID,
    URI_TRANSPORT_WIDE_CC,
)
from ....types import RtcpFeedback, RtpCapabilities, RtpCodecCapability, RtpHeaderExtension
from .encoders import vp9Available

_VIDEO_FEEDBACK: list[RtcpFeedback] = [
    {"type": "goog-remb", "parameter": ""},
    {"type": "transport-cc", "parameter": ""},
    {"type": "ccm", "parameter": "fir"},
    {"type": "nack", "parameter": ""},
    {"type": "nack", "parameter": "pli"},
]


def _video(mimeType: str, pt: int, parameters: dict[str, object]) -> list[RtpCodecCapability]:
    media: RtpCodecCapability = {
        "kind": "video",
        "mimeType": mimeType,
        "preferredPayloadType": pt,
        "clockRate": 90000,
        "parameters": dict(parameters),
        "rtcpFeedback": copy.deepcopy(_VIDEO_FEEDBACK),
    }
    rtx: RtpCodecCapability = {
        "kind": "video",
        "mimeType": "video/rtx",
        "preferredPayloadType": pt + 1,
        "clockRate": 90000,
        "parameters": {"apt": pt},
        "rtcpFeedback": [],
    }
    return [media, rtx]


def sendCodecs() -> list[RtpCodecCapability]:
    """The codecs the send path encodes, in preference order (a fresh copy every call)."""
    # Opus NACK is not offered: mediasoup-client only adds it when codecOptions.opusNack asks.
    codecs: list[RtpCodecCapability] = [
        {
            "kind": "audio",
            "mimeType": "audio/opus",
            "preferredPayloadType": 111,
            "clockRate": 48000,
            "channels": 2,
            "parameters": {"minptime": 10, "useinbandfec": 1},
            "rtcpFeedback": [{"type": "transport-cc", "parameter": ""}],
        }
    ]
    codecs += _video("video/VP8", 96, {})
    if vp9Available():
        codecs += _video("video/VP9", 98, {"profile-id": 0})
    codecs += _video(
        "video/H264",
        100,
        {"level-asymmetry-allowed": 1, "packetization-mode": 1, "profile-level-id": "42e01f"},
    )
    # Main and High: for pre-encoded H264 (passthrough sends the file's profile). Our encoder
    # writes Constrained Baseline, which Main and High decoders decode too.
    for pt, profile in ((102, "4d0034"), (104, "640034")):
        codecs += _video(
            "video/H264",
            pt,
            {"level-asymmetry-allowed": 1, "packetization-mode": 1, "profile-level-id": profile},
        )
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
