"""Pure mappings from command-line options to the library's produce() options and room URLs.

No I/O here, so every rule is unit-tested without a network.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..types import ProducerCodecOptions, RtpCapabilities, RtpCodecCapability, RtpEncodingParameters

VIDEO_CODECS = ("vp8", "h264", "vp9")
OPUS_PTIMES = (10, 20, 40, 60)
# Below this a simulcast layer carries nothing useful.
MIN_LAYER_BITRATE = 30_000
MIN_LAYER_SIZE = 16

# The encoding fields mediasoup-client accepts from applications (rid/ssrc are the library's).
_ENCODING_FIELDS: dict[str, tuple[type, ...]] = {
    "active": (bool,),
    "maxBitrate": (int,),
    "maxFramerate": (int, float),
    "scaleResolutionDownBy": (int, float),
    "scalabilityMode": (str,),
    "dtx": (bool,),
    "priority": (str,),
    "networkPriority": (str,),
    "adaptivePtime": (bool,),
}


class CliError(Exception):
    """Ends the command with this one line on stderr and a non-zero exit code."""

    def __init__(self, message: str, exitCode: int = 1) -> None:
        super().__init__(message)
        self.exitCode = exitCode


def defaultMaxBitrate(width: int, height: int, fps: float) -> int:
    """About 0.1 bit per pixel: 640x480 at 30 fps gets ~920 kbps."""
    return int(min(4_000_000, max(150_000, width * height * fps * 0.1)))


def simulcastEncodings(
    layers: int, maxBitrate: int, *, width: int, height: int
) -> list[RtpEncodingParameters]:
    """``layers`` encodings, index 0 the lowest: each step down halves width and height and
    gets a quarter of the bitrate (floored, and always rising towards the top)."""
    if layers < 1:
        raise CliError("--simulcast needs at least 1 layer")
    smallest = 2 ** (layers - 1)
    if width // smallest < MIN_LAYER_SIZE or height // smallest < MIN_LAYER_SIZE:
        raise CliError(
            f"--simulcast {layers} is too many layers for {width}x{height} "
            f"(the lowest would be smaller than {MIN_LAYER_SIZE} pixels)"
        )
    if maxBitrate < MIN_LAYER_BITRATE * layers:
        raise CliError(
            f"--max-bitrate {maxBitrate} is too low for {layers} layers "
            f"(needs at least {MIN_LAYER_BITRATE * layers})"
        )
    encodings: list[RtpEncodingParameters] = []
    for index in range(layers):
        down = 2 ** (layers - 1 - index)
        bitrate = max(maxBitrate // (down * down), MIN_LAYER_BITRATE * (index + 1))
        encodings.append({"scaleResolutionDownBy": float(down), "maxBitrate": bitrate})
    return encodings


def parseEncodings(text: str) -> list[RtpEncodingParameters]:
    """``--encodings``: a JSON list of encoding objects, index 0 the lowest layer."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise CliError(f"--encodings is not valid JSON: {error}") from None
    if not isinstance(value, list) or not value:
        raise CliError("--encodings must be a non-empty JSON list of objects")
    encodings: list[RtpEncodingParameters] = []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise CliError(f"--encodings[{index}] must be an object")
        for key, field in entry.items():
            types = _ENCODING_FIELDS.get(key)
            if types is None:
                known = ", ".join(_ENCODING_FIELDS)
                raise CliError(f"--encodings[{index}]: unknown field {key!r} (known: {known})")
            # bool is an int in Python: only accept it where a bool is meant.
            if not isinstance(field, types) or (isinstance(field, bool) and bool not in types):
                raise CliError(f"--encodings[{index}].{key} has the wrong type")
        scale = entry.get("scaleResolutionDownBy")
        if scale is not None and scale < 1:
            raise CliError(f"--encodings[{index}].scaleResolutionDownBy must be >= 1")
        bitrate = entry.get("maxBitrate")
        if bitrate is not None and bitrate <= 0:
            raise CliError(f"--encodings[{index}].maxBitrate must be positive")
        encodings.append(entry)  # type: ignore[arg-type]  # checked field by field above
    return encodings


