"""Device: loading router capabilities, what it can produce, creating transports."""

from __future__ import annotations

from typing import Any

import pytest

from mediasoup_client import Device, FakeHandler, InvalidStateError
from tests.fixtures.router_capabilities import routerRtpCapabilities
from tests.unit.conftest import remoteTransportParameters


def newDevice() -> Device:
    return Device(handlerFactory=FakeHandler.createFactory())


def test_handler_name_and_not_loaded() -> None:
    device = newDevice()
    assert device.handlerName == "FakeHandler"
    assert device.loaded is False


@pytest.mark.parametrize(
    "prop", ["rtpCapabilities", "sendRtpCapabilities", "recvRtpCapabilities", "sctpCapabilities"]
)
def test_properties_before_load_raise_invalid_state(prop: str) -> None:
    with pytest.raises(InvalidStateError, match="not loaded"):
        getattr(newDevice(), prop)


def test_can_produce_before_load_raises_invalid_state() -> None:
    with pytest.raises(InvalidStateError, match="not loaded"):
        newDevice().canProduce("audio")


@pytest.mark.parametrize("method", ["createSendTransport", "createRecvTransport"])
def test_create_transport_before_load_raises_invalid_state(method: str) -> None:
    with pytest.raises(InvalidStateError, match="not loaded"):
        getattr(newDevice(), method)(**remoteTransportParameters())


async def test_load_with_router_capabilities() -> None:
    device = newDevice()
    await device.load(routerRtpCapabilities=routerRtpCapabilities())
    assert device.loaded
    assert device.canProduce("audio") is True
    assert device.canProduce("video") is True
    mime_types = {codec["mimeType"].lower() for codec in device.rtpCapabilities["codecs"]}
    assert {"audio/opus", "video/vp8", "video/rtx"} <= mime_types
    assert device.rtpCapabilities == device.recvRtpCapabilities
    assert device.sctpCapabilities == {"numStreams": {"OS": 1024, "MIS": 1024}}
    # Receive capabilities use the router's payload types, so the server can map them.
    router_pts = {c["preferredPayloadType"] for c in routerRtpCapabilities()["codecs"]}
    assert {c["preferredPayloadType"] for c in device.recvRtpCapabilities["codecs"]} <= router_pts


async def test_load_does_not_modify_the_given_capabilities() -> None:
    caps = routerRtpCapabilities()
    before = routerRtpCapabilities()
    await newDevice().load(routerRtpCapabilities=caps)
    assert caps == before


async def test_load_twice_raises_invalid_state() -> None:
    device = newDevice()
    await device.load(routerRtpCapabilities=routerRtpCapabilities())
    with pytest.raises(InvalidStateError, match="already loaded"):
        await device.load(routerRtpCapabilities=routerRtpCapabilities())


async def test_can_produce_invalid_kind_raises_type_error() -> None:
    device = newDevice()
    await device.load(routerRtpCapabilities=routerRtpCapabilities())
    with pytest.raises(TypeError):
        device.canProduce("chicken")


@pytest.mark.parametrize("caps", [{}, {"codecs": []}, {"codecs": [], "headerExtensions": []}])
async def test_load_without_codecs_loads_but_cannot_produce(caps: dict[str, Any]) -> None:
    device = newDevice()
    await device.load(routerRtpCapabilities=caps)
    assert device.loaded
    assert device.canProduce("audio") is False
    assert device.canProduce("video") is False


def _without_video(caps: dict[str, Any]) -> dict[str, Any]:
    caps["codecs"] = [c for c in caps["codecs"] if c["kind"] == "audio"]
    return caps


async def test_load_audio_only_router_cannot_produce_video() -> None:
    device = newDevice()
    await device.load(routerRtpCapabilities=_without_video(routerRtpCapabilities()))
    assert device.canProduce("audio") is True
    assert device.canProduce("video") is False


def _caps_with(mutate: Any) -> dict[str, Any]:
    caps = routerRtpCapabilities()
    mutate(caps)
    return caps


def _set(path: list[Any], value: Any) -> Any:
    def mutate(caps: dict[str, Any]) -> None:
        target = caps
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Any:
    def mutate(caps: dict[str, Any]) -> None:
        target = caps
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _rtx_index(caps: dict[str, Any]) -> int:
    return next(i for i, c in enumerate(caps["codecs"]) if c["mimeType"].lower() == "video/rtx")


