"""Every aiortc/aioice internal the engine relies on still exists and behaves.

If this fails after an upgrade, do not paper over it: handlers/aiortc/compat.py needs to be
ported to the new aiortc (the pinned versions are in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import socket
import sys
import time
from typing import Any

import aioice
import aiortc
import pytest
from aiortc import (
    RTCCertificate,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceTransport,
    RTCSctpTransport,
)
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpReceiveParameters
from aiortc.rtcsctptransport import DataChunk, SackChunk

from mediasoup_client.handlers.aiortc import compat, sctp_compat
from mediasoup_client.handlers.aiortc.rtp_port import RtpRoute
from mediasoup_client.sctp_policies import SackPolicy, SendBudget
from tests.unit.sctp_pair import SctpPair, chunksOf, isData, isSack

UPGRADE_HINT = (
    f"aiortc {aiortc.__version__} / aioice {aioice.__version__} changed an internal that "
    f"mediasoup_client.handlers.aiortc.compat uses (written for aiortc {compat.PINNED_AIORTC})"
)


def test_versions_are_the_pinned_ones() -> None:
    assert aiortc.__version__ == compat.PINNED_AIORTC, UPGRADE_HINT


def test_ice_connection_role_and_credentials() -> None:
    gatherer = RTCIceGatherer(iceServers=[])
    assert hasattr(gatherer, "_connection"), UPGRADE_HINT
    compat.setIceControlling(gatherer, True)
    transport = RTCIceTransport(gatherer)
    assert transport.role == "controlling", UPGRADE_HINT
    compat.restartIceCredentials(transport, "ufrag2", "pwd2")
    connection = transport._connection
    assert (connection.remote_username, connection.remote_password) == ("ufrag2", "pwd2")
    assert hasattr(connection, "_nominated"), UPGRADE_HINT
    assert compat.nominatedAddresses(transport) is None


async def test_dtls_internals() -> None:
    gatherer = RTCIceGatherer(iceServers=[])
    dtls = RTCDtlsTransport(RTCIceTransport(gatherer), [RTCCertificate.generateCertificate()])
    for name in ("_send_rtp", "_rtp_router", "_get_stats"):
        assert hasattr(dtls, name), f"{UPGRADE_HINT}: RTCDtlsTransport.{name}"
    assert inspect.iscoroutinefunction(dtls._send_rtp), UPGRADE_HINT
    # Sending before DTLS is up must fail loudly, not silently (senders wait for the port).
    with pytest.raises(ConnectionError):
        await compat.sendRtp(dtls, b"\x80" + bytes(11))
    stats = compat.dtlsStats(dtls)
    assert any(s.type == "transport" for s in stats.values()), UPGRADE_HINT


async def test_rtcp_routing_reaches_our_recipient() -> None:
    gatherer = RTCIceGatherer(iceServers=[])
    dtls = RTCDtlsTransport(RTCIceTransport(gatherer), [RTCCertificate.generateCertificate()])
    assert isinstance(dtls._rtp_router, RtpRouter), UPGRADE_HINT
    received: list[object] = []

    class Recipient:
        async def _handle_rtcp_packet(self, packet: object) -> None:
            received.append(packet)

    recipient = Recipient()
    compat.addRtcpRecipient(dtls, recipient, [1111, 2222])
    # A PLI for one of our SSRCs and a REMB listing both are routed to us, once each.
    pli = aiortc.rtp.RtcpPsfbPacket(fmt=aiortc.rtp.RTCP_PSFB_PLI, ssrc=9, media_ssrc=2222)
    remb = aiortc.rtp.RtcpPsfbPacket(
        fmt=aiortc.rtp.RTCP_PSFB_APP,
        ssrc=9,
        media_ssrc=0,
        fci=aiortc.rtp.pack_remb_fci(500_000, [1111, 2222]),
    )
    await dtls._handle_rtcp_data(bytes(pli) + bytes(remb))
    assert received and len(received) == 2, UPGRADE_HINT
    compat.removeRtcpRecipient(dtls, recipient)
    await dtls._handle_rtcp_data(bytes(pli))
    assert len(received) == 2, UPGRADE_HINT


async def test_raw_rtcp_tap_sees_transport_feedback_before_aiortc_parses_it() -> None:
    from mediasoup_client.handlers.aiortc.send.cc.transport_feedback import (
        TransportFeedback,
        extractTransportFeedback,
    )

    gatherer = RTCIceGatherer(iceServers=[])
    dtls = RTCDtlsTransport(RTCIceTransport(gatherer), [RTCCertificate.generateCertificate()])
    # aiortc's receive loop looks the handler up on the instance (so the tap is called)...
    source = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "self._handle_rtcp_data(" in source, UPGRADE_HINT
    # ...and its parser reads any RTPFB as a NACK: transport feedback must come raw.
    feedback = TransportFeedback(0, 2222, 100, 7, 0, [(100, 4), (101, None), (102, 300)])
    (parsed,) = aiortc.rtp.RtcpPacket.parse(feedback.serialize())
    assert isinstance(parsed, aiortc.rtp.RtcpRtpfbPacket) and parsed.fmt == 15, UPGRADE_HINT
    seen: list[bytes] = []
    routed: list[object] = []

    class Recipient:
        async def _handle_rtcp_packet(self, packet: object) -> None:
            routed.append(packet)

    compat.addRtcpRecipient(dtls, Recipient(), [2222])
    remove = compat.tapRtcp(dtls, seen.append)
    compat.tapRtcp(dtls, lambda data: 1 / 0)  # a failing tap must not stop the others
    await dtls._handle_rtcp_data(feedback.serialize())
    assert extractTransportFeedback(seen[0]) == [feedback]
    # Nothing but congestion feedback: it stops at the taps (aiortc would read a NACK).
    assert routed == []
    # With a receiver report beside it, aiortc parses and routes the datagram as before.
    report = aiortc.rtp.RtcpRrPacket(
        ssrc=1, reports=[aiortc.rtp.RtcpReceiverInfo(2222, 0, 0, 100, 0, 0, 0)]
    )
    await dtls._handle_rtcp_data(feedback.serialize() + bytes(report))
    assert len(seen) == 2 and extractTransportFeedback(seen[1]) == [feedback]
    assert [type(packet) for packet in routed] == [
        aiortc.rtp.RtcpRtpfbPacket,
        aiortc.rtp.RtcpRrPacket,
    ], UPGRADE_HINT
    remove()
    await dtls._handle_rtcp_data(bytes(report))
    assert len(seen) == 2 and len(routed) == 3


def test_only_congestion_feedback_reads_the_compound_headers() -> None:
    from mediasoup_client.handlers.aiortc.send.cc.transport_feedback import TransportFeedback

    feedback = TransportFeedback(0, 2222, 100, 7, 0, [(100, 4), (101, None), (102, 300)])
    remb = aiortc.rtp.RtcpPsfbPacket(
        fmt=aiortc.rtp.RTCP_PSFB_APP, ssrc=1, media_ssrc=0,
        fci=aiortc.rtp.pack_remb_fci(300_000, [2222]),
    )  # fmt: skip
    nack = aiortc.rtp.RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2222, lost=[5])
    pli = aiortc.rtp.RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2222)
    only = compat.onlyCongestionFeedback
    assert only(feedback.serialize())
    assert only(bytes(remb)) and only(feedback.serialize() + bytes(remb))
    assert not only(bytes(nack)) and not only(bytes(pli))
    assert not only(feedback.serialize() + bytes(nack))
    assert not only(b"") and not only(feedback.serialize()[:-4])  # truncated: aiortc decides


async def test_inbound_rtp_and_sender_reports_reach_our_listener() -> None:
    gatherer = RTCIceGatherer(iceServers=[])
    dtls = RTCDtlsTransport(RTCIceTransport(gatherer), [RTCCertificate.generateCertificate()])
    for name in ("_rtp_header_extensions_map", "_handle_rtp_data", "_handle_rtcp_data"):
        assert hasattr(dtls, name), f"{UPGRADE_HINT}: RTCDtlsTransport.{name}"
    events: list[tuple[str, object, object]] = []

    class Listener:
        def onRtp(self, packet: object, arrival: float) -> None:
            events.append(("rtp", packet, arrival))

        def onRtcp(self, packet: object) -> None:
            events.append(("rtcp", packet, None))

        def onTransportClosed(self) -> None:
            events.append(("closed", None, None))

    uri = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    route = RtpRoute(ssrcs=(1111, 2222), payloadTypes=(96, 97), headerExtensions=((5, uri),))
    unsubscribe = compat.addRtpListener(dtls, route, Listener())
    # A packet of ours, with a transport-wide sequence number the router stamped.
    packet = aiortc.rtp.RtpPacket(payload_type=96, sequence_number=7, ssrc=2222, payload=b"x")
    packet.extensions.transport_sequence_number = 4242
    writer = aiortc.rtp.HeaderExtensionsMap()
    writer.configure(
        RTCRtpReceiveParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=5, uri=uri)])
    )
    before = time.monotonic()
    await dtls._handle_rtp_data(packet.serialize(writer), arrival_time_ms=0)
    # Our SSRC with a payload type that is not ours: not for us.
    wrong = aiortc.rtp.RtpPacket(payload_type=100, sequence_number=9, ssrc=1111, payload=b"z")
    await dtls._handle_rtp_data(wrong.serialize(), arrival_time_ms=0)
    assert [e[0] for e in events] == ["rtp"], UPGRADE_HINT
    # An unknown SSRC with our payload type is handed to the only receiver of that payload
    # type (aiortc learns SSRCs that way); the receive core drops what is not its SSRC.
    other = aiortc.rtp.RtpPacket(payload_type=96, sequence_number=8, ssrc=3333, payload=b"y")
    await dtls._handle_rtp_data(other.serialize(), arrival_time_ms=0)
    assert [e[0] for e in events] == ["rtp", "rtp"], UPGRADE_HINT
    del events[1]
    received, arrival = events[0][1], events[0][2]
    assert received.sequence_number == 7 and received.payload == b"x", UPGRADE_HINT  # type: ignore[attr-defined]
    assert received.extensions.transport_sequence_number == 4242, UPGRADE_HINT  # type: ignore[attr-defined]
    assert isinstance(arrival, float) and arrival >= before
    # The media sender's SR about one of our SSRCs is ours too.
    sr = aiortc.rtp.RtcpSrPacket(
        ssrc=1111,
        sender_info=aiortc.rtp.RtcpSenderInfo(
            ntp_timestamp=1, rtp_timestamp=2, packet_count=3, octet_count=4
        ),
    )
    await dtls._handle_rtcp_data(bytes(sr))
    assert events[-1][0] == "rtcp", UPGRADE_HINT
    # DTLS going away reaches the listener (aiortc calls every registered receiver).
    for receiver in dtls._rtp_router.receivers:
        receiver._handle_disconnect()
    assert events[-1][0] == "closed", UPGRADE_HINT
    unsubscribe()
    await dtls._handle_rtp_data(packet.serialize(writer), arrival_time_ms=0)
    assert len(events) == 3, UPGRADE_HINT
    assert not dtls._rtp_router.receivers, UPGRADE_HINT


async def test_arrival_times_come_from_the_kernel_and_pair_with_the_reads() -> None:
    gatherer = RTCIceGatherer(iceServers=[])
    await gatherer.gather()
    transport = RTCIceTransport(gatherer)
    connection = transport._connection
    assert hasattr(connection, "_protocols") and hasattr(connection, "_queue"), UPGRADE_HINT
    assert callable(getattr(connection, "data_received", None)), UPGRADE_HINT
    clock = compat.stampArrivals(transport)
    protocol = next(p for p in connection._protocols if ":" not in p.local_candidate.host)
    address = protocol.transport.get_extra_info("sockname")
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sent = []
        for index in range(3):
            sent.append(time.monotonic())
            # Not STUN: RTP (first byte 0x80), then DTLS (0x17), then RTP again.
            first = 0x17 if index == 1 else 0x80
            sender.sendto(bytes([first, index]) + bytes(20), address)
            await asyncio.sleep(0.05)
    finally:
        sender.close()
    if sys.platform.startswith("linux"):
        # Every RTP datagram (timestamping was switched on before any arrived); not DTLS.
        assert clock.kernelStamps == 2, UPGRADE_HINT
    connection._nominated[1] = object()  # recv() refuses to read before a nomination
    for index in range(3):
        data = await asyncio.wait_for(transport._recv(), 1)
        assert data[1] == index, UPGRADE_HINT
        assert clock.current is not None
        # The kernel's time, not the (50 ms later) time of the read.
        assert sent[index] <= clock.current < sent[index] + 0.03
    await gatherer._connection.close()


def test_ice_servers_can_be_replaced_before_gathering() -> None:
    gatherer = RTCIceGatherer(iceServers=[])
    compat.setIceServers(
        gatherer,
        [
            aiortc.RTCIceServer("stun:127.0.0.1:3478"),
            aiortc.RTCIceServer("turn:127.0.0.2:3479?transport=tcp", username="u", credential="p"),
        ],
    )
    connection = gatherer._connection
    assert connection.stun_server == ("127.0.0.1", 3478), UPGRADE_HINT
    assert connection.turn_server == ("127.0.0.2", 3479), UPGRADE_HINT
    assert (connection.turn_username, connection.turn_password) == ("u", "p"), UPGRADE_HINT
    assert connection.turn_transport == "tcp" and connection.turn_ssl is False, UPGRADE_HINT
    compat.setIceServers(gatherer, [])
    assert connection.stun_server is None and connection.turn_server is None, UPGRADE_HINT


async def test_immediate_send_and_consent_checks_on_a_connected_pair(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.unit.ice_dtls_peer import RouterSide, clientFor, restrictToLoopback

    restrictToLoopback(monkeypatch)
    router = RouterSide()
    await router.gather()
    client = clientFor(router)
    received: list[bytes] = []
    arrived = asyncio.Event()

    class Receiver:
        def _handle_rtp_packet(self, packet: object, arrival_time_ms: int) -> None:
            received.append(bytes(packet.payload))  # type: ignore[attr-defined]
            arrived.set()

    assert not compat.dtlsConnected(client.dtlsTransport)
    try:
        await client.signal()
        await client.waitConnected()
        assert compat.dtlsConnected(client.dtlsTransport), UPGRADE_HINT
        assert client.dtlsTransport.state == "connected"
        assert hasattr(router.dtls, "_rtp_router"), UPGRADE_HINT
        router.dtls._rtp_router.register_receiver(Receiver(), ssrcs=[4321], payload_types=[96])
        before = compat.dtlsStats(client.dtlsTransport)
        sent_before = next(iter(before.values())).packetsSent
        packet = aiortc.rtp.RtpPacket(payload_type=96, sequence_number=1, ssrc=4321)
        packet.payload = b"hello"
        compat.sendRtpNow(client.dtlsTransport, packet.serialize())
        await asyncio.wait_for(arrived.wait(), 5)
        assert received == [b"hello"], UPGRADE_HINT  # SRTP-protected, decrypted by the peer
        after = next(iter(compat.dtlsStats(client.dtlsTransport).values())).packetsSent
        assert after == sent_before + 1, UPGRADE_HINT
        assert await compat.checkConsent(client._ice), UPGRADE_HINT
        router.blackhole(True)
        assert not await compat.checkConsent(client._ice), UPGRADE_HINT
    finally:
        await client.close()
        await router.close()
    assert not compat.dtlsConnected(client.dtlsTransport), UPGRADE_HINT
    with pytest.raises(ConnectionError):
        compat.sendRtpNow(client.dtlsTransport, packet.serialize())


def _memoryDtlsPair() -> tuple[Any, Any]:
    """A client and a server pyOpenSSL connection made as aiortc makes them, handshake done
    through their memory BIOs."""
    from aiortc.rtcdtlstransport import SRTP_AES128_CM_SHA1_80
    from OpenSSL import SSL

    def connection() -> Any:
        certificate = RTCCertificate.generateCertificate()
        return SSL.Connection(certificate._create_ssl_context([SRTP_AES128_CM_SHA1_80]))

    client, server = connection(), connection()
    client.set_connect_state()
    server.set_accept_state()
    for _ in range(10):
        for side in (client, server):
            with contextlib.suppress(SSL.WantReadError):
                side.do_handshake()
        for source, target in ((client, server), (server, client)):
            while True:
                try:
                    target.bio_write(source.bio_read(1500))
                except SSL.WantReadError:
                    break
    return client, server


def _outcome(call: Any) -> Any:
    """What a pyOpenSSL call returned, or the type of what it raised."""
    try:
        return call()
    except Exception as error:
        return type(error)


def _recordSteps(client: Any, server: Any) -> list[Any]:
    """The calls aiortc makes on ``server``, and a few it never should need."""
    steps: list[Any] = []
    for size in (1, 1150, 1400):
        client.send(b"x" * size)
        steps.append(_outcome(lambda: server.bio_write(client.bio_read(1500))))
        steps.append(_outcome(lambda: server.recv(1500)))
    steps.append(_outcome(lambda: server.recv(1500)))  # nothing pending
    steps.append(_outcome(lambda: server.bio_read(1500)))  # nothing to send
    steps.append(_outcome(lambda: server.send(b"reply")))
    steps.append(_outcome(lambda: client.bio_write(server.bio_read(1500))))
    steps.append(_outcome(lambda: client.recv(1500)))
    client.send(b"y" * 600)
    record = bytearray(client.bio_read(1500))
    record[-1] ^= 0xFF  # a record that fails its integrity check: DTLS drops it
    steps.append(_outcome(lambda: server.bio_write(bytes(record))))
    steps.append(_outcome(lambda: server.recv(1500)))
    client.send(b"z" * 3000)  # bigger than the fast buffer: pyOpenSSL's own path
    server.bio_write(client.bio_read(4000))
    steps.append(_outcome(lambda: server.recv(4000)))
    client.shutdown()
    server.bio_write(client.bio_read(1500))
    steps.append(_outcome(lambda: server.recv(1500)))  # the peer's close_notify
    return steps


def test_fast_dtls_records_behave_as_pyopenssl_does() -> None:
    """The same calls on a stock and a fast connection give the same results and exceptions:
    records read and written, nothing pending, a forged record, a larger read, a shutdown."""
    import OpenSSL
    from OpenSSL import SSL

    assert OpenSSL.__version__ == compat.PINNED_PYOPENSSL, UPGRADE_HINT
    outcomes = []
    for fast in (False, True):
        client, server = _memoryDtlsPair()
        if fast:
            compat._fastenConnection(server)
        else:
            internals = ("_ssl", "_into_ssl", "_from_ssl", "_raise_ssl_error", "_handle_bio_errors")
            for name in internals:
                assert hasattr(server, name), f"{UPGRADE_HINT}: Connection.{name}"
        outcomes.append(_recordSteps(client, server))
    assert outcomes[0] == outcomes[1]
    wantRead = SSL.WantReadError
    assert outcomes[0] == [
        *(38, b"x", 1187, b"x" * 1150, 1437, b"x" * 1400),  # bytes in, then the record's data
        *(wantRead, wantRead, 5, 42, b"reply"),  # nothing pending, nothing to send; a reply
        *(637, wantRead),  # the forged record went in and was dropped
        *(b"z" * 3000, SSL.ZeroReturnError),
    ]


async def test_connected_dtls_exchanges_records_on_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our transports read and write DTLS records through ``_FastRecordConnection`` once
    connected (never before); records cross both ways, and the peer's close ends ours."""
    from tests.integration.router import waitFor
    from tests.unit.ice_dtls_peer import RouterSide, clientFor, restrictToLoopback

    restrictToLoopback(monkeypatch)
    router = RouterSide()
    await router.gather()
    client = clientFor(router)
    assert not compat.fastDtlsRecords(router.dtls)  # no handshake yet
    got: dict[str, list[bytes]] = {"client": [], "router": []}
    messages = [bytes([i]) * (1 + 97 * i) for i in range(12)]

    class Receiver:
        def __init__(self, name: str) -> None:
            self.name = name

        async def _handle_data(self, data: bytes) -> None:
            got[self.name].append(data)

    client.dtlsTransport._register_data_receiver(Receiver("client"))
    router.dtls._register_data_receiver(Receiver("router"))
    try:
        await client.signal()
        await client.waitConnected()
        assert type(client.dtlsTransport._ssl) is compat._FastRecordConnection, UPGRADE_HINT
        assert not compat.fastDtlsRecords(client.dtlsTransport)  # once

        async def routerConnected() -> bool:
            return router.dtls.state == "connected"

        async def allArrived() -> bool:
            return all(len(v) == len(messages) for v in got.values())

        async def clientClosed() -> bool:
            return client.dtlsTransport.state == "closed"

        await waitFor(routerConnected, 2, "the router side's DTLS", interval=0.02)
        assert compat.fastDtlsRecords(router.dtls)
        for message in messages:
            await client.dtlsTransport._send_data(message)
            await router.dtls._send_data(message)
        await waitFor(allArrived, 2, "the records both ways", interval=0.02)
        assert got == {"client": messages, "router": messages}, UPGRADE_HINT
        await router.closeDtls()  # close_notify: our receive loop ends the transport
        await waitFor(clientClosed, 2, "our DTLS transport to close", interval=0.02)
    finally:
        await client.close()
        await router.close()


