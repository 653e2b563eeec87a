"""Every aiortc/aioice internal the engine relies on still exists and behaves.

If this fails after an upgrade, do not paper over it: handlers/aiortc/compat.py needs to be
ported to the new aiortc (the pinned versions are in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import inspect

import aioice
import aiortc
import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver
from aiortc.rtcdtlstransport import RtpRouter

from mediasoup_client.handlers.aiortc import compat

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
    assert len(routed) == 1  # aiortc still routes what it parsed
    remove()
    await dtls._handle_rtcp_data(feedback.serialize())
    assert len(seen) == 1 and len(routed) == 2


async def test_receiver_internals() -> None:
    gatherer = RTCIceGatherer(iceServers=[])
    dtls = RTCDtlsTransport(RTCIceTransport(gatherer), [RTCCertificate.generateCertificate()])
    receiver = RTCRtpReceiver("video", dtls)
    compat.attachReceiverTrack(receiver, "video", "consumer-1")
    assert receiver.track.kind == "video" and receiver.track.id == "consumer-1", UPGRADE_HINT
    compat.setReceiverRtcpSsrc(receiver, 4242)
    compat.setReceiverEnabled(receiver, False)
    assert receiver._enabled is False, UPGRADE_HINT
    assert inspect.iscoroutinefunction(receiver._send_rtcp_pli), UPGRADE_HINT
    # Not connected: the PLI is dropped quietly, as aiortc's own receiver does.
    await compat.sendReceiverPli(receiver, 1234)


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

    try:
        await client.signal()
        await client.waitConnected()
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
    with pytest.raises(ConnectionError):
        compat.sendRtpNow(client.dtlsTransport, packet.serialize())
