"""An in-process stand-in for the router's side of a transport: aiortc's ICE (controlled,
full ICE) and DTLS (client) on 127.0.0.1, for tests of ``TransportConnection``'s states.

``blackhole`` drops everything the peer sends (an outage as our side sees it: no packets and
no consent answers); ``closeDtls`` is the router closing the transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest
from aiortc import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceTransport,
)

from mediasoup_client.handlers.aiortc.connection import TransportConnection
from mediasoup_client.handlers.aiortc.connection_state import LivenessPolicy
from mediasoup_client.types import DtlsParameters


def restrictToLoopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both agents gather on 127.0.0.1 only: the tests never touch another address."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture(autouse=True)
def loopbackOnly(monkeypatch: pytest.MonkeyPatch) -> None:
    restrictToLoopback(monkeypatch)


class RouterSide:
    def __init__(self) -> None:
        self.gatherer = RTCIceGatherer()
        self.ice = RTCIceTransport(self.gatherer)
        self.certificate = RTCCertificate.generateCertificate()
        self.dtls = RTCDtlsTransport(self.ice, [self.certificate])
        self.dropping = False
        self._task: asyncio.Task[None] | None = None

    async def gather(self) -> None:
        await self.gatherer.gather()

    def parameters(self, *, wrongFingerprint: bool = False) -> dict[str, Any]:
        """What createWebRtcTransport would answer for this side."""
        local = self.gatherer.getLocalParameters()
        fingerprints = [
            {"algorithm": f.algorithm, "value": f.value}
            for f in self.dtls.getLocalParameters().fingerprints
        ]
        if wrongFingerprint:
            fingerprints = [{"algorithm": "sha-256", "value": "AB:" * 31 + "AB"}]
        return {
            "iceParameters": {
                "usernameFragment": local.usernameFragment,
                "password": local.password,
                "iceLite": False,
            },
            "iceCandidates": [
                {
                    "foundation": c.foundation,
                    "priority": c.priority,
                    "ip": c.ip,
                    "port": c.port,
                    "protocol": c.protocol,
                    "type": c.type,
                }
                for c in self.gatherer.getLocalCandidates()
            ],
            "dtlsParameters": {"role": "auto", "fingerprints": fingerprints},
        }

    def connectTo(self, client: TransportConnection, dtlsParameters: DtlsParameters) -> None:
        """Start ICE and DTLS towards ``client`` (what the router does on connect)."""

        async def run() -> None:
            for candidate in client.localCandidates():
                await self.ice.addRemoteCandidate(candidate)
            await self.ice.addRemoteCandidate(None)
            await self.ice.start(client.localIceParameters())
            await self.dtls.start(
                RTCDtlsParameters(
                    fingerprints=[
                        RTCDtlsFingerprint(algorithm=f["algorithm"], value=f["value"])
                        for f in dtlsParameters["fingerprints"]
                    ]
                )
            )

        self._task = asyncio.ensure_future(run())

    def blackhole(self, dropping: bool) -> None:
        """Drop (or stop dropping) every datagram this side sends."""
        self.dropping = dropping
        for protocol in self.ice._connection._protocols:
            transport = protocol.transport
            if not hasattr(transport, "_unimpaired_sendto"):
                transport._unimpaired_sendto = transport.sendto

                def sendto(data: bytes, addr: Any = None, *, _t: Any = transport) -> None:
                    if not self.dropping:
                        _t._unimpaired_sendto(data, addr)

                transport.sendto = sendto

    async def closeDtls(self) -> None:
        await self.dtls.stop()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.dtls.stop()
        await self.ice.stop()


def clientFor(
    router: RouterSide, *, policy: LivenessPolicy | None = None, wrongFingerprint: bool = False
) -> TransportConnection:
    remote = router.parameters(wrongFingerprint=wrongFingerprint)
    client: TransportConnection

    async def onConnect(dtlsParameters: DtlsParameters) -> None:
        router.connectTo(client, dtlsParameters)

    client = TransportConnection(
        iceParameters=remote["iceParameters"],
        iceCandidates=remote["iceCandidates"],
        dtlsParameters=remote["dtlsParameters"],
        sctpParameters=None,
        iceServers=None,
        iceTransportPolicy=None,
        onConnect=onConnect,
        livenessPolicy=policy,
    )
    return client


class StateLog:
    """Every connectionstatechange of a connection, and a way to wait for one."""

    def __init__(self, connection: TransportConnection) -> None:
        self.states: list[str] = []
        self._changed = asyncio.Event()
        connection.on("connectionstatechange", self._record)

    def _record(self, state: str) -> None:
        self.states.append(state)
        self._changed.set()

    async def waitFor(self, state: str, timeout: float = 10.0, *, since: int = 0) -> None:
        """Wait until ``state`` was reported (at or after position ``since`` of the log)."""

        async def reached() -> None:
            while state not in self.states[since:]:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reached(), timeout)
