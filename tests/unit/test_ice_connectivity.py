"""Connectivity beyond UDP host pairs: RFC 4571 framing, ICE over TCP to a passive ICE-lite
candidate (compat_ice's extension of aioice), the router's candidates (TCP, host names), TURN
URLs and the words for TURN failures. Against in-process peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioice import stun
from aiortc import RTCIceGatherer, RTCIceParameters, RTCIceServer, RTCIceTransport
from hypothesis import given
from hypothesis import strategies as st

from mediasoup_client.handlers.aiortc import compat_ice
from mediasoup_client.handlers.aiortc.compat_ice import (
    FrameDecoder,
    TurnServer,
    describeTurnFailure,
    frame,
    turnServersFrom,
)
from mediasoup_client.handlers.aiortc.remote_candidates import remoteCandidates
from tests.unit.ice_dtls_peer import RouterSide, StateLog, clientFor, loopbackOnly
from tests.unit.ice_lite_tcp_peer import IceLiteTcpPeer

__all__ = ["loopbackOnly"]  # the fixture, used by every test here


# RFC 4571 framing.
@given(st.lists(st.binary(max_size=3000), max_size=8), st.integers(1, 50))
def test_frames_come_out_whole_however_the_stream_is_cut(packets: list[bytes], step: int) -> None:
    stream = b"".join(frame(p) for p in packets)
    decoder = FrameDecoder()
    out: list[bytes] = []
    for start in range(0, len(stream), step):
        out += decoder.feed(stream[start : start + step])
    assert out == packets


def test_a_frame_holds_at_most_65535_bytes() -> None:
    assert frame(b"\x01" * 65535)[:2] == b"\xff\xff"
    with pytest.raises(ValueError, match="does not fit"):
        frame(b"\x01" * 65536)


# The router's candidates.
def candidate(ip: str, protocol: str = "udp", **extra: Any) -> dict[str, Any]:
    return {
        "foundation": f"f-{ip}-{protocol}",
        "priority": 1000,
        "ip": ip,
        "protocol": protocol,
        "port": 40000,
        "type": "host",
        **extra,
    }


async def test_udp_and_passive_tcp_candidates_are_kept_others_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "mediasoup_client")
    chosen = await remoteCandidates(
        [
            candidate("10.0.0.1"),
            candidate("10.0.0.1", "tcp", tcpType="passive"),
            candidate("10.0.0.2", "tcp", tcpType="active"),
        ]  # type: ignore[list-item]
    )
    assert [(c.ip, c.protocol, c.tcpType) for c in chosen] == [
        ("10.0.0.1", "udp", None),
        ("10.0.0.1", "tcp", "passive"),
    ]
    assert "skipping the router's candidate tcp 10.0.0.2:40000 (tcpType active)" in caplog.text


async def test_host_names_resolve_to_one_candidate_per_address_and_unknown_names_are_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked: list[str] = []

    async def resolver(name: str) -> list[str]:
        asked.append(name)
        if name == "sfu.example.test":
            return ["192.0.2.10", "2001:db8::10", "192.0.2.10"]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    caplog.set_level(logging.INFO, "mediasoup_client")
    chosen = await remoteCandidates(
        [
            {**candidate("x"), "ip": "", "address": "sfu.example.test"},
            candidate("sfu.example.test", "tcp", tcpType="passive"),
            candidate("gone.example.test"),
            candidate("192.0.2.99"),
        ],  # type: ignore[list-item]
        resolver,
    )
    assert [(c.ip, c.protocol) for c in chosen] == [
        ("192.0.2.10", "udp"),
        ("2001:db8::10", "udp"),
        ("192.0.2.10", "tcp"),
        ("2001:db8::10", "tcp"),
        ("192.0.2.99", "udp"),
    ]
    assert sorted(asked) == ["gone.example.test", "sfu.example.test"]  # each name once
    assert (
        "skipping the router's candidate udp gone.example.test:40000: the name does not "
        "resolve ([Errno -2] Name or service not known)"
    ) in caplog.text


async def test_a_resolver_that_does_not_answer_is_given_up_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def silent(name: str) -> list[str]:
        await asyncio.Event().wait()
        return []

    chosen = await remoteCandidates([candidate("slow.test")], silent, timeout=0.01)  # type: ignore[list-item]
    assert chosen == []
    assert "slow.test:40000: no answer within 0.01 s" in caplog.text


async def test_the_connection_resolves_a_named_router_before_pairing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = RouterSide()
    await router.gather()
    client = clientFor(router)
    # The router announces a name (and a second one nobody knows).
    remote = client._remoteCandidates
    client._remoteCandidates = [{**c, "ip": "router.test"} for c in remote] + [
        {**remote[0], "ip": "unknown.test", "foundation": "other"}
    ]

    async def resolver(name: str) -> list[str]:
        if name == "router.test":
            return ["127.0.0.1"]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    client._resolver = resolver
    log = StateLog(client)
    try:
        await client.signal()
        await log.waitFor("connected")
        assert "skipping the router's candidate udp unknown.test" in caplog.text
    finally:
        await client.close()
        await router.close()


# ICE over TCP.
@pytest.fixture
async def liteTcp() -> AsyncIterator[IceLiteTcpPeer]:
    peer = await IceLiteTcpPeer().start()
    yield peer
    await peer.close()


async def controllingAgent(*remote: dict[str, Any]) -> tuple[RTCIceGatherer, RTCIceTransport]:
    gatherer = RTCIceGatherer(iceServers=[])
    gatherer._connection.ice_controlling = True
    await gatherer.gather()
    compat_ice.addTcpActiveCandidates(gatherer)
    ice = RTCIceTransport(gatherer)
    for c in await remoteCandidates(list(remote)):  # type: ignore[arg-type]
        await ice.addRemoteCandidate(c)
    await ice.addRemoteCandidate(None)
    return gatherer, ice


def liteParameters(peer: IceLiteTcpPeer) -> RTCIceParameters:
    return RTCIceParameters(usernameFragment=peer.username, password=peer.password, iceLite=True)


async def test_ice_tcp_pairs_with_a_passive_candidate_and_carries_framed_data(
    liteTcp: IceLiteTcpPeer,
) -> None:
    gatherer, ice = await controllingAgent(liteTcp.candidate())
    try:
        await asyncio.wait_for(ice.start(liteParameters(liteTcp)), 5)
        assert ice.state == "completed"
        pair = compat_ice.selectedPair(gatherer)
        assert pair is not None and pair["protocol"] == "tcp"
        assert pair["remoteAddress"] == f"127.0.0.1:{liteTcp.port}"
        # aioice's regular nomination: a check, then one with USE-CANDIDATE.
        assert any("USE-CANDIDATE" in r.attributes for r in liteTcp.requests)
        # Data both ways, in frames (DTLS and SRTP take this path; sendRtpNow too).
        await ice._connection.send(b"\x16dtls-like")
        connection = gatherer._connection
        nominated = connection._nominated[1]
        nominated.protocol.transport.sendto(b"\x80rtp-like", nominated.remote_addr)
        await asyncio.wait_for(liteTcp.dataArrived.wait(), 5)
        await asyncio.sleep(0.05)
        assert liteTcp.data == [b"\x16dtls-like", b"\x80rtp-like"]
        liteTcp.sendInPieces(b"\x17from-router")
        assert await asyncio.wait_for(ice._connection.recv(), 5) == b"\x17from-router"
        # A consent check goes over the stream too.
        before = len(liteTcp.requests)
        from mediasoup_client.handlers.aiortc import compat

        assert await compat.checkConsent(ice)
        assert len(liteTcp.requests) == before + 1
        # The router closing the connection ends the session (recv fails, DTLS would close).
        liteTcp.dropConnections()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(ice._connection.recv(), 5)
    finally:
        await ice.stop()


async def test_ice_tcp_takes_over_when_udp_cannot_pair(liteTcp: IceLiteTcpPeer) -> None:
    # A UDP candidate that swallows every check (a firewall), listed first and preferred.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    udp = {**liteTcp.candidate(), "protocol": "udp", "port": silent.getsockname()[1]}
    udp["priority"] = 2113937151
    udp.pop("tcpType")
    gatherer, ice = await controllingAgent(udp, liteTcp.candidate())
    try:
        await asyncio.wait_for(ice.start(liteParameters(liteTcp)), 5)
        pair = compat_ice.selectedPair(gatherer)
        assert pair is not None and pair["protocol"] == "tcp"
    finally:
        await ice.stop()
        silent.close()


async def test_ice_tcp_to_a_closed_port_fails_the_check_at_once() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    peer = IceLiteTcpPeer()
    _gatherer, ice = await controllingAgent(
        {
            "foundation": "t",
            "priority": 1,
            "ip": "127.0.0.1",
            "protocol": "tcp",
            "port": port,
            "type": "host",
            "tcpType": "passive",
        }
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.wait_for(ice.start(liteParameters(peer)), 5)
        assert ice.state == "failed"
        assert loop.time() - started < 1
    finally:
        await ice.stop()


async def test_only_the_selected_tcp_stream_stays_open(liteTcp: IceLiteTcpPeer) -> None:
    second = await IceLiteTcpPeer().start()
    second.password = liteTcp.password
    try:
        other = {**second.candidate(), "foundation": "other", "priority": 1}
        gatherer, ice = await controllingAgent(liteTcp.candidate(), other)
        await asyncio.wait_for(ice.start(liteParameters(liteTcp)), 5)
        compat_ice.closeUnselectedTcpStreams(gatherer)
        await asyncio.sleep(0.05)
        [protocol] = [
            p for p in gatherer._connection._protocols if isinstance(p, compat_ice.IceTcpProtocol)
        ]
        pair = compat_ice.selectedPair(gatherer)
        assert pair is not None
        assert [f"{h}:{p}" for h, p in protocol.streams] == [pair["remoteAddress"]]
        # A late check towards a pair that lost opens no new connection.
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        with pytest.raises(stun.TransactionTimeout):
            await protocol.request(request, ("127.0.0.1", second.port))
        assert len(second.connections) <= 1
        await ice.stop()
        assert protocol.streams == {}
    finally:
        await second.close()


def test_the_relay_policy_gets_no_tcp_host_candidates() -> None:
    from aiortc import RTCIceTransportPolicy

    gatherer = RTCIceGatherer(iceServers=[], iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    compat_ice.markGathered(gatherer)
    assert compat_ice.addTcpActiveCandidates(gatherer) == []


# TURN URLs and failures.
def test_every_turn_url_is_used_and_unusable_ones_are_refused() -> None:
    servers = turnServersFrom(
        [
            RTCIceServer("stun:127.0.0.1:3478"),
            RTCIceServer(
                ["turn:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=tcp", "turns:127.0.0.1"],
                username="u",
                credential="p",
            ),
        ]
    )
    assert [(s.host, s.port, s.relayProtocol, s.username) for s in servers] == [
        ("127.0.0.1", 3478, "udp", "u"),
        ("127.0.0.1", 3478, "tcp", "u"),
        ("127.0.0.1", 5349, "tls", "u"),
    ]
    with pytest.raises(TypeError, match="TURN over 'sctp' is not supported"):
        turnServersFrom([RTCIceServer("turn:127.0.0.1?transport=sctp")])
    with pytest.raises(TypeError, match="invalid iceServers URL"):
        turnServersFrom([RTCIceServer("turn:")])


def test_turn_failures_are_named() -> None:
    failed = stun.Message(stun.Method.ALLOCATE, stun.Class.ERROR)
    failed.attributes["ERROR-CODE"] = (401, "Unauthorized")
    quota = stun.Message(stun.Method.ALLOCATE, stun.Class.ERROR)
    quota.attributes["ERROR-CODE"] = (486, "Allocation Quota Reached")
    certificate = ssl.SSLCertVerificationError(1, "certificate verify failed")
    certificate.verify_message = "self-signed certificate"
    assert describeTurnFailure(TimeoutError(), 5) == "no answer within 5 s (unreachable?)"
    assert describeTurnFailure(stun.TransactionTimeout(), 5).startswith("no answer")
    assert describeTurnFailure(stun.TransactionFailed(failed), 5) == (
        "wrong credentials (401 Unauthorized)"
    )
    assert describeTurnFailure(stun.TransactionFailed(quota), 5) == (
        "allocation refused (486 Allocation Quota Reached)"
    )
    assert describeTurnFailure(certificate, 5) == (
        "TLS certificate did not verify (self-signed certificate)"
    )
    assert describeTurnFailure(ConnectionRefusedError(), 5) == "connection refused (unreachable)"
    server = TurnServer("turn:h:1", "h", 1, "udp", False, "u", "p")
    error = compat_ice.TurnGatheringError(server, "wrong credentials (401 Unauthorized)")
    assert str(error) == "TURN server turn:h:1: wrong credentials (401 Unauthorized)"


async def test_checks_nobody_answers_fail_the_transport_in_bounded_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mediasoup_client.handlers.aiortc.connection import TransportConnection
    from tests.unit.conftest import remoteTransportParameters

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a firewall: checks vanish
    silent.bind(("127.0.0.1", 0))
    remote = remoteTransportParameters(sctp=False)
    remote["iceCandidates"][0]["port"] = silent.getsockname()[1]

    async def onConnect(dtlsParameters: Any) -> None:
        pass

    connection = TransportConnection(
        iceParameters=remote["iceParameters"],
        iceCandidates=remote["iceCandidates"],
        dtlsParameters=remote["dtlsParameters"],
        sctpParameters=None,
        iceServers=None,
        iceTransportPolicy=None,
        onConnect=onConnect,
        iceChecksTimeout=0.3,
    )
    log = StateLog(connection)
    try:
        await connection.signal()
        await log.waitFor("failed", timeout=3)
        assert log.states == ["connecting", "failed"]
        assert (
            "transport failed to connect: ICE: no candidate pair answered the connectivity "
            "checks within 0.3 s"
        ) in caplog.text
    finally:
        await connection.close()
        silent.close()
