"""Scalability modes ("L1T3", "S2T1", ...): parsing, as mediasoup-client does, and validation
against what an engine can really produce."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypedDict

from .errors import UnsupportedError

_MODE = re.compile(r"^[LS]([1-9]\d?)T([1-9]\d?)(_KEY)?")


# What the library's send path produces, per codec: libvpx's VP8 temporal layering, no
# spatial or temporal scalability for VP9 and H264 (the fake engine claims the same).
ENGINE_SCALABILITY_MODES: dict[str, frozenset[str]] = {
    "video/vp8": frozenset({"L1T1", "L1T2", "L1T3"}),
    "video/vp9": frozenset({"L1T1"}),
    "video/h264": frozenset({"L1T1"}),
}


class ScalabilityMode(TypedDict):
    spatialLayers: int
    temporalLayers: int
    ksvc: bool


def parseScalabilityMode(scalabilityMode: str | None = None) -> ScalabilityMode:
    """mediasoup-client's ``parseScalabilityMode``: the layer counts of a mode, or one spatial
    and one temporal layer when the string is missing or not a mode."""
    match = _MODE.match(scalabilityMode or "")
    if match is None:
        return {"spatialLayers": 1, "temporalLayers": 1, "ksvc": False}
    return {
        "spatialLayers": int(match.group(1)),
        "temporalLayers": int(match.group(2)),
        "ksvc": match.group(3) is not None,
    }


def checkScalabilityMode(
    scalabilityMode: object, mimeType: str, supported: Collection[str]
) -> None:
    """Raise unless ``scalabilityMode`` is a well-formed mode (``TypeError``) that the engine can
    produce for ``mimeType`` (``UnsupportedError``): the router would otherwise be told about
    layers that never arrive."""
    if not isinstance(scalabilityMode, str) or _MODE.fullmatch(scalabilityMode) is None:
        raise TypeError(f"invalid scalabilityMode {scalabilityMode!r}")
    if scalabilityMode not in supported:
        modes = ", ".join(sorted(supported)) or "none"
        raise UnsupportedError(
            f"scalabilityMode {scalabilityMode} cannot be produced with {mimeType} "
            f"(this engine produces: {modes})"
        )


# Chrome sends three temporal layers on every simulcast stream when none is asked for, and
# mediasoup-client's Chrome handler tells the router so.
DEFAULT_SIMULCAST_TEMPORAL_LAYERS = 3


def simulcastScalabilityMode(
    encodings: Sequence[Mapping[str, Any]], supported: Collection[str]
) -> str | None:
    """The mode mediasoup-client's Chrome handler gives every encoding of a simulcast producer
    (two or more encodings; None otherwise): ``L1T<n>`` with ``n`` the most temporal layers any
    encoding asks for, an encoding without a mode counting as three. The router needs the same
    count on every stream, and with temporal layers it can keep a consumer on a spatial layer by
    dropping frames when its bandwidth estimate is short of the layer's whole bitrate (a
    PlainTransport consumer starts at 600 kbps). Where the engine cannot produce the default for
    the codec, the most it can below it; an explicit mode is never lowered (the engine's check
    refuses it instead)."""
    if len(encodings) < 2:
        return None
    asked = [
        parseScalabilityMode(str(e["scalabilityMode"]))["temporalLayers"]
        for e in encodings
        if e.get("scalabilityMode") is not None
    ]
    explicit = max(asked, default=1)
    layers = explicit
    if len(asked) < len(encodings):
        layers = max(explicit, DEFAULT_SIMULCAST_TEMPORAL_LAYERS)
        while layers > explicit and f"L1T{layers}" not in supported:
            layers -= 1
    return f"L1T{layers}"
