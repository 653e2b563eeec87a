"""Pure ORTC logic: validating capabilities and parameters, negotiating codecs (no I/O).

Behaves as mediasoup-client's ``ortc`` module (3.24.x): the same checks in the same order,
the same ``TypeError`` messages, the same normalisation (defaults filled in place), the same
codec matching (H264 profile via ``h264_profile_level_id``, VP9 ``profile-id``) and RTX
pairing. Inputs come straight from JSON, so every check is written for arbitrary values: a
malformed input raises ``TypeError`` and nothing else.
"""

from __future__ import annotations

import copy
import re
from typing import Any, cast

import h264_profile_level_id as h264

from .types import (
    ExtendedRtpCapabilities,
    ExtendedRtpCodecCapability,
    ExtendedRtpHeaderExtension,
    MediaKind,
    RtcpFeedback,
    RtpCapabilities,
    RtpCodecCapability,
    RtpCodecParameters,
    RtpParameters,
)

RTP_PROBATOR_MID = "probator"
RTP_PROBATOR_SSRC = 1234
RTP_PROBATOR_CODEC_PAYLOAD_TYPE = 127

_MIME_TYPE_REGEX = re.compile(r"^(audio|video)/(.+)", re.IGNORECASE)
_TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
_ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def _isNumber(value: Any) -> bool:
    """JavaScript's ``typeof value === 'number'`` for JSON values (a bool is not a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _isInt(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _isNonEmptyStr(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _truthy(value: Any) -> bool:
    """JavaScript truthiness, which the reference checks rely on: empty lists and dicts are
    true, while None, False, 0, NaN and "" are false."""
    if value is None or value is False or value == "":
        return False
    if _isNumber(value):
        return bool(value == value and value != 0)  # NaN is false
    return True


# Validation and normalisation.


def validateAndNormalizeRtpCapabilities(caps: Any) -> None:
    """Validate router or native capabilities, filling defaults in place."""
    if not isinstance(caps, dict):
        raise TypeError("caps is not an object")
    codecs = caps.get("codecs")
    if _truthy(codecs) and not isinstance(codecs, list):
        raise TypeError("caps.codecs is not an array")
    if not _truthy(codecs):
        caps["codecs"] = []
    for codec in caps["codecs"]:
        validateAndNormalizeRtpCodecCapability(codec)
    extensions = caps.get("headerExtensions")
    if _truthy(extensions) and not isinstance(extensions, list):
        raise TypeError("caps.headerExtensions is not an array")
    if not _truthy(extensions):
        caps["headerExtensions"] = []
    for ext in caps["headerExtensions"]:
        validateAndNormalizeRtpHeaderExtension(ext)


def validateAndNormalizeRtpCodecCapability(codec: Any) -> None:
    if not isinstance(codec, dict):
        raise TypeError("codec is not an object")
    kind = _validateMimeType(codec)
    codec["kind"] = kind
    if not _isInt(codec.get("preferredPayloadType")):
        raise TypeError("missing codec.preferredPayloadType")
    if not _isNumber(codec.get("clockRate")):
        raise TypeError("missing codec.clockRate")
    _normalizeChannels(codec, kind)
    _validateAndNormalizeCodecParameters(codec)
    _validateAndNormalizeCodecFeedback(codec)


def validateAndNormalizeRtcpFeedback(fb: Any) -> None:
    if not isinstance(fb, dict):
        raise TypeError("fb is not an object")
    if not _isNonEmptyStr(fb.get("type")):
        raise TypeError("missing fb.type")
    if not _isNonEmptyStr(fb.get("parameter")):
        fb["parameter"] = ""


def validateAndNormalizeRtpHeaderExtension(ext: Any) -> None:
    if not isinstance(ext, dict):
        raise TypeError("ext is not an object")
    if ext.get("kind") not in ("audio", "video"):
        raise TypeError("invalid ext.kind")
    if not _isNonEmptyStr(ext.get("uri")):
        raise TypeError("missing ext.uri")
    if not _isNumber(ext.get("preferredId")):
        raise TypeError("missing ext.preferredId")
    encrypt = ext.get("preferredEncrypt")
    if _truthy(encrypt) and not isinstance(encrypt, bool):
        raise TypeError("invalid ext.preferredEncrypt")
    if not _truthy(encrypt):
        ext["preferredEncrypt"] = False
    direction = ext.get("direction")
    if _truthy(direction) and not isinstance(direction, str):
        raise TypeError("invalid ext.direction")
    if not _truthy(direction):
        ext["direction"] = "sendrecv"


def validateAndNormalizeRtpParameters(params: Any) -> None:
    """Validate producer/consumer RTP parameters, filling defaults in place."""
    if not isinstance(params, dict):
        raise TypeError("params is not an object")
    mid = params.get("mid")
    if _truthy(mid) and not isinstance(mid, str):
        raise TypeError("params.mid is not a string")
    msid = params.get("msid")
    if _truthy(msid) and not isinstance(msid, str):
        raise TypeError("params.msid is not a string")
    if not isinstance(params.get("codecs"), list):
        raise TypeError("missing params.codecs")
    for codec in params["codecs"]:
        validateAndNormalizeRtpCodecParameters(codec)
    extensions = params.get("headerExtensions")
    if _truthy(extensions) and not isinstance(extensions, list):
        raise TypeError("params.headerExtensions is not an array")
    if not _truthy(extensions):
        params["headerExtensions"] = []
    for ext in params["headerExtensions"]:
        validateRtpHeaderExtensionParameters(ext)
    encodings = params.get("encodings")
    if _truthy(encodings) and not isinstance(encodings, list):
        raise TypeError("params.encodings is not an array")
    if not _truthy(encodings):
        params["encodings"] = []
    for encoding in params["encodings"]:
        validateAndNormalizeRtpEncodingParameters(encoding)
    rtcp = params.get("rtcp")
    if _truthy(rtcp) and not isinstance(rtcp, dict):
        raise TypeError("params.rtcp is not an object")
    if not _truthy(rtcp):
        params["rtcp"] = {}
    validateAndNormalizeRtcpParameters(params["rtcp"])


def validateAndNormalizeRtpCodecParameters(codec: Any) -> None:
    if not isinstance(codec, dict):
        raise TypeError("codec is not an object")
    kind = _validateMimeType(codec)
    if not _isInt(codec.get("payloadType")):
        raise TypeError("missing codec.payloadType")
    if not _isNumber(codec.get("clockRate")):
        raise TypeError("missing codec.clockRate")
    _normalizeChannels(codec, kind)
    _validateAndNormalizeCodecParameters(codec)
    _validateAndNormalizeCodecFeedback(codec)


def validateRtpHeaderExtensionParameters(ext: Any) -> None:
    if not isinstance(ext, dict):
        raise TypeError("ext is not an object")
    if not _isNonEmptyStr(ext.get("uri")):
        raise TypeError("missing ext.uri")
    if not _isNumber(ext.get("id")):
        raise TypeError("missing ext.id")
    encrypt = ext.get("encrypt")
    if _truthy(encrypt) and not isinstance(encrypt, bool):
        raise TypeError("invalid ext.encrypt")
    if not _truthy(encrypt):
        ext["encrypt"] = False
    if not isinstance(ext.get("parameters"), dict):
        ext["parameters"] = {}
    for key, value in list(ext["parameters"].items()):
        if value is None:
            ext["parameters"][key] = value = ""
        if not isinstance(value, str) and not _isNumber(value):
            raise TypeError("invalid header extension parameter")


def validateAndNormalizeRtpEncodingParameters(encoding: Any) -> None:
    if not isinstance(encoding, dict):
        raise TypeError("encoding is not an object")
    ssrc = encoding.get("ssrc")
    if _truthy(ssrc) and not _isNumber(ssrc):
        raise TypeError("invalid encoding.ssrc")
    rid = encoding.get("rid")
    if _truthy(rid) and not isinstance(rid, str):
        raise TypeError("invalid encoding.rid")
    rtx = encoding.get("rtx")
    if _truthy(rtx) and not isinstance(rtx, dict):
        raise TypeError("invalid encoding.rtx")
    if isinstance(rtx, dict) and not _isNumber(rtx.get("ssrc")):
        raise TypeError("missing encoding.rtx.ssrc")
    if not isinstance(encoding.get("dtx"), bool):
        encoding["dtx"] = False
    mode = encoding.get("scalabilityMode")
    if _truthy(mode) and not isinstance(mode, str):
        raise TypeError("invalid encoding.scalabilityMode")


def validateAndNormalizeRtcpParameters(rtcp: Any) -> None:
    if not isinstance(rtcp, dict):
        raise TypeError("rtcp is not an object")
    cname = rtcp.get("cname")
    if _truthy(cname) and not isinstance(cname, str):
        raise TypeError("invalid rtcp.cname")
    if not isinstance(rtcp.get("reducedSize"), bool) or not rtcp["reducedSize"]:
        rtcp["reducedSize"] = True


def validateAndNormalizeSctpStreamParameters(params: Any) -> None:
    if not isinstance(params, dict):
        raise TypeError("params is not an object")
    if not _isNumber(params.get("streamId")):
        raise TypeError("missing params.streamId")
    ordered_given = isinstance(params.get("ordered"), bool)
    if not ordered_given:
        params["ordered"] = True
    lifetime = params.get("maxPacketLifeTime")
    retransmits = params.get("maxRetransmits")
    if _truthy(lifetime) and not _isNumber(lifetime):
        raise TypeError("invalid params.maxPacketLifeTime")
    if _truthy(retransmits) and not _isNumber(retransmits):
        raise TypeError("invalid params.maxRetransmits")
    if _truthy(lifetime) and _truthy(retransmits):
        raise TypeError("cannot provide both maxPacketLifeTime and maxRetransmits")
    if ordered_given and params["ordered"] and (_truthy(lifetime) or _truthy(retransmits)):
        raise TypeError("cannot be ordered with maxPacketLifeTime or maxRetransmits")
    if not ordered_given and (_truthy(lifetime) or _truthy(retransmits)):
        params["ordered"] = False
    label = params.get("label")
    if _truthy(label) and not isinstance(label, str):
        raise TypeError("invalid params.label")
    protocol = params.get("protocol")
    if _truthy(protocol) and not isinstance(protocol, str):
        raise TypeError("invalid params.protocol")


def validateSctpCapabilities(caps: Any) -> None:
    if not isinstance(caps, dict):
        raise TypeError("caps is not an object")
    num_streams = caps.get("numStreams")
    if not isinstance(num_streams, dict):
        raise TypeError("missing caps.numStreams")
    _validateNumSctpStreams(num_streams)


def validateSctpParameters(params: Any) -> None:
    if not isinstance(params, dict):
        raise TypeError("params is not an object")
    for field in ("port", "OS", "MIS", "maxMessageSize"):
        if not _isNumber(params.get(field)):
            raise TypeError(f"missing params.{field}")


def _validateNumSctpStreams(numStreams: dict[str, Any]) -> None:
    if not _isNumber(numStreams.get("OS")):
        raise TypeError("missing numStreams.OS")
    if not _isNumber(numStreams.get("MIS")):
        raise TypeError("missing numStreams.MIS")


def _validateMimeType(codec: dict[str, Any]) -> MediaKind:
    mime_type = codec.get("mimeType")
    if not isinstance(mime_type, str) or not mime_type:
        raise TypeError("missing codec.mimeType")
    match = _MIME_TYPE_REGEX.match(mime_type)
    if match is None:
        raise TypeError("invalid codec.mimeType")
    return "audio" if match.group(1).lower() == "audio" else "video"


def _normalizeChannels(codec: dict[str, Any], kind: MediaKind) -> None:
    if kind == "audio":
        if not _isNumber(codec.get("channels")):
            codec["channels"] = 1
    else:
        codec.pop("channels", None)


def _validateAndNormalizeCodecParameters(codec: dict[str, Any]) -> None:
    if not isinstance(codec.get("parameters"), dict):
        codec["parameters"] = {}
    parameters = codec["parameters"]
    for key, value in list(parameters.items()):
        if value is None:
            parameters[key] = value = ""
        if not isinstance(value, str) and not _isNumber(value):
            raise TypeError(f"invalid codec parameter [key:{key}, value:{value!r}]")
        if key == "apt" and not _isNumber(value):
            raise TypeError("invalid codec apt parameter")


def _validateAndNormalizeCodecFeedback(codec: dict[str, Any]) -> None:
    if not isinstance(codec.get("rtcpFeedback"), list):
        codec["rtcpFeedback"] = []
    for fb in codec["rtcpFeedback"]:
        validateAndNormalizeRtcpFeedback(fb)


# Negotiation.


def getExtendedRtpCapabilities(
    localCaps: RtpCapabilities,
    remoteCaps: RtpCapabilities,
    preferLocalCodecsOrder: bool = False,
) -> ExtendedRtpCapabilities:
    """What both sides support: codecs matched strictly (payload types of both sides kept),
    RTX paired by ``apt``, header extensions matched by uri and kind."""
    local_codecs = localCaps.get("codecs", [])
    remote_codecs = remoteCaps.get("codecs", [])
    extended: ExtendedRtpCapabilities = {"codecs": [], "headerExtensions": []}
    matches: list[tuple[Any, Any]] = []

    if preferLocalCodecsOrder:
        for local in local_codecs:
            if _isRtxCodec(local):
                continue
            remote = _find(
                remote_codecs,
                lambda remote, local=local: matchCodecs(remote, local, strict=True, modify=True),
            )
            if remote is not None:
                matches.append((local, remote))
    else:
        for remote in remote_codecs:
            if _isRtxCodec(remote):
                continue
            local = _find(
                local_codecs,
                lambda local, remote=remote: matchCodecs(local, remote, strict=True, modify=True),
            )
            if local is not None:
                matches.append((local, remote))

    for local, remote in matches:
        extended_codec: ExtendedRtpCodecCapability = {
            "kind": local["kind"],
            "mimeType": local["mimeType"],
            "clockRate": local["clockRate"],
            "localPayloadType": local["preferredPayloadType"],
            "localRtxPayloadType": None,
            "remotePayloadType": remote["preferredPayloadType"],
            "remoteRtxPayloadType": None,
            "localParameters": local.get("parameters", {}),
            "remoteParameters": remote.get("parameters", {}),
            "rtcpFeedback": _reduceRtcpFeedback(local, remote),
        }
        if "channels" in local:
            extended_codec["channels"] = local["channels"]
        extended["codecs"].append(extended_codec)

    for extended_codec in extended["codecs"]:
        local_rtx = _findRtx(local_codecs, extended_codec["localPayloadType"])
        remote_rtx = _findRtx(remote_codecs, extended_codec["remotePayloadType"])
        if local_rtx is not None and remote_rtx is not None:
            extended_codec["localRtxPayloadType"] = local_rtx["preferredPayloadType"]
            extended_codec["remoteRtxPayloadType"] = remote_rtx["preferredPayloadType"]

    # The remote side's direction is mirrored: what it only receives, we only send.
    mirrored = {
        "sendrecv": "sendrecv",
        "recvonly": "sendonly",
        "sendonly": "recvonly",
        "inactive": "inactive",
    }
    for remote_ext in remoteCaps.get("headerExtensions", []):
        local_ext = _find(
            localCaps.get("headerExtensions", []),
            lambda local_ext, remote_ext=remote_ext: _matchHeaderExtensions(local_ext, remote_ext),
        )
        if local_ext is None:
            continue
        extended_ext: ExtendedRtpHeaderExtension = {
            "kind": remote_ext["kind"],
            "uri": remote_ext["uri"],
            "sendId": local_ext["preferredId"],
            "recvId": remote_ext["preferredId"],
            "encrypt": local_ext.get("preferredEncrypt", False),
            "direction": cast(
                Any, mirrored.get(remote_ext.get("direction", "sendrecv"), "sendrecv")
            ),
        }
        extended["headerExtensions"].append(extended_ext)
    return extended


def getRecvRtpCapabilities(extendedRtpCapabilities: ExtendedRtpCapabilities) -> RtpCapabilities:
    """What we can receive, in the remote side's payload types and extension ids."""
    return _getRtpCapabilities("recvonly", extendedRtpCapabilities)


