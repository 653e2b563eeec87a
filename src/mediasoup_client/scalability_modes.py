"""Scalability modes ("L1T3", "S2T1", ...): parsing, as mediasoup-client does, and validation
against what an engine can really produce."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TypedDict

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