def _set_rtx_apt(value: Any) -> Any:
    def mutate(caps: dict[str, Any]) -> None:
        caps["codecs"][_rtx_index(caps)]["parameters"]["apt"] = value

    return mutate


# Each invalid capability set of the contract, by the field it breaks.
INVALID_CAPABILITIES = {
    "caps not a dict": lambda: "not caps",
    "codecs not a list": lambda: _caps_with(_set(["codecs"], {"a": 1})),
    "codec not a dict": lambda: _caps_with(_set(["codecs", 0], "opus")),
    "missing mimeType": lambda: _caps_with(_delete(["codecs", 0, "mimeType"])),
    "invalid mimeType": lambda: _caps_with(_set(["codecs", 0, "mimeType"], "opus")),
    "mimeType not a str": lambda: _caps_with(_set(["codecs", 0, "mimeType"], 42)),
    "missing preferredPayloadType": lambda: _caps_with(
        _delete(["codecs", 0, "preferredPayloadType"])
    ),
    "preferredPayloadType not int": lambda: _caps_with(
        _set(["codecs", 0, "preferredPayloadType"], "100")
    ),
    "missing clockRate": lambda: _caps_with(_delete(["codecs", 0, "clockRate"])),
    "codec parameter of bad type": lambda: _caps_with(
        _set(["codecs", 0, "parameters"], {"foo": [1, 2]})
    ),
    "rtx with invalid apt": lambda: _caps_with(_set_rtx_apt("x")),
    "feedback not a dict": lambda: _caps_with(_set(["codecs", 0, "rtcpFeedback"], ["nack"])),
    "feedback without type": lambda: _caps_with(
        _set(["codecs", 0, "rtcpFeedback"], [{"parameter": "pli"}])
    ),
    "headerExtensions not a list": lambda: _caps_with(_set(["headerExtensions"], {})),
    "extension not a dict": lambda: _caps_with(_set(["headerExtensions", 0], 3)),
    "invalid extension kind": lambda: _caps_with(_set(["headerExtensions", 0, "kind"], "data")),
    "missing extension uri": lambda: _caps_with(_delete(["headerExtensions", 0, "uri"])),
    "missing extension preferredId": lambda: _caps_with(
        _delete(["headerExtensions", 0, "preferredId"])
    ),
    "non-bool preferredEncrypt": lambda: _caps_with(
        _set(["headerExtensions", 0, "preferredEncrypt"], "yes")
    ),
    "non-str direction": lambda: _caps_with(_set(["headerExtensions", 0, "direction"], 1)),
}


@pytest.mark.parametrize("case", sorted(INVALID_CAPABILITIES))
async def test_load_invalid_capabilities_raises_type_error_and_stays_usable(case: str) -> None:
    device = newDevice()
    with pytest.raises(TypeError):
        await device.load(routerRtpCapabilities=INVALID_CAPABILITIES[case]())
    assert device.loaded is False
    # The failed load left the device usable: a good load still works.
    await device.load(routerRtpCapabilities=routerRtpCapabilities())
    assert device.loaded


async def test_create_transports(device: Device) -> None:
    created: list[Any] = []
    device.observer.on("newtransport", created.append)
    params = remoteTransportParameters()
    send = device.createSendTransport(**params, appData={"foo": "bar"})
    recv = device.createRecvTransport(**remoteTransportParameters(sctp=False))
    assert send.id == params["id"]
    assert send.direction == "send" and recv.direction == "recv"
    assert send.closed is False
    assert send.connectionState == "new"
    assert send.iceGatheringState == "new"
    assert send.appData == {"foo": "bar"}
    assert recv.appData == {}
    assert created == [send, recv]
    send.close()
    recv.close()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", None, "missing id"),
        ("iceParameters", None, "missing iceParameters"),
        ("iceCandidates", None, "missing iceCandidates"),
        ("dtlsParameters", None, "missing dtlsParameters"),
        ("sctpParameters", "yes", "wrong sctpParameters"),
        ("appData", "data", "appData"),
    ],
)
@pytest.mark.parametrize("method", ["createSendTransport", "createRecvTransport"])
async def test_create_transport_with_bad_options_raises_type_error(
    device: Device, method: str, field: str, value: Any, message: str
) -> None:
    params = remoteTransportParameters()
    params[field] = value
    with pytest.raises(TypeError, match=message):
        getattr(device, method)(**params)