def getSendRtpCapabilities(extendedRtpCapabilities: ExtendedRtpCapabilities) -> RtpCapabilities:
    """What we can send, in our own payload types and extension ids."""
    return _getRtpCapabilities("sendonly", extendedRtpCapabilities)


def getSendingRtpParameters(
    kind: MediaKind, extendedRtpCapabilities: ExtendedRtpCapabilities
) -> RtpParameters:
    """Parameters for sending ``kind``, with our local codec parameters."""
    return _getSendingParameters(kind, extendedRtpCapabilities, remote=False)


def getSendingRemoteRtpParameters(
    kind: MediaKind, extendedRtpCapabilities: ExtendedRtpCapabilities
) -> RtpParameters:
    """Parameters for sending ``kind`` with the remote side's codec parameters, keeping only
    the congestion-control feedback that the negotiated header extensions support."""
    params = _getSendingParameters(kind, extendedRtpCapabilities, remote=True)
    uris = {ext["uri"] for ext in params.get("headerExtensions", [])}
    if _TRANSPORT_CC_URI in uris:
        dropped = {"goog-remb"}
    elif _ABS_SEND_TIME_URI in uris:
        dropped = {"transport-cc"}
    else:
        dropped = {"transport-cc", "goog-remb"}
    for codec in params["codecs"]:
        codec["rtcpFeedback"] = [
            fb for fb in codec.get("rtcpFeedback", []) if fb["type"] not in dropped
        ]
    return params


