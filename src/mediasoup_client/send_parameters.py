"""The RTP parameters a sending handler hands to the server (pure, no I/O).

Every handler builds its producers' parameters here so the fake and the real engine signal
exactly the same shape: the router's payload types, the negotiated header extensions, a mid,
one encoding per requested layer with its own SSRC (and RTX SSRC when RTX was negotiated),
``rid`` r0..rN for simulcast (index 0 the lowest layer), the RTCP cname, the ``msid``
("<streamId> <trackId>") receivers use to play one peer's audio and video in sync, and the
producer's ``codecOptions`` written into the codec parameters that describe what the encoder
emits.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from . import ortc
from .types import (
    ExtendedRtpCapabilities,
    MediaKind,
    ProducerCodecOptions,
    RtpCodecCapability,
    RtpCodecParameters,
    RtpEncodingParameters,
    RtpParameters,
)

# codecOptions -> codec parameter names, as mediasoup-client writes them into SDP fmtp.
_OPUS_OPTION_PARAMETERS: dict[str, str] = {
    "opusFec": "useinbandfec",
    "opusDtx": "usedtx",
    "opusMaxPlaybackRate": "maxplaybackrate",
    "opusMaxAverageBitrate": "maxaveragebitrate",
    "opusPtime": "ptime",
}
_VIDEO_OPTION_PARAMETERS: dict[str, str] = {
    "videoGoogleStartBitrate": "x-google-start-bitrate",
    "videoGoogleMaxBitrate": "x-google-max-bitrate",
    "videoGoogleMinBitrate": "x-google-min-bitrate",
}


# The type each user-settable encoding field must have to be kept (others are dropped,
# as mediasoup-client does).
_ENCODING_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "dtx": bool,
    "scalabilityMode": str,
    "scaleResolutionDownBy": (int, float),
    "maxBitrate": (int, float),
    "maxFramerate": (int, float),
    "adaptivePtime": bool,
    "priority": str,
    "networkPriority": str,
}


def normalizeEncodings(
    encodings: list[RtpEncodingParameters] | None,
) -> list[RtpEncodingParameters]:
    """The encodings a handler gets: each ``active`` unless it says ``active: False``, with
    only the well-typed user fields; no list (or an empty one) means one default encoding."""
    if not encodings:
        return [{"active": True}]
    normalized: list[RtpEncodingParameters] = []
    for encoding in encodings:
        if not isinstance(encoding, dict):
            raise TypeError("encodings must be a list of dicts")
        kept: dict[str, Any] = {"active": encoding.get("active") is not False}
        for name, expected in _ENCODING_FIELD_TYPES.items():
            value = encoding.get(name)
            numeric = expected == (int, float)
            if isinstance(value, expected) and not (numeric and isinstance(value, bool)):
                kept[name] = value
        normalized.append(kept)  # type: ignore[arg-type]
    return normalized


def applyCodecOptions(codec: RtpCodecParameters, codecOptions: ProducerCodecOptions | None) -> None:
    """Write ``codecOptions`` into the parameters (and feedback) of the codec being sent."""
    if not codecOptions:
        return
    parameters = codec.setdefault("parameters", {})
    mime_type = codec["mimeType"].lower()
    if mime_type == "audio/opus":
        if "opusStereo" in codecOptions:
            stereo = 1 if codecOptions["opusStereo"] else 0
            parameters["stereo"] = stereo
            parameters["sprop-stereo"] = stereo
        for option, name in _OPUS_OPTION_PARAMETERS.items():
            if option in codecOptions:
                value = codecOptions[option]  # type: ignore[literal-required]
                parameters[name] = int(value) if isinstance(value, bool) else value
        if "opusNack" in codecOptions:
            feedback = [fb for fb in codec.get("rtcpFeedback", []) if fb["type"] != "nack"]
            if codecOptions["opusNack"]:
                feedback.append({"type": "nack", "parameter": ""})
            codec["rtcpFeedback"] = feedback
    elif mime_type.startswith("video/"):
        for option, name in _VIDEO_OPTION_PARAMETERS.items():
            if option in codecOptions:
                parameters[name] = codecOptions[option]  # type: ignore[literal-required]


def buildSendRtpParameters(
    *,
    kind: MediaKind,
    extendedRtpCapabilities: ExtendedRtpCapabilities,
    encodings: list[RtpEncodingParameters],
    codec: RtpCodecCapability | None,
    codecOptions: ProducerCodecOptions | None,
    mid: str,
    cname: str,
    msid: str | None = None,
    generateSsrc: Callable[[], int],
) -> RtpParameters:
    """The complete producer parameters for ``encodings`` (already normalised, index 0 lowest).

    Raises ``TypeError('no matching codec found')`` when ``codec`` matches nothing.
    """
    parameters = ortc.getSendingRemoteRtpParameters(kind, extendedRtpCapabilities)
    parameters["codecs"] = ortc.reduceCodecs(parameters["codecs"], codec)
    _useRouterPayloadTypes(parameters["codecs"], extendedRtpCapabilities)
    if not parameters["codecs"]:
        raise TypeError(f"no {kind} codec negotiated")
    applyCodecOptions(parameters["codecs"][0], codecOptions)
    has_rtx = any(c["mimeType"].lower().endswith("/rtx") for c in parameters["codecs"])
    simulcast = len(encodings) > 1
    sent_encodings: list[RtpEncodingParameters] = []
    for index, encoding in enumerate(encodings):
        sent: RtpEncodingParameters = copy.deepcopy(encoding)
        sent["ssrc"] = generateSsrc()
        if has_rtx:
            sent["rtx"] = {"ssrc": generateSsrc()}
        if simulcast:
            sent["rid"] = f"r{index}"
        sent_encodings.append(sent)
    parameters["mid"] = mid
    parameters["encodings"] = sent_encodings
    parameters["rtcp"] = {"cname": cname, "reducedSize": True, "mux": True}
    if msid is not None:
        parameters["msid"] = msid
    return parameters


def _useRouterPayloadTypes(
    codecs: list[RtpCodecParameters], extendedRtpCapabilities: ExtendedRtpCapabilities
) -> None:
    """Our engine sends with the router's payload types, so the signalled parameters carry
    them too (the router then needs no payload type mapping)."""
    to_router: dict[int, int] = {}
    for extended in extendedRtpCapabilities["codecs"]:
        to_router[extended["localPayloadType"]] = extended["remotePayloadType"]
        local_rtx, remote_rtx = extended["localRtxPayloadType"], extended["remoteRtxPayloadType"]
        if local_rtx is not None and remote_rtx is not None:
            to_router[local_rtx] = remote_rtx
    for codec in codecs:
        codec["payloadType"] = to_router.get(codec["payloadType"], codec["payloadType"])
        parameters = codec.get("parameters", {})
        if "apt" in parameters:
            parameters["apt"] = to_router.get(parameters["apt"], parameters["apt"])
