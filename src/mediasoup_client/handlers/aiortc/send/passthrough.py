"""Producing a pre-encoded track: the choice of the router codec that matches its bitstream, the
checks of what cannot apply to it, and the pipeline that sends it (``passthrough_pipeline``).

Pure, called by the handler: ``passthroughSendOptions`` before the producer's parameters are
built (a mismatch raises before anything is signalled), ``passthroughPipelineFactory`` for the
``ProducerSender``, ``checkTrackReplacement`` before ``replaceTrack``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import h264_profile_level_id as h264

from ....errors import UnsupportedError
from ....media.encoded import EncodedStreamInfo, encodedStreamInfo
from ....types import ExtendedRtpCapabilities, RtpCodecCapability, RtpEncodingParameters
from ...handler_interface import HandlerSendOptions
from .config import SendConfig
from .passthrough_pipeline import PassthroughAudioPipeline, PassthroughVideoPipeline
from .pipeline import MediaPipeline
from .rtp_stream import RtpStream

PipelineFactory = Callable[[SendConfig, list[RtpStream]], MediaPipeline]

# Encoding fields that ask an encoder for something (a pre-encoded source has none).
_ENCODER_FIELDS = ("maxBitrate", "maxFramerate", "scaleResolutionDownBy", "dtx", "adaptivePtime")
# codecOptions a pre-encoded source can honour: NACK (the RTP stream's) and the channel count
# its Opus packets have.
_ALLOWED_CODEC_OPTIONS = ("opusNack", "opusStereo")

_PROFILE_NAMES = {
    h264.ProfileConstrainedBaseline: "Constrained Baseline",
    h264.ProfileBaseline: "Baseline",
    h264.ProfileMain: "Main",
    h264.ProfileConstrainedHigh: "Constrained High",
    h264.ProfileHigh: "High",
}


def describeProfile(profileLevelId: str) -> str:
    """``"42e01f (Constrained Baseline)"``; the id alone when it does not parse."""
    parsed = h264.parseProfileLevelId(profileLevelId)
    if parsed is None:
        return profileLevelId
    return f"{profileLevelId} ({_PROFILE_NAMES.get(parsed.profile, 'unknown profile')})"


def passthroughSendOptions(
    options: HandlerSendOptions, extended: ExtendedRtpCapabilities
) -> tuple[HandlerSendOptions, EncodedStreamInfo] | None:
    """For a pre-encoded track: the send options with the router codec its bitstream needs
    and one encoding per rendition; None for any other track. ``UnsupportedError`` when the
    router has no such codec or an option asks for encoding; ``TypeError`` for encodings
    that do not fit the renditions."""
    info = encodedStreamInfo(options.track)
    if info is None:
        return None
    if info.kind != options.track.kind:
        raise TypeError(f"a {info.kind} source on a {options.track.kind} track")
    codec = _routerCodec(info, extended)
    if options.codec is not None and not _sameCodec(options.codec, codec):
        raise UnsupportedError(
            f"codec {_codecName(options.codec)} was asked for, but the source is "
            f"{_sourceName(info)}"
        )
    codecOptions: dict[str, Any] = dict(options.codecOptions or {})
    refused = sorted(key for key in codecOptions if key not in _ALLOWED_CODEC_OPTIONS)
    if refused:
        raise UnsupportedError(
            f"a pre-encoded source is sent as it is: codecOptions {', '.join(refused)} cannot apply"
        )
    if info.kind == "audio":
        stereo = info.channels == 2
        if "opusStereo" in codecOptions and bool(codecOptions["opusStereo"]) != stereo:
            raise UnsupportedError(
                f"codecOptions opusStereo={codecOptions['opusStereo']} but the source's Opus "
                f"packets have {info.channels} channel(s)"
            )
        codecOptions["opusStereo"] = stereo
    encodings = _encodings(options.encodings, info)
    updated = dataclasses.replace(
        options,
        codec=codec,
        encodings=encodings,
        codecOptions=codecOptions or None,  # type: ignore[arg-type]
    )
    return updated, info


def passthroughPipelineFactory(info: EncodedStreamInfo) -> PipelineFactory:
    def make(config: SendConfig, streams: list[RtpStream]) -> MediaPipeline:
        if config.kind == "video":
            return PassthroughVideoPipeline(config, streams, info)
        return PassthroughAudioPipeline(config, streams[0], info)

    return make


def checkTrackReplacement(pipeline: MediaPipeline, track: Any) -> None:
    """Before ``replaceTrack``: a pre-encoded producer takes only another pre-encoded source
    of the same codec (profile) and renditions, and an encoding producer no pre-encoded one.
    The new source then gets the producer's key-frame requests."""
    if track is None:
        return
    info = encodedStreamInfo(track)
    passthrough = isinstance(pipeline, PassthroughVideoPipeline | PassthroughAudioPipeline)
    if not passthrough:
        if info is not None:
            raise UnsupportedError(
                "a pre-encoded source cannot replace the track of an encoding producer: "
                "produce it on a producer of its own"
            )
        return
    assert isinstance(pipeline, PassthroughVideoPipeline | PassthroughAudioPipeline)
    current = pipeline.info
    if info is None:
        raise UnsupportedError(
            "this producer sends a pre-encoded source: only another pre-encoded source "
            "(or None) can replace it"
        )
    same_profile = current.profileLevelId is None or (
        info.profileLevelId is not None
        and h264.isSameProfile(
            {"profile-level-id": current.profileLevelId},
            {"profile-level-id": info.profileLevelId},
        )
    )
    if (
        info.mimeType.lower() != current.mimeType.lower()
        or not same_profile
        or len(info.renditions) != len(current.renditions)
        or info.channels != current.channels
    ):
        raise UnsupportedError(
            f"the producer sends {_sourceName(current)} ({len(current.renditions)} "
            f"rendition(s)); the new source is {_sourceName(info)} "
            f"({len(info.renditions)} rendition(s))"
        )
    pipeline.setKeyFrameListener(info)