def reduceCodecs(
    codecs: list[RtpCodecParameters], capCodec: RtpCodecCapability | None = None
) -> list[RtpCodecParameters]:
    """Keep one media codec (the first, or the one matching ``capCodec``) and its RTX."""
    if not codecs:
        return []
    if capCodec is None:
        reduced = [codecs[0]]
        if len(codecs) > 1 and _isRtxCodec(codecs[1]):
            reduced.append(codecs[1])
        return reduced
    if not isinstance(capCodec, dict) or not isinstance(capCodec.get("mimeType"), str):
        raise TypeError("no matching codec found")
    for index, codec in enumerate(codecs):
        if matchCodecs(codec, capCodec, strict=True):
            reduced = [codec]
            if index + 1 < len(codecs) and _isRtxCodec(codecs[index + 1]):
                reduced.append(codecs[index + 1])
            return reduced
    raise TypeError("no matching codec found")


def generateProbatorRtpParameters(videoRtpParameters: RtpParameters) -> RtpParameters:
    """The parameters of mediasoup's bandwidth probation stream (fixed mid, ssrc and pt)."""
    video = copy.deepcopy(videoRtpParameters)
    validateAndNormalizeRtpParameters(video)
    codec = video["codecs"][0]
    codec["payloadType"] = RTP_PROBATOR_CODEC_PAYLOAD_TYPE
    return {
        "mid": RTP_PROBATOR_MID,
        "codecs": [codec],
        "headerExtensions": video.get("headerExtensions", []),
        "encodings": [{"ssrc": RTP_PROBATOR_SSRC}],
        "rtcp": {"cname": "probator"},
    }