async def test_srtcp_longer_than_1500_bytes_arrives_and_the_transport_lives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """mediasoup's compound RTCP for a transport with many streams exceeds pylibsrtp's
    1500-byte buffer; stock aiortc's DTLS transport dies of the ValueError."""
    import pylibsrtp

    from tests.unit.ice_dtls_peer import RouterSide, clientFor, restrictToLoopback

    assert pylibsrtp.__version__ == compat.PINNED_PYLIBSRTP, UPGRADE_HINT
    assert "self._rx_srtp = Session(" in inspect.getsource(RTCDtlsTransport._setup_srtp)
    restrictToLoopback(monkeypatch)
    router = RouterSide()
    compat.acceptLargeSrtp(router.dtls)
    await router.gather()
    client = clientFor(router)
    seen: list[bytes] = []
    try:
        await client.signal()
        await client.waitConnected()
        remove = compat.tapRtcp(client.dtlsTransport, seen.append)
        blocks = [
            aiortc.rtp.RtcpReceiverInfo(
                ssrc=1000 + i, fraction_lost=0, packets_lost=0, highest_sequence=i, jitter=0,
                lsr=0, dlsr=0,
            )
            for i in range(31)
        ]  # fmt: skip
        compound = b"".join(
            bytes(aiortc.rtp.RtcpRrPacket(ssrc=7 + n, reports=blocks)) for n in range(4)
        )
        assert len(compound) > 3000
        for _ in range(200):
            if router.dtls.state == "connected":
                break
            await asyncio.sleep(0.01)
        # Sessions keep pylibsrtp's own 1500 bytes until a longer packet needs more.
        assert len(router.dtls._tx_srtp._cdata) == 1500, UPGRADE_HINT
        compat.sendRtpNow(router.dtls, compound)
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        assert seen == [compound], UPGRADE_HINT
        assert client.dtlsTransport.state == "connected"
        assert len(router.dtls._tx_srtp._cdata) == compat.SRTP_BUFFER_BYTES
        assert len(client.dtlsTransport._rx_srtp._cdata) == compat.SRTP_BUFFER_BYTES
        remove()
    finally:
        await client.close()
        await router.close()