# Internals.


def _sourceName(info: EncodedStreamInfo) -> str:
    if info.profileLevelId is not None:
        return f"{info.mimeType} profile-level-id {describeProfile(info.profileLevelId)}"
    return info.mimeType


def _codecName(codec: Any) -> str:
    name = str(codec.get("mimeType", "?"))
    profile = (codec.get("parameters") or {}).get("profile-level-id")
    return f"{name} profile-level-id {describeProfile(str(profile))}" if profile else name


def _sameCodec(asked: Any, chosen: RtpCodecCapability) -> bool:
    if str(asked.get("mimeType", "")).lower() != chosen["mimeType"].lower():
        return False
    if chosen["mimeType"].lower() != "video/h264":
        return True
    parameters = asked.get("parameters") or {}
    return "profile-level-id" not in parameters or bool(
        h264.isSameProfile(parameters, chosen.get("parameters") or {})
    )


def _routerCodec(info: EncodedStreamInfo, extended: ExtendedRtpCapabilities) -> RtpCodecCapability:
    mime = info.mimeType.lower()
    same_mime = [
        c for c in extended["codecs"] if c["kind"] == info.kind and c["mimeType"].lower() == mime
    ]
    for candidate in same_mime:
        parameters = candidate["remoteParameters"]
        if mime == "video/h264":
            if int(parameters.get("packetization-mode", 0)) != 1:
                continue  # the packetizer writes mode 1 (FU-A, STAP-A)
            if info.profileLevelId is None or not h264.isSameProfile(
                {"profile-level-id": info.profileLevelId}, parameters
            ):
                continue
        codec: RtpCodecCapability = {
            "kind": candidate["kind"],
            "mimeType": candidate["mimeType"],
            "preferredPayloadType": candidate["remotePayloadType"],
            "clockRate": candidate["clockRate"],
            "parameters": dict(parameters),
        }
        if "channels" in candidate:
            codec["channels"] = candidate["channels"]
        return codec
    if mime == "video/h264" and same_mime:
        offered = ", ".join(
            describeProfile(str(c["remoteParameters"].get("profile-level-id", "42001f")))
            + ("" if int(c["remoteParameters"].get("packetization-mode", 0)) == 1 else " mode 0")
            for c in same_mime
        )
        raise UnsupportedError(
            f"the source is {_sourceName(info)}; the H264 codecs the router and this client "
            f"share are {offered}: none has that profile"
        )
    shared = sorted({c["mimeType"] for c in extended["codecs"] if c["kind"] == info.kind})
    raise UnsupportedError(
        f"the source is {_sourceName(info)}, which the router does not take "
        f"(its {info.kind} codecs: {', '.join(shared) or 'none'})"
    )


def _encodings(
    encodings: list[RtpEncodingParameters], info: EncodedStreamInfo
) -> list[RtpEncodingParameters]:
    for encoding in encodings:
        asked = [name for name in _ENCODER_FIELDS if name in encoding]
        mode = encoding.get("scalabilityMode")
        if mode is not None and mode not in ("L1T1", "S1T1"):
            asked.append(f"scalabilityMode {mode}")
        if asked:
            raise UnsupportedError(
                f"a pre-encoded source is sent as it is: encodings cannot set {', '.join(asked)}"
            )
    count = len(info.renditions)
    if count > 1 and len(encodings) == 1 and set(encodings[0]) <= {"active"}:
        # No encodings given: one per rendition.
        encodings = [{"active": True} for _ in range(count)]
    if len(encodings) != count:
        raise TypeError(
            f"the source has {count} rendition(s) but {len(encodings)} encoding(s) were given "
            "(one encoding per rendition, lowest first)"
        )
    if count > 1:
        # Say what the renditions are: one temporal layer each (simulcast would otherwise
        # signal the L1T3 an encoder makes).
        encodings = [{**e, "scalabilityMode": "L1T1"} for e in encodings]
    return encodings
