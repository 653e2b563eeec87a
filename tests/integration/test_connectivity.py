"""Connectivity against the real router on 127.0.0.1: ICE over TCP when the router offers only
TCP, host-name candidates, TURN servers that cannot serve (unreachable, wrong credentials, a
certificate that does not verify), and consent checks on a long-lived transport through an
ICE restart. TURN and ICE-TCP with UDP blocked: test_connectivity_netns.py."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mediasoup_client.handlers.aiortc import remote_candidates
from mediasoup_client.media.test_sources import ToneAudioTrack
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from mediasoup_client.types import IceCandidate
from tests.integration.connectivity import openSender, openSockets, otherTasks, waitState
from tests.integration.router import waitFor
from tests.support.coturn import Coturn, freePort
from tests.support.udp_proxy import UdpRelay, longestGap


async def _dataFlows(publisher: RoomClient, subscriber: RoomClient, label: str) -> int:
    """Messages the subscriber's DataConsumer got from the publisher's DataProducer in 1 s."""
    channel = await publisher.produceData(label=label)

    async def consumed() -> bool:
        return any(d.label == label for d in subscriber.dataConsumers.values())

    await waitFor(consumed, 10, "the server's newDataConsumer")
    [dataConsumer] = [d for d in subscriber.dataConsumers.values() if d.label == label]
    received: list[Any] = []
    dataConsumer.on("message", received.append)
    await asyncio.sleep(0.3)  # the consumer's channel opens on the server side
    for index in range(20):
        channel.send(f"{label}-{index}")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    return len(received)


async def test_ice_tcp_when_the_router_offers_only_tcp(sfu: LocalSfu) -> None:
    room = f"tcp-{time.monotonic_ns()}"
    publisher = await RoomClient.join(sfu.url_for(room, "tcp-publisher"), forceTcp=True)
    subscriber = await RoomClient.join(sfu.url_for(room, "udp-subscriber"))
    try:
        producer = await publisher.produce(ToneAudioTrack(440))

        async def flowing() -> bool:
            stats = await publisher.routerStats(producer)
            return any(s.get("packetCount", 0) >= 50 for s in stats)

        await waitFor(flowing, 10, "50 RTP packets at the router over ICE-TCP")
        pair = (await publisher.sendTransport.getStats())["candidate-pair"]
        assert pair["protocol"] == "tcp" and pair["remoteCandidateType"] == "host"
        [router] = await publisher.transportRouterStats(publisher.sendTransport)
        assert router["iceSelectedTuple"]["protocol"] == "tcp"
        assert await _dataFlows(publisher, subscriber, "over-tcp") == 20
        assert publisher.sendTransport.connectionState == "connected"
    finally:
        await publisher.close()
        await subscriber.close()


async def _resolveLocalOnly(name: str) -> list[str]:
    """The system resolver for ``localhost`` (/etc/hosts); every other name fails here
    without a DNS query: tests reach no address but this machine's."""
    if name != "localhost":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: [str(i[4][0]) for i in socket.getaddrinfo(name, None, socket.AF_INET)]
    )


async def test_host_name_candidates_resolve_and_unknown_names_are_skipped(
    sfu: LocalSfu, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_candidates, "systemResolver", _resolveLocalOnly)

    def named(candidates: list[IceCandidate]) -> list[IceCandidate]:
        [udp] = [c for c in candidates if c["protocol"] == "udp"]
        unknown = {**udp, "ip": "no-such-router.invalid", "foundation": "unknown"}
        # mediasoup 3.13+ names it "address" (announcedAddress may be a host name).
        local: IceCandidate = {**udp, "address": "localhost"}  # type: ignore[typeddict-item]
        del local["ip"]  # type: ignore[misc]
        return [unknown, local]  # type: ignore[list-item]

    caplog.set_level(logging.INFO, "mediasoup_client")
    sender = await openSender(sfu, rewrite=named)
    try:
        producer = await sender.transport.produce(track=ToneAudioTrack(440))
        await waitState(sender.states, "connected", 10)

        async def arrived() -> bool:
            return await sender.routerPackets(producer.id) > 0

        await waitFor(arrived, 10, "RTP at the router via the candidate named localhost")
        pair = (await sender.transport.getStats())["candidate-pair"]
        assert pair["remoteAddress"].startswith("127.0.0.1:")
        skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
        port = next(c["port"] for c in sender.info["iceCandidates"] if c["protocol"] == "udp")
        assert skipped == [
            f"ICE: skipping the router's candidate udp no-such-router.invalid:{port}: "
            "the name does not resolve ([Errno -2] Name or service not known)"
        ]
    finally:
        await sender.close()


# TURN servers that cannot serve.
@pytest.fixture(scope="module")
def turn() -> Iterator[Coturn]:
    with Coturn("127.0.0.1") as server:
        yield server


