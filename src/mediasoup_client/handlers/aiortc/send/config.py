"""The send configuration of one producer, derived once from its final ``rtpParameters``.

Everything the send path needs from the signalled parameters and the ``codecOptions`` is read
here and nowhere else: codec and payload types, RTX, header-extension ids, mid, cname, one
``EncodingState`` per encoding (the only copy of the encoding fields the sender changes at run
time), Opus settings and DTX, and the video bitrate bounds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ....scalability_modes import parseScalabilityMode
from ....types import (
    MediaKind,
    ProducerCodecOptions,
    RtpCodecParameters,
    RtpEncodingParameters,
    RtpParameters,
)
from .bitrate import BudgetOptions
from .encoders import OpusSettings, opusCutoff, opusDefaultBitrate, opusFrameDuration

# The encoding fields a sender applies at run time (setRtpEncodingParameters).
_MUTABLE_FIELDS = ("active", "maxBitrate", "maxFramerate", "scaleResolutionDownBy", "dtx")


@dataclass(slots=True)
class EncodingState:
    """One encoding as the sender applies it now (index 0 the lowest simulcast layer)."""

    index: int
    ssrc: int
    rid: str | None = None
    rtxSsrc: int | None = None
    active: bool = True
    maxBitrate: int | None = None
    maxFramerate: float | None = None
    scaleResolutionDownBy: float | None = None
    scalabilityMode: str | None = None
    temporalLayers: int = 1
    dtx: bool = False

    def update(self, params: dict[str, Any]) -> None:
        """Apply the fields of ``params`` a sender can change; others are not encoding state."""
        for name in _MUTABLE_FIELDS:
            if name not in params:
                continue
            value = params[name]
            if name in ("active", "dtx"):
                setattr(self, name, value is not False if name == "active" else bool(value))
            elif name == "maxBitrate":
                self.maxBitrate = _positiveInt(value)
            else:
                setattr(self, name, _positiveFloat(value))

    def asParameters(self) -> RtpEncodingParameters:
        """The encoding in mediasoup's wire format (what getParameters would show)."""
        encoding: dict[str, Any] = {"ssrc": self.ssrc, "active": self.active}
        if self.rid is not None:
            encoding["rid"] = self.rid
        if self.rtxSsrc is not None:
            encoding["rtx"] = {"ssrc": self.rtxSsrc}
        for name in ("maxBitrate", "maxFramerate", "scaleResolutionDownBy", "scalabilityMode"):
            value = getattr(self, name)
            if value is not None:
                encoding[name] = value
        if self.dtx:
            encoding["dtx"] = True
        return encoding  # type: ignore[return-value]


@dataclass(slots=True)
class SendConfig:
    kind: MediaKind
    mimeType: str  # lower case
    codec: RtpCodecParameters
    payloadType: int
    rtxPayloadType: int | None
    clockRate: int
    mid: str | None
    cname: str | None
    extensionIds: dict[str, int]
    encodings: list[EncodingState]
    # Audio only.
    opus: OpusSettings | None = None
    dtx: bool = False
    # Video only.
    budget: BudgetOptions = field(default_factory=BudgetOptions)


SUPPORTED_MIME_TYPES = ("audio/opus", "video/vp8", "video/vp9", "video/h264")


def sendConfig(
    rtpParameters: RtpParameters, codecOptions: ProducerCodecOptions | None = None
) -> SendConfig:
    """Read ``rtpParameters`` (router payload types and extension ids, ssrcs, rids) and the
    producer's ``codecOptions``. ``TypeError`` for parameters the send path cannot honour."""
    codecs = rtpParameters.get("codecs") or []
    if not codecs:
        raise TypeError("rtpParameters has no codecs")
    codec = codecs[0]
    mime_type = codec["mimeType"].lower()
    if mime_type not in SUPPORTED_MIME_TYPES:
        raise TypeError(f"cannot send {codec['mimeType']}")
    kind: MediaKind = "audio" if mime_type.startswith("audio/") else "video"
    wanted: list[RtpEncodingParameters] = list(rtpParameters.get("encodings") or [{}])
    if kind == "audio":
        wanted = wanted[:1]
    encodings = [_encodingState(index, encoding) for index, encoding in enumerate(wanted)]
    config = SendConfig(
        kind=kind,
        mimeType=mime_type,
        codec=codec,
        payloadType=codec["payloadType"],
        rtxPayloadType=_rtxPayloadType(codecs, codec["payloadType"]),
        clockRate=codec["clockRate"],
        mid=rtpParameters.get("mid"),
        cname=(rtpParameters.get("rtcp") or {}).get("cname"),
        extensionIds={
            ext["uri"]: ext["id"] for ext in rtpParameters.get("headerExtensions") or []
        },
        encodings=encodings,
    )
    if kind == "audio":
        config.opus, dtx = opusSettings(codec, codecOptions)
        config.dtx = dtx or encodings[0].dtx
    else:
        config.budget = videoBudget(codec, codecOptions)
    return config


