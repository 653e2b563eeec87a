"""Helpers of the connectivity tests: a send transport whose router candidates the test may
rewrite (host names, a counting relay), and checks that a failed transport left nothing."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mediasoup_client import Device, Transport
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.protoo import ProtooPeer
from mediasoup_client.types import IceCandidate

Rewrite = Callable[[list[IceCandidate]], list[IceCandidate]]


@dataclass
class Sender:
    signaling: ProtooPeer
    device: Device
    transport: Transport
    info: dict[str, Any]
    states: list[str]

    async def routerPackets(self, producerId: str) -> int:
        stats = await self.signaling.request("getProducerStats", {"producerId": producerId})
        return sum(int(s.get("packetCount", 0)) for s in stats)

    async def close(self) -> None:
        self.transport.close()
        await self.signaling.close()


async def openSender(
    sfu: LocalSfu,
    *,
    rewrite: Rewrite | None = None,
    iceServers: list[Any] | None = None,
    iceTransportPolicy: str | None = None,
    forceTcp: bool = False,
) -> Sender:
    """A joined peer with a send transport (signaling as mediasoup-demo's), the router's
    candidates passed through ``rewrite``."""
    signaling = await ProtooPeer.connect(sfu.url_for(uuid.uuid4().hex[:8], "sender"))
    signaling.on_request(lambda method, data: asyncio.sleep(0, result={}))
    device = Device()
    await device.load(routerRtpCapabilities=await signaling.request("getRouterRtpCapabilities"))
    info = await signaling.request(
        "createWebRtcTransport", {"producing": True, "consuming": False, "forceTcp": forceTcp}
    )
    await signaling.request("join", {"displayName": "sender", "device": {"name": "pytest"}})
    candidates = info["iceCandidates"]
    transport = device.createSendTransport(
        id=info["id"],
        iceParameters=info["iceParameters"],
        iceCandidates=rewrite(candidates) if rewrite else candidates,
        dtlsParameters=info["dtlsParameters"],
        iceServers=iceServers,
        iceTransportPolicy=iceTransportPolicy,
    )
    states: list[str] = []
    transport.on("connectionstatechange", lambda state: states.append(state))

    @transport.on("connect")
    async def onConnect(dtlsParameters: Any) -> None:
        await signaling.request(
            "connectWebRtcTransport", {"transportId": info["id"], "dtlsParameters": dtlsParameters}
        )

    @transport.on("produce")
    async def onProduce(kind: str, rtpParameters: Any, appData: Any) -> str:
        answer = await signaling.request(
            "produce",
            {"transportId": info["id"], "kind": kind, "rtpParameters": rtpParameters},
        )
        return str(answer["id"])

    return Sender(signaling, device, transport, info, states)


async def waitState(states: list[str], state: str, timeout: float) -> None:
    async def reached() -> None:
        while state not in states:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(reached(), timeout)


def openSockets() -> set[str]:
    """The socket inodes this process holds open."""
    sockets = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            sockets.add(target)
    return sockets


def otherTasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}