def test_ice_agent_internals_of_compat_ice() -> None:
    """What compat_ice (ICE-TCP, our TURN gathering) reads and writes in aioice's agent."""
    import aioice.ice

    from mediasoup_client.handlers.aiortc import compat_ice

    gatherer = RTCIceGatherer(
        iceServers=[aiortc.RTCIceServer("turn:127.0.0.1:3479", username="u", credential="p")],
        iceTransportPolicy=aiortc.RTCIceTransportPolicy.RELAY,
    )
    connection = gatherer._connection
    for name in (
        "_protocols", "_local_candidates", "_local_candidates_start", "_local_candidates_end",
        "_transport_policy", "_nominated", "turn_server", "turn_username", "turn_password",
    ):  # fmt: skip
        assert hasattr(connection, name), f"{UPGRADE_HINT}: Connection.{name}"
    for name in ("data_received", "request_received", "protocol_lost"):
        assert callable(getattr(connection, name, None)), f"{UPGRADE_HINT}: Connection.{name}"
    assert compat_ice.relayOnly(gatherer), UPGRADE_HINT
    assert connection.turn_server == ("127.0.0.1", 3479), UPGRADE_HINT
    compat_ice.takeTurnServers(gatherer)
    assert connection.turn_server is None, UPGRADE_HINT
    compat_ice.markGathered(gatherer)
    assert connection.local_candidates == [], UPGRADE_HINT
    # aioice's own TURN allocation, called with these keywords.
    parameters = set(inspect.signature(aioice.ice.relayed_candidate).parameters)
    assert parameters == {
        "component", "hide_related_address", "protocol_factory", "turn_server",
        "turn_username", "turn_password", "turn_ssl", "turn_transport",
    }, UPGRADE_HINT  # fmt: skip
    # A protocol stands for a local candidate; pairs reach it as pair.protocol.
    assert "remote_addr" in dir(aioice.ice.CandidatePair), UPGRADE_HINT
    signature = inspect.signature(aioice.ice.StunProtocol.request)
    assert list(signature.parameters)[1:] == [
        "request", "addr", "integrity_key", "retransmissions",
    ], UPGRADE_HINT  # fmt: skip
    assert aiortc.rtcicetransport.parse_stun_turn_uri("turns:h")["port"] == 5349, UPGRADE_HINT
    # A relay candidate's transport keeps the TURN client protocol (its deletion is bounded).
    import aioice.turn

    inner: Any = object()
    relay: Any = aioice.turn.TurnTransport(inner)
    assert relay._TurnTransport__inner_protocol is inner, UPGRADE_HINT
    assert inspect.iscoroutinefunction(aioice.turn.TurnClientMixin.delete), UPGRADE_HINT