BAD_TURN: dict[str, Any] = {
    "wrong credentials": (
        lambda t: t.iceServer("udp", password="not-the-password"),
        "wrong credentials (401 Unauthorized)",
        2.0,
    ),
    "unreachable over udp": (
        lambda t: {
            "urls": f"turn:127.0.0.1:{freePort('127.0.0.1')}",
            "username": "u",
            "credential": "p",
        },
        "no answer within 5 s (unreachable?)",
        7.0,
    ),
    "unreachable over tcp": (
        lambda t: {
            "urls": f"turn:127.0.0.1:{freePort('127.0.0.1')}?transport=tcp",
            "username": "u",
            "credential": "p",
        },
        "connection refused (unreachable)",
        2.0,
    ),
    "turns certificate that does not verify": (
        lambda t: t.iceServer("tls"),
        "TLS certificate did not verify (self-signed certificate)",
        2.0,
    ),
}


@pytest.mark.parametrize("case", list(BAD_TURN))
async def test_a_turn_server_that_cannot_serve_fails_the_transport_saying_why(
    sfu: LocalSfu, turn: Coturn, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    makeServer, reason, bound = BAD_TURN[case]
    caplog.set_level(logging.WARNING, "mediasoup_client")
    socketsBefore = openSockets()
    tasksBefore = otherTasks()
    sender = await openSender(sfu, iceServers=[makeServer(turn)], iceTransportPolicy="relay")
    started = time.monotonic()
    try:
        await sender.transport.produce(track=ToneAudioTrack(440))
        await waitState(sender.states, "failed", bound)
        assert time.monotonic() - started < bound
        assert sender.states == ["connecting", "failed"]
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert any(reason in line and "transport failed to connect" in line for line in lines), (
            lines
        )
    finally:
        closing = time.monotonic()
        await sender.close()
        assert time.monotonic() - closing < 2, "closing a failed transport hung"
    await asyncio.sleep(0.2)  # transports close their sockets on the next loop turns
    assert openSockets() <= socketsBefore, "a socket was left open"
    assert otherTasks() <= tasksBefore, f"tasks left running: {otherTasks() - tasksBefore}"


# Long-lived transports.
CONSENT_WINDOW = 60.0


async def test_consent_checks_keep_going_while_media_flows_and_through_an_ice_restart(
    sfu: LocalSfu,
) -> None:
    """mediasoup 3.13+ closes a transport after 30 s without a consent check (3.8.4 does not
    check): count the binding requests that reach the router over 60 s of media, with an ICE
    restart halfway, and the answers it gives (a request with stale credentials would get an
    error)."""
    relay = await UdpRelay().start()

    def throughRelay(candidates: list[IceCandidate]) -> list[IceCandidate]:
        [udp] = [c for c in candidates if c["protocol"] == "udp"]
        relay.router = (udp["ip"], udp["port"])
        return [{**udp, "ip": relay.address[0], "port": relay.address[1]}]

    sender = await openSender(sfu, rewrite=throughRelay)
    counts = relay.counts
    try:
        producer = await sender.transport.produce(track=ToneAudioTrack(440))
        await waitState(sender.states, "connected", 10)
        started = time.monotonic()
        await asyncio.sleep(CONSENT_WINDOW / 2)
        iceParameters = await sender.signaling.request(
            "restartIce", {"transportId": sender.info["id"]}
        )
        await sender.transport.restartIce(iceParameters=iceParameters)
        restarted = time.monotonic()
        packetsAtRestart = await sender.routerPackets(producer.id)
        await asyncio.sleep(CONSENT_WINDOW / 2)
        ended = time.monotonic()
        after = [t for t in counts.requests if t > restarted]
        answered = [t for t in counts.successes if t > restarted]
        assert len([t for t in counts.requests if t >= started]) >= 8, counts.requests
        assert longestGap(counts.requests, started, ended) < 10, "a gap a router would close on"
        assert len(after) >= 4 and len(answered) >= len(after) - 1, (after, answered)
        assert not counts.errors, "the router refused a binding request"
        assert await sender.routerPackets(producer.id) > packetsAtRestart + 1000
        assert sender.states == ["connecting", "connected"]
    finally:
        await sender.close()
        relay.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_turn_server_gone_mid_call_leaves_nothing_behind(
    sfu: LocalSfu, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Over TCP its connection's end fails the transport at once, saying so; over UDP nothing
    tells (the liveness monitor would, later). Either way close() returns at once and within
    a few seconds no socket or task is left (aioice would retry the allocation's deletion for
    about a minute)."""
    caplog.set_level(logging.WARNING, "mediasoup_client")
    socketsBefore = openSockets()
    tasksBefore = otherTasks()
    with Coturn("127.0.0.1") as server:
        sender = await openSender(
            sfu, iceServers=[server.iceServer(transport)], iceTransportPolicy="relay"
        )
        await sender.transport.produce(track=ToneAudioTrack(440))
        await waitState(sender.states, "connected", 10)
        server.kill()
        if transport == "tcp":
            await waitState(sender.states, "failed", 5)

            async def said() -> bool:
                return "via TURN over tcp" in caplog.text

            # The liveness monitor says why on its next turn.
            await waitFor(said, 2, "the log line naming the lost TURN connection")
        closing = time.monotonic()
        await sender.close()
        assert time.monotonic() - closing < 1

    async def released() -> bool:
        return openSockets() <= socketsBefore and otherTasks() <= tasksBefore

    await waitFor(released, 5, "the transport's sockets and tasks to go")