def videoEncodings(
    *,
    simulcast: int | None,
    encodings: str | None,
    maxBitrate: int | None,
    width: int,
    height: int,
    fps: float,
) -> list[RtpEncodingParameters] | None:
    """The ``encodings`` of the video producer from --simulcast/--encodings/--max-bitrate
    (``None``: one encoding with the library's defaults)."""
    if simulcast is not None and encodings is not None:
        raise CliError("give either --simulcast or --encodings, not both")
    if encodings is not None:
        if maxBitrate is not None:
            raise CliError("with --encodings, put maxBitrate inside the JSON")
        return parseEncodings(encodings)
    if maxBitrate is not None and maxBitrate <= 0:
        raise CliError("--max-bitrate must be positive")
    top = maxBitrate if maxBitrate is not None else defaultMaxBitrate(width, height, fps)
    if simulcast is None or simulcast == 1:
        if simulcast is None and maxBitrate is None:
            return None
        return [{"maxBitrate": top}]
    return simulcastEncodings(simulcast, top, width=width, height=height)


def audioCodecOptions(
    *, stereo: bool = False, fec: bool = False, dtx: bool = False, ptime: int | None = None
) -> ProducerCodecOptions | None:
    """Opus ``codecOptions``; ``None`` when nothing was asked (the library's defaults)."""
    options: ProducerCodecOptions = {}
    if stereo:
        options["opusStereo"] = True
    if fec:
        options["opusFec"] = True
    if dtx:
        options["opusDtx"] = True
    if ptime is not None:
        if ptime not in OPUS_PTIMES:
            raise CliError(f"--opus-ptime must be one of {', '.join(map(str, OPUS_PTIMES))}")
        options["opusPtime"] = ptime
    return options or None


def pickVideoCodec(sendRtpCapabilities: RtpCapabilities, name: str) -> RtpCodecCapability:
    """The device's codec for ``--codec name``, given what both ends support."""
    if name.lower() not in VIDEO_CODECS:
        raise CliError(f"unsupported codec {name!r} (choose from {', '.join(VIDEO_CODECS)})")
    wanted = f"video/{name.lower()}"
    codecs = sendRtpCapabilities.get("codecs", [])
    for codec in codecs:
        if codec["mimeType"].lower() == wanted:
            return codec
    shared = sorted(
        {
            c["mimeType"].split("/")[1].lower()
            for c in codecs
            if c["kind"] == "video" and c["mimeType"].lower() != "video/rtx"
        }
    )
    raise CliError(
        f"codec {name} cannot be sent to this router "
        f"(this client and the router share: {', '.join(shared) or 'no video codec'})"
    )


def roomUrl(
    url: str, *, roomId: str | None = None, peerId: str | None = None, needRoom: bool = False
) -> str:
    """Check a ws:// or wss:// room URL and complete its ``roomId``/``peerId`` query
    (mediasoup-demo's): ``roomId`` from the URL, else ``roomId``, else a random one unless
    ``needRoom``; ``peerId`` from the URL, else ``peerId``, else a random one."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError as error:
        raise CliError(f"invalid room URL {url!r}: {error}") from None
    if parts.scheme not in ("ws", "wss"):
        shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise CliError(f"the room URL must start with ws:// or wss:// (got {shown}): {url}")
    if not parts.hostname:
        raise CliError(f"the room URL has no host: {url}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if roomId is not None and query.get("roomId") and query["roomId"] != roomId:
        raise CliError(f"--room {roomId} contradicts the URL's roomId={query['roomId']}")
    if not query.get("roomId"):
        if roomId:
            query["roomId"] = roomId
        elif needRoom:
            raise CliError(f"the room URL has no roomId (add ?roomId=... or --room): {url}")
        else:
            query["roomId"] = randomId()
    if not query.get("peerId"):
        query["peerId"] = peerId or randomId()
    return urlunsplit(parts._replace(path=parts.path or "/", query=urlencode(query)))


def withoutPeer(url: str) -> str:
    """The URL another peer should use to join the same room (a peerId of its own)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "peerId"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def randomId() -> str:
    return uuid.uuid4().hex[:8]


def jsonDumps(value: Any) -> str:
    """One JSON line (compact; non-JSON values as strings so a line is never lost)."""
    return json.dumps(value, separators=(",", ":"), default=str)


def parseBitrate(text: str) -> int:
    """``800000``, ``800k``, ``1.5M`` (bits per second)."""
    value = text.strip().lower().removesuffix("bps").removesuffix("bit/s")
    scale = 1
    if value[-1:] in ("k", "m"):
        scale = 1000 if value[-1] == "k" else 1_000_000
        value = value[:-1]
    try:
        bitrate = int(float(value) * scale)
    except ValueError:
        raise ValueError(f"invalid bitrate {text!r} (e.g. 800000, 800k, 1.5M)") from None
    if bitrate <= 0:
        raise ValueError(f"the bitrate must be positive (got {text!r})")
    return bitrate