# The data path (handlers/aiortc/sctp_compat.py).
# What sctp_compat mirrors or relies on in aiortc 1.16.0: a change to any of these needs its
# in-order receiver, SACK hook or send budget checked against the new code.
MIRRORED_SCTP_SOURCES = {
    "RTCSctpTransport._handle_data": "8661b724e20776bb",
    "RTCSctpTransport._receive_data_chunk": "790c2bb8cd0f5dd7",
    "RTCSctpTransport._mark_received": "2ac68b6a3934ca87",
    "RTCSctpTransport._transmit": "aa8941d5f8f020e8",
    "RTCSctpTransport._send_sack": "ac92513522fa60e7",
    "InboundStream.add_chunk": "de934faf324b1b4b",
    "InboundStream.pop_messages": "bd29de9aa7c4f8fd",
}


def test_the_sctp_code_the_data_path_mirrors_is_unchanged() -> None:
    from aiortc import rtcsctptransport

    for name, digest in MIRRORED_SCTP_SOURCES.items():
        owner, method = name.split(".")
        source = inspect.getsource(getattr(getattr(rtcsctptransport, owner), method))
        assert hashlib.sha256(source.encode()).hexdigest()[:16] == digest, (
            f"{UPGRADE_HINT}: {name} changed (sctp_compat mirrors it)"
        )