def canSend(kind: str, rtpCapabilities: RtpCapabilities) -> bool:
    """Whether the (sending) capabilities have any codec of ``kind``."""
    return any(codec.get("kind") == kind for codec in rtpCapabilities.get("codecs", []))


def canReceive(rtpParameters: RtpParameters, rtpCapabilities: RtpCapabilities) -> bool:
    """Whether the first media codec of ``rtpParameters`` is among the receive capabilities
    (compared by payload type, which the router assigned to both)."""
    validateAndNormalizeRtpParameters(rtpParameters)
    if not rtpParameters["codecs"]:
        return False
    first = rtpParameters["codecs"][0]
    return any(
        codec.get("preferredPayloadType") == first["payloadType"]
        for codec in rtpCapabilities.get("codecs", [])
    )


def matchCodecs(aCodec: Any, bCodec: Any, strict: bool = False, modify: bool = False) -> bool:
    """Whether two codecs (capabilities or parameters) are the same codec. ``strict`` also
    compares H264 packetization-mode/profile and VP9 profile-id; ``modify`` writes the
    negotiated H264 profile-level-id into both."""
    a_mime = aCodec.get("mimeType")
    b_mime = bCodec.get("mimeType")
    if not isinstance(a_mime, str) or not isinstance(b_mime, str):
        return False
    if a_mime.lower() != b_mime.lower():
        return False
    if aCodec.get("clockRate") != bCodec.get("clockRate"):
        return False
    if aCodec.get("channels") != bCodec.get("channels"):
        return False
    if not strict:
        return True
    a_params = aCodec.get("parameters") or {}
    b_params = bCodec.get("parameters") or {}
    mime = a_mime.lower()
    if mime == "video/h264":
        if a_params.get("packetization-mode", 0) != b_params.get("packetization-mode", 0):
            return False
        try:
            if not h264.isSameProfile(a_params, b_params):
                return False
            selected = h264.generateProfileLevelIdForAnswer(a_params, b_params)
        except (TypeError, ValueError, AttributeError, KeyError):
            return False
        if modify:
            for params in (
                aCodec.setdefault("parameters", a_params),
                bCodec.setdefault("parameters", b_params),
            ):
                if selected:
                    params["profile-level-id"] = selected
                else:
                    params.pop("profile-level-id", None)
    elif mime == "video/vp9" and a_params.get("profile-id", 0) != b_params.get("profile-id", 0):
        return False
    return True


