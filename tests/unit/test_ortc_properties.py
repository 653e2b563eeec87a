"""Property tests: whatever JSON-like junk arrives as capabilities, only TypeError comes out."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mediasoup_client import ortc
from tests.fixtures.router_capabilities import nativeRtpCapabilities, routerRtpCapabilities

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["audio", "video", "audio/opus", "video/VP8", "video/rtx", "apt", "sendrecv"]),
    st.binary(max_size=4),
)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "codecs",
                    "headerExtensions",
                    "mimeType",
                    "kind",
                    "preferredPayloadType",
                    "clockRate",
                    "channels",
                    "parameters",
                    "rtcpFeedback",
                    "type",
                    "parameter",
                    "uri",
                    "preferredId",
                    "preferredEncrypt",
                    "direction",
                    "apt",
                    "profile-level-id",
                    "packetization-mode",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


def _mutate(caps: Any, path: list[Any], value: Any) -> Any:
    """Replace one nested value of a realistic capability set."""
    target = caps
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return caps


def _paths(value: Any, prefix: list[Any] | None = None) -> list[list[Any]]:
    prefix = prefix or []
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, [*prefix, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, [*prefix, index])
    return found


ROUTER_PATHS = _paths(routerRtpCapabilities())


@settings(max_examples=400, deadline=None)
@given(json_like)
def test_random_input_raises_only_type_error(caps: Any) -> None:
    with contextlib.suppress(TypeError):
        ortc.validateAndNormalizeRtpCapabilities(caps)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ROUTER_PATHS), json_like)
def test_one_broken_field_raises_only_type_error(path: list[Any], value: Any) -> None:
    caps = _mutate(routerRtpCapabilities(), path, value)
    try:
        ortc.validateAndNormalizeRtpCapabilities(caps)
    except TypeError:
        return
    # Whatever validated must also negotiate without crashing.
    local = nativeRtpCapabilities()
    ortc.validateAndNormalizeRtpCapabilities(local)
    extended = ortc.getExtendedRtpCapabilities(local, caps)
    ortc.getRecvRtpCapabilities(extended)
    ortc.getSendRtpCapabilities(extended)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ROUTER_PATHS), json_like)
def test_validation_is_idempotent(path: list[Any], value: Any) -> None:
    caps = _mutate(routerRtpCapabilities(), path, value)
    try:
        ortc.validateAndNormalizeRtpCapabilities(caps)
    except TypeError:
        return
    once = copy.deepcopy(caps)
    ortc.validateAndNormalizeRtpCapabilities(caps)
    assert repr(caps) == repr(once)


def test_self_negotiation_keeps_every_codec() -> None:
    caps = routerRtpCapabilities()
    ortc.validateAndNormalizeRtpCapabilities(caps)
    extended = ortc.getExtendedRtpCapabilities(caps, copy.deepcopy(caps))
    media = [c for c in caps["codecs"] if c["mimeType"].lower() != "video/rtx"]
    assert len(extended["codecs"]) == len(media)
    assert all(c["localRtxPayloadType"] for c in extended["codecs"] if c["kind"] == "video")