async def test_tuned_receiver_delivers_what_stock_aiortc_does() -> None:
    # Every shape of message the in-order path and aiortc's own path handle.
    messages: list[str | bytes] = [
        "",
        b"",
        "x",
        b"\x00",
        "é" * 700,
        bytes(range(256)) * 5,
        b"y" * 65536,
        "z" * 3000,
        b"w" * 1161,
        b"v" * 1162,
    ]
    received: dict[bool, list[Any]] = {}
    for tuned in (False, True):
        pair = SctpPair()
        if tuned:
            sctp_compat.tuneSctpTransport(pair.server, moreWaiting=pair.moreWaiting)
        await pair.start()
        sending, receiving = pair.channels()
        got: list[Any] = []
        receiving.on("message", got.append)
        slowPath: list[Any] = []
        receiveChunk = pair.server._receive_chunk

        async def countingReceiveChunk(
            chunk: Any, seen: list[Any] = slowPath, receive: Any = receiveChunk
        ) -> None:
            seen.append(chunk)
            await receive(chunk)

        pair.server._receive_chunk = countingReceiveChunk  # type: ignore[method-assign]
        for message in messages * 3:
            sending.send(message)
        await pair.pump()
        received[tuned] = got
        if tuned:  # in order: none of it went through aiortc's general path
            assert not any(isinstance(chunk, DataChunk) for chunk in slowPath)
    assert received[False] == messages * 3
    assert received[True] == received[False]


