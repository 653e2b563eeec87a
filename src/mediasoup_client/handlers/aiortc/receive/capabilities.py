"""What the library's receive path decodes and which RTP header extensions and RTCP feedback it
offers the router (local payload types and ids: consumers carry the router's).

transport-cc is offered (header extension + feedback): the receive path reports every packet's
arrival to the router (``transport_feedback.py``), so the router's estimator learns what the
downlink carries and picks the simulcast layers that fit. REMB is not offered: a receiver-side
estimate would compete with the router's, and mediasoup uses transport-cc when both are there.
"""

from __future__ import annotations

import copy

from ....types import RtcpFeedback, RtpCapabilities, RtpCodecCapability, RtpHeaderExtension

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

_VIDEO_FEEDBACK: list[RtcpFeedback] = [
    {"type": "transport-cc", "parameter": ""},
    {"type": "nack", "parameter": ""},
    {"type": "nack", "parameter": "pli"},
    {"type": "ccm", "parameter": "fir"},
]


def _video(mimeType: str, pt: int, parameters: dict[str, object]) -> list[RtpCodecCapability]:
    return [
        {
            "kind": "video",
            "mimeType": mimeType,
            "preferredPayloadType": pt,
            "clockRate": 90000,
            "parameters": dict(parameters),
            "rtcpFeedback": copy.deepcopy(_VIDEO_FEEDBACK),
        },
        {
            "kind": "video",
            "mimeType": "video/rtx",
            "preferredPayloadType": pt + 1,
            "clockRate": 90000,
            "parameters": {"apt": pt},
            "rtcpFeedback": [],
        },
    ]


def recvCodecs() -> list[RtpCodecCapability]:
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
    codecs += _video(
        "video/H264",
        100,
        {"level-asymmetry-allowed": 1, "packetization-mode": 1, "profile-level-id": "42e01f"},
    )
    codecs += _video("video/VP9", 98, {"profile-id": 0})
    codecs += _video("video/VP9", 102, {"profile-id": 2})
    return codecs


def recvHeaderExtensions() -> list[RtpHeaderExtension]:
    return [
        {"kind": "audio", "uri": URI_MID, "preferredId": 1},
        {"kind": "video", "uri": URI_MID, "preferredId": 1},
        {"kind": "audio", "uri": URI_TRANSPORT_CC, "preferredId": 5},
        {"kind": "video", "uri": URI_TRANSPORT_CC, "preferredId": 5},
        {"kind": "audio", "uri": URI_AUDIO_LEVEL, "preferredId": 10},
    ]


def getRecvRtpCapabilities() -> RtpCapabilities:
    """``recvCodecs()`` and ``recvHeaderExtensions()`` as one RtpCapabilities dict."""
    return {"codecs": recvCodecs(), "headerExtensions": recvHeaderExtensions()}