# Internals.


def _getRtpCapabilities(
    direction: str, extendedRtpCapabilities: ExtendedRtpCapabilities
) -> RtpCapabilities:
    sending = direction == "sendonly"
    caps: RtpCapabilities = {"codecs": [], "headerExtensions": []}
    for ext_codec in extendedRtpCapabilities["codecs"]:
        payload_type = ext_codec["localPayloadType" if sending else "remotePayloadType"]
        codec: RtpCodecCapability = {
            "kind": ext_codec["kind"],
            "mimeType": ext_codec["mimeType"],
            "preferredPayloadType": payload_type,
            "clockRate": ext_codec["clockRate"],
            "parameters": ext_codec["localParameters"],
            "rtcpFeedback": ext_codec["rtcpFeedback"],
        }
        if "channels" in ext_codec:
            codec["channels"] = ext_codec["channels"]
        caps["codecs"].append(codec)
        local_rtx = ext_codec["localRtxPayloadType"]
        remote_rtx = ext_codec["remoteRtxPayloadType"]
        if not local_rtx or not remote_rtx:
            continue
        caps["codecs"].append(
            {
                "kind": ext_codec["kind"],
                "mimeType": f"{ext_codec['kind']}/rtx",
                "preferredPayloadType": local_rtx if sending else remote_rtx,
                "clockRate": ext_codec["clockRate"],
                "parameters": {"apt": payload_type},
                "rtcpFeedback": [],
            }
        )
    for ext in extendedRtpCapabilities["headerExtensions"]:
        if ext["direction"] not in ("sendrecv", direction):
            continue
        caps["headerExtensions"].append(
            {
                "kind": ext["kind"],
                "uri": ext["uri"],
                "preferredId": ext["sendId" if sending else "recvId"],
                "preferredEncrypt": ext["encrypt"],
                "direction": ext["direction"],
            }
        )
    return caps


