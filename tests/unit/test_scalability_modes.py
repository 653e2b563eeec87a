"""parseScalabilityMode as mediasoup-client's, and the engine's check of what it produces."""

from __future__ import annotations

import pytest

from mediasoup_client import UnsupportedError, parseScalabilityMode
from mediasoup_client.scalability_modes import (
    ENGINE_SCALABILITY_MODES,
    checkScalabilityMode,
    simulcastScalabilityMode,
)


def test_parse_like_mediasoup_client() -> None:
    assert parseScalabilityMode("L1T3") == {"spatialLayers": 1, "temporalLayers": 3, "ksvc": False}
    assert parseScalabilityMode("S3T3_KEY") == {
        "spatialLayers": 3,
        "temporalLayers": 3,
        "ksvc": True,
    }
    assert parseScalabilityMode("L12T2") == {
        "spatialLayers": 12,
        "temporalLayers": 2,
        "ksvc": False,
    }
    for nothing in (None, "", "foo", "T3"):
        assert parseScalabilityMode(nothing) == {
            "spatialLayers": 1,
            "temporalLayers": 1,
            "ksvc": False,
        }


def test_check_refuses_what_the_engine_cannot_produce() -> None:
    vp8 = ENGINE_SCALABILITY_MODES["video/vp8"]
    for mode in ("L1T1", "L1T2", "L1T3"):
        checkScalabilityMode(mode, "video/VP8", vp8)
    for mode in ("L1T4", "L2T1", "S2T3", "L3T3_KEY"):
        with pytest.raises(UnsupportedError, match=mode):
            checkScalabilityMode(mode, "video/VP8", vp8)
    with pytest.raises(UnsupportedError, match="video/H264"):
        checkScalabilityMode("L1T2", "video/H264", ENGINE_SCALABILITY_MODES["video/h264"])
    for malformed in ("l1t3", "L1T3x", "", 3, None):
        with pytest.raises(TypeError):
            checkScalabilityMode(malformed, "video/VP8", vp8)


def test_simulcast_mode_follows_mediasoup_clients_chrome_handler() -> None:
    vp8 = ENGINE_SCALABILITY_MODES["video/vp8"]
    two: list[dict[str, object]] = [{}, {}]
    # One encoding: no simulcast, nothing added.
    assert simulcastScalabilityMode([{}], vp8) is None
    assert simulcastScalabilityMode([{"scalabilityMode": "L1T2"}], vp8) is None
    # A missing mode counts as Chrome's three temporal layers; the most asked wins.
    assert simulcastScalabilityMode(two, vp8) == "L1T3"
    assert simulcastScalabilityMode([{"scalabilityMode": "L1T2"}, {}], vp8) == "L1T3"
    assert simulcastScalabilityMode([{"scalabilityMode": "L1T1"}] * 2, vp8) == "L1T1"
    assert (
        simulcastScalabilityMode([{"scalabilityMode": "L1T1"}, {"scalabilityMode": "L1T2"}], vp8)
        == "L1T2"
    )
    # The default goes no higher than the engine produces for the codec ...
    assert simulcastScalabilityMode(two, ENGINE_SCALABILITY_MODES["video/h264"]) == "L1T1"
    assert simulcastScalabilityMode(two, frozenset({"L1T1", "L1T2"})) == "L1T2"
    # ... but an explicit mode is never lowered (the engine's check refuses it).
    assert (
        simulcastScalabilityMode(
            [{"scalabilityMode": "L1T3"}, {}], ENGINE_SCALABILITY_MODES["video/h264"]
        )
        == "L1T3"
    )
