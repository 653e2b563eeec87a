"""Building blocks of an engine's native RTP capabilities (pure, no engine imported).

The aiortc engine's send and receive sides and the fake engine all offer Opus and video codecs
each followed by its RTX codec; they build them here, so every engine writes them in one shape.
"""

from __future__ import annotations

import copy

from ..types import RtcpFeedback, RtpCodecCapability


def videoCodecWithRtx(
    mimeType: str, payloadType: int, parameters: dict[str, object], rtcpFeedback: list[RtcpFeedback]
) -> list[RtpCodecCapability]:
    """A video codec (its own copies of ``parameters`` and ``rtcpFeedback``) and its RTX
    codec on the next payload type."""
    media: RtpCodecCapability = {
        "kind": "video",
        "mimeType": mimeType,
        "preferredPayloadType": payloadType,
        "clockRate": 90000,
        "parameters": dict(parameters),
        "rtcpFeedback": copy.deepcopy(rtcpFeedback),
    }
    rtx: RtpCodecCapability = {
        "kind": "video",
        "mimeType": "video/rtx",
        "preferredPayloadType": payloadType + 1,
        "clockRate": 90000,
        "parameters": {"apt": payloadType},
        "rtcpFeedback": [],
    }
    return [media, rtx]


def h264Parameters(profileLevelId: str) -> dict[str, object]:
    """The fmtp of a packetization-mode 1 H264 codec of ``profileLevelId``."""
    return {
        "level-asymmetry-allowed": 1,
        "packetization-mode": 1,
        "profile-level-id": profileLevelId,
    }


def opusCodec(rtcpFeedback: list[RtcpFeedback], payloadType: int = 111) -> RtpCodecCapability:
    """Stereo-capable Opus with in-band FEC, as WebRTC engines offer it."""
    return {
        "kind": "audio",
        "mimeType": "audio/opus",
        "preferredPayloadType": payloadType,
        "clockRate": 48000,
        "channels": 2,
        "parameters": {"minptime": 10, "useinbandfec": 1},
        "rtcpFeedback": copy.deepcopy(rtcpFeedback),
    }