def _getSendingParameters(
    kind: MediaKind, extendedRtpCapabilities: ExtendedRtpCapabilities, *, remote: bool
) -> RtpParameters:
    params: RtpParameters = {"codecs": [], "headerExtensions": [], "encodings": [], "rtcp": {}}
    for ext_codec in extendedRtpCapabilities["codecs"]:
        if ext_codec["kind"] != kind:
            continue
        codec: RtpCodecParameters = {
            "mimeType": ext_codec["mimeType"],
            "payloadType": ext_codec["localPayloadType"],
            "clockRate": ext_codec["clockRate"],
            "parameters": copy.deepcopy(
                ext_codec["remoteParameters" if remote else "localParameters"]
            ),
            "rtcpFeedback": copy.deepcopy(ext_codec["rtcpFeedback"]),
        }
        if "channels" in ext_codec:
            codec["channels"] = ext_codec["channels"]
        params["codecs"].append(codec)
        if ext_codec["localRtxPayloadType"]:
            params["codecs"].append(
                {
                    "mimeType": f"{kind}/rtx",
                    "payloadType": ext_codec["localRtxPayloadType"],
                    "clockRate": ext_codec["clockRate"],
                    "parameters": {"apt": ext_codec["localPayloadType"]},
                    "rtcpFeedback": [],
                }
            )
    for ext in extendedRtpCapabilities["headerExtensions"]:
        if ext["kind"] != kind or ext["direction"] not in ("sendrecv", "sendonly"):
            continue
        params["headerExtensions"].append(
            {"uri": ext["uri"], "id": ext["sendId"], "encrypt": ext["encrypt"], "parameters": {}}
        )
    return params


