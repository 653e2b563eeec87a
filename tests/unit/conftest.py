"""Fixtures for the API tests on the fake engine: a loaded Device and its transports."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from mediasoup_client import Device, FakeHandler, Transport
from tests.fixtures.router_capabilities import routerRtpCapabilities

_ids = itertools.count(1)


def remoteTransportParameters(*, sctp: bool = True) -> dict[str, Any]:
    """What a mediasoup server's createWebRtcTransport answers."""
    params: dict[str, Any] = {
        "id": f"transport-{next(_ids)}",
        "iceParameters": {"usernameFragment": "ufrag", "password": "pwd", "iceLite": True},
        "iceCandidates": [
            {
                "foundation": "udpcandidate",
                "priority": 1076302079,
                "ip": "127.0.0.1",
                "protocol": "udp",
                "port": 40001,
                "type": "host",
            }
        ],
        "dtlsParameters": {
            "role": "auto",
            "fingerprints": [{"algorithm": "sha-256", "value": "AA:" * 31 + "AA"}],
        },
    }
    if sctp:
        params["sctpParameters"] = {"port": 5000, "OS": 1024, "MIS": 1024, "maxMessageSize": 262144}
    return params


class Signaling:
    """Records what the transports signal, answering like a server would."""

    def __init__(self) -> None:
        self.connects: list[dict[str, Any]] = []
        self.produces: list[dict[str, Any]] = []
        self.produceDatas: list[dict[str, Any]] = []

    async def connect(self, dtlsParameters: dict[str, Any]) -> None:
        self.connects.append(dtlsParameters)

    async def produce(
        self, kind: str, rtpParameters: dict[str, Any], appData: dict[str, Any]
    ) -> str:
        self.produces.append({"kind": kind, "rtpParameters": rtpParameters, "appData": appData})
        return f"producer-{len(self.produces)}"

    def producedata(
        self,
        sctpStreamParameters: dict[str, Any],
        label: str,
        protocol: str,
        appData: dict[str, Any],
    ) -> str:
        self.produceDatas.append(
            {"sctpStreamParameters": sctpStreamParameters, "label": label, "protocol": protocol}
        )
        return f"dataproducer-{len(self.produceDatas)}"


@pytest.fixture
async def device() -> Device:
    device = Device(handlerFactory=FakeHandler.createFactory())
    await device.load(routerRtpCapabilities=routerRtpCapabilities())
    return device


@pytest.fixture
def signaling() -> Signaling:
    return Signaling()


@pytest.fixture
async def sendTransport(device: Device, signaling: Signaling) -> AsyncIterator[Transport]:
    transport = device.createSendTransport(**remoteTransportParameters(), appData={"side": "send"})
    transport.on("connect", signaling.connect)
    transport.on("produce", signaling.produce)
    transport.on("producedata", signaling.producedata)
    yield transport
    transport.close()


@pytest.fixture
async def recvTransport(device: Device, signaling: Signaling) -> AsyncIterator[Transport]:
    transport = device.createRecvTransport(**remoteTransportParameters())
    transport.on("connect", signaling.connect)
    yield transport
    transport.close()


@pytest.fixture
def audioTrack() -> AudioStreamTrack:
    return AudioStreamTrack()


@pytest.fixture
def videoTrack() -> VideoStreamTrack:
    return VideoStreamTrack()