def dataPackets(pair: SctpPair) -> list[bytes]:
    """Everything the client has to send, as DATA packets held back (the server sees none)."""
    pair.client._cwnd = 1 << 30
    return [p for p in pair.clientDtls.take() if isData(p)]


async def sendAll(pair: SctpPair, channel: Any, messages: list[Any]) -> list[bytes]:
    for message in messages:
        channel.send(message)
    for _ in range(5):
        await asyncio.sleep(0)
    pair.client._cwnd = 1 << 30
    while pair.client._outbound_queue or pair.client._data_channel_queue:
        await pair.client._data_channel_flush()
        await pair.client._transmit()
    return [p for p in pair.clientDtls.take() if isData(p)]


def sackOf(packets: list[bytes]) -> Any:
    [sack] = [c for p in packets for c in chunksOf(p) if isinstance(c, SackChunk)]
    return sack


async def tunedReceiver(
    sackPolicy: SackPolicy | None = None,
) -> tuple[SctpPair, sctp_compat.SctpTuning, Any, list[Any]]:
    """A started pair whose server side is tuned: the pair, its tuning, the client's sending
    channel and the messages the server's channel received."""
    pair = SctpPair()
    tuning = sctp_compat.tuneSctpTransport(
        pair.server, sackPolicy=sackPolicy, moreWaiting=pair.moreWaiting
    )
    await pair.start()
    sending, receiving = pair.channels()
    got: list[Any] = []
    receiving.on("message", got.append)
    return pair, tuning, sending, got


async def test_tuned_receiver_acknowledges_every_second_packet_and_a_lone_one_later() -> None:
    pair, tuning, sending, got = await tunedReceiver(SackPolicy(maxDelay=0.0))
    packets = await sendAll(pair, sending, [f"m{i}" for i in range(5)])
    assert len(packets) == 5
    pair.serverDtls.take()
    await pair.deliver(packets[:4], pair.server)
    sacks = [p for p in pair.serverDtls.take() if isSack(p)]
    assert len(sacks) == 2  # after packets 2 and 4
    await pair.deliver(packets[4:], pair.server)
    assert not pair.serverDtls.sent  # the fifth waits for the timer
    for _ in range(5):
        await asyncio.sleep(0)  # maxDelay 0: the timer fires on the next turns
    assert sackOf(pair.serverDtls.take()).cumulative_tsn == pair.server._last_received_tsn
    assert got == [f"m{i}" for i in range(5)]
    assert tuning.sackPolicy.sacksSent == 3