def _encodingState(index: int, encoding: RtpEncodingParameters) -> EncodingState:
    rtx = encoding.get("rtx")
    mode = encoding.get("scalabilityMode")
    state = EncodingState(
        index=index,
        ssrc=encoding.get("ssrc") or random.getrandbits(32),
        rid=encoding.get("rid"),
        rtxSsrc=rtx["ssrc"] if rtx else None,
        scalabilityMode=mode,
        temporalLayers=parseScalabilityMode(mode)["temporalLayers"] if mode else 1,
    )
    state.update(dict(encoding))
    return state


def _rtxPayloadType(codecs: list[RtpCodecParameters], payloadType: int) -> int | None:
    for codec in codecs:
        if codec["mimeType"].lower().endswith("/rtx"):
            apt = (codec.get("parameters") or {}).get("apt")
            if apt is not None and int(apt) == payloadType:
                return codec["payloadType"]
    return None


def _positiveInt(value: object) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value)
    return None


def _positiveFloat(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _kbps(value: object) -> int | None:
    kbps = _positiveFloat(value)
    return int(kbps * 1000) if kbps is not None else None


def videoBudget(codec: RtpCodecParameters, options: ProducerCodecOptions | None) -> BudgetOptions:
    """videoGoogle{Start,Max,Min}Bitrate (kbps), from codecOptions or the codec parameters."""
    parameters = codec.get("parameters") or {}
    opts: dict[str, Any] = dict(options or {})

    def pick(option: str, parameter: str) -> int | None:
        return _kbps(opts[option]) if option in opts else _kbps(parameters.get(parameter))

    return BudgetOptions(
        startBitrate=pick("videoGoogleStartBitrate", "x-google-start-bitrate"),
        maxBitrate=pick("videoGoogleMaxBitrate", "x-google-max-bitrate"),
        minBitrate=pick("videoGoogleMinBitrate", "x-google-min-bitrate"),
    )


def opusSettings(
    codec: RtpCodecParameters, options: ProducerCodecOptions | None
) -> tuple[OpusSettings, bool]:
    """The Opus encoder settings and whether DTX is on, from codecOptions (first) or the
    codec parameters they were written into."""
    parameters = codec.get("parameters") or {}
    opts: dict[str, Any] = dict(options or {})

    def flag(option: str, parameter: str, default: bool = False) -> bool:
        if option in opts:
            return bool(opts[option])
        value = parameters.get(parameter)
        return default if value is None else str(value) in ("1", "true", "True")

    def number(option: str, parameter: str) -> int | None:
        value = opts.get(option, parameters.get(parameter))
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return _positiveInt(value)

    channels = 2 if flag("opusStereo", "stereo") else 1
    max_playback_rate = number("opusMaxPlaybackRate", "maxplaybackrate")
    max_average = number("opusMaxAverageBitrate", "maxaveragebitrate")
    bitrate = (
        max(6000, min(510000, max_average))
        if max_average
        else opusDefaultBitrate(channels, max_playback_rate)
    )
    settings = OpusSettings(
        channels=channels,
        frameDuration=opusFrameDuration(number("opusPtime", "ptime")),
        bitrate=bitrate,
        fec=flag("opusFec", "useinbandfec"),
        cutoff=opusCutoff(max_playback_rate),
    )
    return settings, flag("opusDtx", "usedtx")
