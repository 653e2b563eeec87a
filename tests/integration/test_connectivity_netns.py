"""Through a firewall: our client in a network namespace the test makes, the SFU and coturn
outside it on the root side of the namespace's veth pair, UDP from the namespace to the SFU
dropped (nftables). The client connects through TURN over UDP, TCP and TLS
(``iceTransportPolicy: "relay"``) and over ICE-TCP (UDP candidates offered but blocked), and
sends audio, video and data while receiving the data of a peer outside the namespace.

Needs root (ip netns, nft) and coturn: CI runs as root, and scripts/install-net-tools.sh
installs Debian's packages. Everything made here is removed even when a test fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.support import netns
from tests.support.coturn import Coturn
from tests.support.netns import NetworkNamespace

REPO = Path(__file__).resolve().parents[2]
MEDIA_SECONDS = 3.0


@dataclass
class Network:
    namespace: NetworkNamespace
    sfu: LocalSfu
    turn: Coturn


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    problem = netns.requirements()
    if problem is not None:
        pytest.fail(problem)
    namespace = NetworkNamespace()
    sfu: LocalSfu | None = None
    turn: Coturn | None = None
    try:
        namespace.create()
        sfu = LocalSfu(listenIp=namespace.hostIp).start()
        turn = Coturn(namespace.hostIp).start()
        yield Network(namespace, sfu, turn)
    finally:
        if turn is not None:
            turn.stop()
        if sfu is not None:
            sfu.stop()
        namespace.destroy()
    assert not namespace.exists(), f"namespace {namespace.name} left behind"


def dropCount(rules: str) -> int:
    """Packets the namespace's UDP drop rule counted."""
    match = re.search(r"meta l4proto udp counter packets (\d+)", rules)
    return int(match.group(1)) if match else 0


async def runPeer(
    network: Network,
    room: str,
    *,
    iceServers: list[dict[str, Any]] | None = None,
    policy: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``netns_peer`` inside the namespace; its RESULT."""
    command = [
        sys.executable, "-m", "tests.integration.netns_peer",
        "--url", network.sfu.url_for(room, "netns-peer"),
        "--seconds", str(MEDIA_SECONDS),
    ]  # fmt: skip
    if iceServers is not None:
        command += ["--ice-servers", json.dumps(iceServers)]
    if policy is not None:
        command += ["--policy", policy]
    process = network.namespace.popen(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = await asyncio.to_thread(process.communicate, timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"the peer in the namespace hung:\n{stderr[-3000:]}") from None
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            result["log"] = stderr
            return result
    raise AssertionError(f"the peer failed (exit {process.returncode}):\n{stderr[-3000:]}")


async def exchange(network: Network, **options: Any) -> tuple[dict[str, Any], int]:
    """The namespace peer's result, and how many of its data messages the observer (a peer
    outside the namespace, on plain UDP) received while it sent its own to it."""
    room = f"netns-{time.monotonic_ns()}"
    observer = await RoomClient.join(network.sfu.url_for(room, "observer"))
    received: list[Any] = []
    try:
        channel = await observer.produceData(label="to-netns")
        observer.on(
            "newdataconsumer", lambda dataConsumer: dataConsumer.on("message", received.append)
        )
        peer = asyncio.ensure_future(runPeer(network, room, **options))

        async def feed() -> None:
            index = 0
            while not peer.done():
                if channel.readyState == "open":
                    index += 1
                    channel.send(f"observer-{index}")
                await asyncio.sleep(0.1)

        feeder = asyncio.ensure_future(feed())
        try:
            result = await peer
        finally:
            feeder.cancel()
        return result, len(received)
    finally:
        await observer.close()


def assertMediaAndData(result: dict[str, Any], observed: int) -> None:
    audio = sum(s["packetCount"] for s in result["audio"])
    video = sum(s["packetCount"] for s in result["video"])
    # Opus at 50 packets/s for MEDIA_SECONDS (video and data start a moment later).
    assert audio >= 40 * MEDIA_SECONDS, result["audio"]
    assert video >= 30, result["video"]
    assert all(s.get("packetsLost", 0) == 0 for s in result["audio"]), result["audio"]
    assert observed >= 0.5 * result["dataSent"] > 0, (observed, result["dataSent"])
    assert result["dataReceived"] >= 10, "no DataConsumer message reached the namespace"
    assert result["states"]["send"] == ["connecting", "connected"], result["states"]
    assert result["states"]["recv"] == ["connecting", "connected"], result["states"]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_turn_with_udp_to_the_sfu_blocked(network: Network, transport: str) -> None:
    turn = network.turn
    # UDP reaches coturn's port only (TURN over UDP), never the SFU.
    network.namespace.blockUdpTo(network.namespace.hostIp, exceptPorts=[turn.port])
    env = {"SSL_CERT_FILE": str(turn.caFile)} if transport == "tls" else {}
    result, observed = await exchange(
        network, iceServers=[turn.iceServer(transport)], policy="relay", env=env
    )
    for pair in (result["sendPair"], result["recvPair"]):
        assert pair["localCandidateType"] == "relay", pair
        assert pair["relayProtocol"] == transport, pair
    assertMediaAndData(result, observed)


async def test_ice_tcp_when_udp_to_the_sfu_is_blocked(network: Network) -> None:
    network.namespace.blockUdpTo(network.namespace.hostIp)
    result, observed = await exchange(network)
    for pair in (result["sendPair"], result["recvPair"]):
        assert pair["protocol"] == "tcp" and pair["remoteCandidateType"] == "host", pair
    assertMediaAndData(result, observed)
    # The router offered UDP too: its checks were tried and dropped by the firewall.
    assert dropCount(network.namespace.rules()) > 0


async def test_the_namespace_really_blocks_udp_to_the_sfu(network: Network) -> None:
    """The control: with UDP blocked and the router offering only UDP, no connection."""
    network.namespace.blockUdpTo(network.namespace.hostIp)
    probe = network.namespace.popen(
        [sys.executable, "-c", _UDP_PROBE, network.namespace.hostIp, str(network.sfu.port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    stdout, _ = await asyncio.to_thread(probe.communicate, timeout=20)
    assert stdout.strip() == "blocked", stdout


# Sends UDP to the SFU's signaling port from inside the namespace: sendto fails with EPERM
# when the firewall drops it (nftables answers local senders that way).
_UDP_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
    print("sent")
except PermissionError:
    print("blocked")
"""
