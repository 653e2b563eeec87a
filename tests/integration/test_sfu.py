"""The local SFU and the protoo client: joining, transports, stats, bad requests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from mediasoup_client import Device, FakeHandler
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.protoo import ProtooError, ProtooPeer

SCTP_CAPABILITIES = {"numStreams": {"OS": 1024, "MIS": 1024}}


async def joinedPeer(sfu: LocalSfu, room: str, peer: str) -> ProtooPeer:
    protoo = await ProtooPeer.connect(sfu.url_for(room, peer))
    protoo.on_request(lambda method, data: asyncio.sleep(0, result={}))
    caps = await protoo.request("getRouterRtpCapabilities")
    await protoo.request(
        "join",
        {
            "displayName": peer,
            "device": {"name": "pytest"},
            "rtpCapabilities": caps,
            "sctpCapabilities": SCTP_CAPABILITIES,
        },
    )
    return protoo


async def test_router_capabilities_load_into_a_device(sfu: LocalSfu) -> None:
    protoo = await ProtooPeer.connect(sfu.url_for())
    caps = await protoo.request("getRouterRtpCapabilities")
    mime_types = {c["mimeType"].lower() for c in caps["codecs"]}
    assert {"audio/opus", "video/vp8", "video/vp9", "video/h264", "video/rtx"} <= mime_types
    device = Device(handlerFactory=FakeHandler.createFactory())
    await device.load(routerRtpCapabilities=caps)
    assert device.canProduce("audio") and device.canProduce("video")
    await protoo.close()


async def test_create_transport_and_read_its_stats(sfu: LocalSfu) -> None:
    protoo = await joinedPeer(sfu, "stats-room", "alice")
    answer = await protoo.request(
        "createWebRtcTransport",
        {"producing": True, "consuming": False, "sctpCapabilities": SCTP_CAPABILITIES},
    )
    assert answer["iceParameters"]["iceLite"] is True
    assert all(c["ip"] == "127.0.0.1" for c in answer["iceCandidates"])
    assert answer["dtlsParameters"]["fingerprints"]
    assert answer["sctpParameters"]["port"] == 5000
    [stats] = await protoo.request("getTransportStats", {"transportId": answer["id"]})
    assert stats["type"] == "webrtc-transport"
    assert stats["transportId"] == answer["id"]
    assert stats["dtlsState"] == "new"
    await protoo.close()


@pytest.mark.parametrize(
    ("method", "data", "code"),
    [
        ("noSuchMethod", {}, 400),
        ("getTransportStats", {}, 400),
        ("getTransportStats", {"transportId": "bogus"}, 404),
        ("getProducerStats", {"producerId": "bogus"}, 404),
        ("connectWebRtcTransport", {"transportId": 42}, 400),
        ("produce", {"transportId": "x", "kind": "video", "rtpParameters": {}}, 404),
    ],
)
async def test_bad_requests_get_an_error_and_the_server_keeps_serving(
    sfu: LocalSfu, method: str, data: dict[str, Any], code: int
) -> None:
    protoo = await joinedPeer(sfu, "bad-room", "mallory")
    with pytest.raises(ProtooError) as error:
        await protoo.request(method, data)
    assert error.value.code == code
    # The same connection, and the server, still answer.
    caps = await protoo.request("getRouterRtpCapabilities")
    assert caps["codecs"]
    await protoo.close()
    assert sfu.running


async def test_invalid_rtp_parameters_are_refused(sfu: LocalSfu) -> None:
    protoo = await joinedPeer(sfu, "bad-produce", "mallory")
    transport = await protoo.request("createWebRtcTransport", {"producing": True})
    with pytest.raises(ProtooError):
        await protoo.request(
            "produce",
            {"transportId": transport["id"], "kind": "video", "rtpParameters": {"codecs": "x"}},
        )
    assert sfu.running
    await protoo.close()


async def test_peers_see_each_other(sfu: LocalSfu) -> None:
    alice = await joinedPeer(sfu, "two-peers", "alice")
    notifications: list[tuple[str, dict[str, Any]]] = []
    alice.on_notification(lambda method, data: notifications.append((method, data)))
    bob = await joinedPeer(sfu, "two-peers", "bob")
    for _ in range(100):
        if notifications:
            break
        await asyncio.sleep(0.02)
    assert (
        "newPeer",
        {"id": "bob", "displayName": "bob", "device": {"name": "pytest"}},
    ) in notifications
    await bob.close()
    for _ in range(100):
        if any(method == "peerClosed" for method, _ in notifications):
            break
        await asyncio.sleep(0.02)
    assert ("peerClosed", {"peerId": "bob"}) in notifications
    await alice.close()


async def test_connection_without_room_is_refused(sfu: LocalSfu) -> None:
    with pytest.raises(ConnectionError):
        await ProtooPeer.connect(f"ws://127.0.0.1:{sfu.port}/")


async def test_unreachable_url_raises_connection_error(sfu: LocalSfu) -> None:
    # A loopback port nobody listens on.
    with pytest.raises(ConnectionError):
        await ProtooPeer.connect("ws://127.0.0.1:9/?roomId=a&peerId=b", timeout=2)


def test_the_sfu_does_not_outlive_a_killed_launcher() -> None:
    # A test run that crashes or is killed must not leave servers (and their workers) behind.
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from mediasoup_client.signaling.local_sfu import LocalSfu\n"
            "import time\n"
            "sfu = LocalSfu().start()\n"
            "print(sfu._process.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert launcher.stdout is not None
    server = int(launcher.stdout.readline())
    os.kill(server, 0)  # running
    launcher.kill()
    launcher.wait(5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(server, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(server, signal.SIGKILL)
    raise AssertionError("the SFU kept running after its launcher was killed")