async def test_tuned_receiver_acknowledges_a_burst_read_together_four_packets_at_a_time() -> None:
    pair, tuning, sending, got = await tunedReceiver()
    packets = await sendAll(pair, sending, [f"m{i}" for i in range(10)])
    assert len(packets) == 10
    pair.serverDtls.take()
    first = pair.server._last_received_tsn
    await pair.deliver(packets, pair.server, together=True)
    sacks = [sackOf([p]) for p in pair.serverDtls.take() if isSack(p)]
    # After the 4th and 8th packet of the burst, and the 10th (its end: the rule of two).
    assert [sack.cumulative_tsn - first for sack in sacks] == [4, 8, 10]
    assert got == [f"m{i}" for i in range(10)]
    assert tuning.sackPolicy.sacksSent == 3


async def test_datagrams_waiting_reads_the_ice_connections_queue() -> None:
    gatherer = RTCIceGatherer(iceServers=[])
    dtls = RTCDtlsTransport(RTCIceTransport(gatherer), [RTCCertificate.generateCertificate()])
    waiting = sctp_compat.datagramsWaiting(RTCSctpTransport(dtls))
    assert waiting() is False
    gatherer._connection._queue.put_nowait((b"x", 1))  # what aioice queues per datagram
    assert waiting() is True, UPGRADE_HINT


async def test_tuned_receiver_reports_gaps_and_duplicates_at_once() -> None:
    pair, _, sending, got = await tunedReceiver()
    # One 5000-byte message (5 fragments) then two small ones; fragment 3 comes late.
    messages: list[Any] = [b"a" * 5000, "b", "c"]
    packets = await sendAll(pair, sending, messages)
    assert len(packets) == 7
    pair.serverDtls.take()
    await pair.deliver(packets[:2], pair.server)
    assert len(pair.serverDtls.take()) == 1  # every second packet
    await pair.deliver([packets[3]], pair.server)
    sack = sackOf(pair.serverDtls.take())  # the gap, at once
    assert sack.gaps == [(2, 2)]
    await pair.deliver(packets[4:], pair.server)
    assert len([p for p in pair.serverDtls.take() if isSack(p)]) == 3  # one per packet
    assert got == []
    await pair.deliver([packets[2]], pair.server)  # the gap closes: all delivered, acked
    assert sackOf(pair.serverDtls.take()).gaps == []
    assert got == messages
    await pair.deliver([packets[0]], pair.server)  # a duplicate: reported at once
    assert sackOf(pair.serverDtls.take()).duplicates == [chunksOf(packets[0])[0].tsn]
    # The in-order path takes over again afterwards.
    sending.send("d")
    await pair.pump()
    assert got == [*messages, "d"]


async def test_send_budget_spreads_a_burst_over_turns() -> None:
    pair = SctpPair()
    tuning = sctp_compat.tuneSctpTransport(
        pair.client, sendBudget=SendBudget(8 * 1024), moreWaiting=pair.moreWaiting
    )
    await pair.start()
    sending, receiving = pair.channels()
    got: list[Any] = []
    receiving.on("message", got.append)
    pair.client._cwnd = 1 << 30
    for index in range(40):
        sending.send(bytes([index]) * 1000)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    firstTurn = sum(len(p) for p in pair.clientDtls.sent if isData(p))
    assert 0 < firstTurn <= 8 * 1024 + 1200
    await pair.pump()
    assert got == [bytes([index]) * 1000 for index in range(40)]
    assert tuning.sendBudget.turnsExhausted >= 3


async def test_datagram_sockets_get_a_large_buffer_and_are_read_in_batches() -> None:
    gatherer = RTCIceGatherer(iceServers=[])
    await gatherer.gather()
    try:
        connection = gatherer._connection
        protocols = [p for p in connection._protocols if ":" not in p.local_candidate.host]
        assert protocols, "no IPv4 host candidate"
        granted = sctp_compat.tuneDatagramSockets(gatherer)
        with open("/proc/sys/net/core/rmem_max") as limit:
            rmemMax = int(limit.read())
        assert granted and min(granted) >= min(sctp_compat.RECEIVE_BUFFER_BYTES, rmemMax)
        assert sctp_compat.tuneDatagramSockets(gatherer) == []  # once per socket
        candidate = protocols[0].local_candidate
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for index in range(20):
                sender.sendto(b"\x17" + bytes([index]) * 99, (candidate.host, candidate.port))
        # asyncio's reader runs once per turn: one turn takes all twenty.
        for _ in range(100):
            await asyncio.sleep(0)
            if not connection._queue.empty():
                break
        assert connection._queue.qsize() == 20, UPGRADE_HINT
    finally:
        await gatherer._connection.close()