def _isRtxCodec(codec: Any) -> bool:
    mime_type = codec.get("mimeType") if isinstance(codec, dict) else None
    return isinstance(mime_type, str) and re.match(r".+/rtx$", mime_type, re.IGNORECASE) is not None


def _findRtx(codecs: list[Any], payloadType: int) -> Any:
    return _find(
        codecs,
        lambda codec: (
            _isRtxCodec(codec) and (codec.get("parameters") or {}).get("apt") == payloadType
        ),
    )


def _find(items: list[Any], predicate: Any) -> Any:
    return next((item for item in items if predicate(item)), None)


def _matchHeaderExtensions(a: Any, b: Any) -> bool:
    if a.get("kind") and b.get("kind") and a["kind"] != b["kind"]:
        return False
    return bool(a.get("uri") == b.get("uri"))


def _reduceRtcpFeedback(codecA: Any, codecB: Any) -> list[RtcpFeedback]:
    """The feedback entries of A that B also has (as B writes them)."""
    reduced: list[RtcpFeedback] = []
    for a_fb in codecA.get("rtcpFeedback", []):
        for b_fb in codecB.get("rtcpFeedback", []):
            same_parameter = b_fb.get("parameter") == a_fb.get("parameter") or (
                not b_fb.get("parameter") and not a_fb.get("parameter")
            )
            if b_fb["type"] == a_fb["type"] and same_parameter:
                reduced.append(b_fb)
                break
    return reduced
