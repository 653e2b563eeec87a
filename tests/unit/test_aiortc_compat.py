"""Every aiortc/aioice internal the engine relies on still exists and behaves.

If this fails after an upgrade, do not paper over it: handlers/aiortc/compat.py needs to be
ported to the new aiortc (the pinned versions are in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import sys
import time

import aioice
import aiortc
import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpReceiveParameters

from mediasoup_client.handlers.aiortc import compat
from mediasoup_client.handlers.aiortc.rtp_port import RtpRoute

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
            sender.sendto(bytes([0x80, index]) + bytes(20), address)  # not STUN: data
            await asyncio.sleep(0.05)
    finally:
        sender.close()
    if sys.platform.startswith("linux"):
        # Every datagram after the first (which may only switch timestamping on).
        assert clock.kernelStamps >= 2, UPGRADE_HINT
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