async def test_a_batch_leaves_in_gso_runs_and_arrives_in_order_on_a_connected_pair(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.unit.ice_dtls_peer import RouterSide, clientFor, restrictToLoopback

    restrictToLoopback(monkeypatch)
    calls: list[tuple[int, int]] = []  # (bytes, segment size) of each GSO send
    sendmsg = socket.socket.sendmsg

    def recording(sock: socket.socket, buffers: Any, ancdata: Any = (), *args: Any) -> int:
        for level, kind, data in ancdata:
            if (level, kind) == (socket.SOL_UDP, compat.UDP_SEGMENT):
                calls.append((sum(map(len, buffers)), int.from_bytes(data, sys.byteorder)))
        return sendmsg(sock, buffers, ancdata, *args)

    monkeypatch.setattr(socket.socket, "sendmsg", recording)
    router = RouterSide()
    await router.gather()
    client = clientFor(router)
    received: list[bytes] = []
    sizes = [100] * 5 + [40] + [200] * 3 + [300]  # runs: 5 + a shorter last, 3, and one alone
    done = asyncio.Event()

    class Receiver:
        async def _handle_rtp_packet(self, packet: object, arrival_time_ms: int) -> None:
            received.append(bytes(packet.payload))  # type: ignore[attr-defined]
            if len(received) == len(sizes):
                done.set()

    def rtp(index: int, size: int) -> bytes:
        packet = aiortc.rtp.RtpPacket(payload_type=96, sequence_number=index, ssrc=4321)
        packet.payload = bytes([index]) * size
        return bytes(packet.serialize())

    try:
        await client.signal()
        await client.waitConnected()
        router.dtls._rtp_router.register_receiver(Receiver(), ssrcs=[4321], payload_types=[96])
        before = next(iter(compat.dtlsStats(client.dtlsTransport).values())).packetsSent
        compat.sendRtpBatchNow(client.dtlsTransport, [rtp(i, n) for i, n in enumerate(sizes)])
        await asyncio.wait_for(done.wait(), 5)
        # The peer gets every datagram as sent: the kernel cut the runs apart.
        assert received == [bytes([i]) * n for i, n in enumerate(sizes)], UPGRADE_HINT
        # Two runs in one call each (12 bytes of header and 16 of SRTP tag per datagram); the
        # lone 300-byte packet went by itself.
        assert calls == [(5 * 128 + 68, 128), (3 * 228, 228)], UPGRADE_HINT
        after = next(iter(compat.dtlsStats(client.dtlsTransport).values())).packetsSent
        assert after == before + len(sizes)
    finally:
        await client.close()
        await router.close()
    with pytest.raises(ConnectionError):
        compat.sendRtpBatchNow(client.dtlsTransport, [rtp(0, 10)])


async def _datagramPair() -> tuple[asyncio.DatagramTransport, asyncio.Queue[bytes], Any]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            queue.put_nowait(data)

    receiver, _ = await loop.create_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
    sender, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    return sender, queue, receiver


async def _take(queue: asyncio.Queue[bytes], count: int) -> list[bytes]:
    return [await asyncio.wait_for(queue.get(), 5) for _ in range(count)]


async def test_a_socket_that_refuses_gso_gets_one_datagram_per_call_from_then_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused: list[int] = []

    def eio(sock: socket.socket, *args: Any) -> int:
        refused.append(1)
        raise OSError(5, "Input/output error")  # what a device without checksum offload says

    sender, queue, receiver = await _datagramPair()
    monkeypatch.setattr(socket.socket, "sendmsg", eio)
    address = receiver.get_extra_info("sockname")
    try:
        assert compat._gsoSocket(sender) is not None, UPGRADE_HINT  # asyncio's _sock
        batch = [bytes([i]) * 50 for i in range(4)]
        compat._sendDatagrams(sender, batch, address)
        assert await _take(queue, 4) == batch
        compat._sendDatagrams(sender, batch, address)
        assert await _take(queue, 4) == batch
        assert refused == [1]  # asked once, never again on this socket
    finally:
        sender.close()
        receiver.close()


async def test_a_full_socket_leaves_the_rest_of_a_batch_to_the_transport_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sendmsg = socket.socket.sendmsg
    full = [True]

    def onceFull(sock: socket.socket, *args: Any) -> int:
        if full.pop() if full else False:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return sendmsg(sock, *args)

    sender, queue, receiver = await _datagramPair()
    monkeypatch.setattr(socket.socket, "sendmsg", onceFull)
    try:
        batch = [bytes([i]) * 80 for i in range(6)] + [b"last"]
        compat._sendDatagrams(sender, batch, receiver.get_extra_info("sockname"))
        assert await _take(queue, len(batch)) == batch
        assert compat._gsoSocket(sender) is not None  # a full buffer is not a refusal
    finally:
        sender.close()
        receiver.close()


async def test_a_datagram_the_transport_buffered_keeps_the_rest_of_the_batch_behind_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sender, queue, receiver = await _datagramPair()
    sock = sender.get_extra_info("socket")
    sendto = type(sender).sendto
    buffered: list[bytes] = []

    def bufferTheFirst(self: Any, data: bytes, addr: Any = None) -> None:
        if not buffered:  # as asyncio does when the socket says EAGAIN
            buffered.append(data)
            self._buffer.append((data, addr))
            self._buffer_size += len(data)
            self._loop._add_writer(self._sock_fd, self._sendto_ready)
            return
        sendto(self, data, addr)

    monkeypatch.setattr(type(sender), "sendto", bufferTheFirst)
    try:
        assert sock is not None
        batch = [b"alone", *[bytes([i]) * 60 for i in range(4)]]  # a single, then a run
        compat._sendDatagrams(sender, batch, receiver.get_extra_info("sockname"))
        assert await _take(queue, len(batch)) == batch  # the run waited for the buffered one
    finally:
        sender.close()
        receiver.close()
