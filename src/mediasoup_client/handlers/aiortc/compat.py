"""Every use of aiortc/aioice internals, in one place (pinned: aiortc 1.16.0, aioice 0.13.0).

aiortc's public ORTC objects cover ICE/DTLS/SCTP setup, but mediasoup needs a few things they
do not expose: the ICE-controlling role (mediasoup is ICE-lite), raw SRTP send for our own RTP
streams, RTCP routing by SSRC to our senders, and credential-only ICE restarts.
``tests/unit/test_aiortc_compat.py`` fails loudly if an aiortc upgrade changes any of these.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from aioice import stun
from aiortc import (
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceServer,
    RTCIceTransport,
    RTCRtpReceiver,
)
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import connection_kwargs
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import is_rtcp

PINNED_AIORTC = "1.16.0"

logger = logging.getLogger(__name__)


def setIceControlling(gatherer: RTCIceGatherer, controlling: bool) -> None:
    """mediasoup is ICE-lite and answers 487 to a controlled peer: we must control."""
    gatherer._connection.ice_controlling = controlling


def setIceServers(gatherer: RTCIceGatherer, iceServers: list[RTCIceServer]) -> None:
    """Replace the STUN/TURN servers of a gatherer that has not gathered yet (aiortc reads
    them only in its constructor; aioice uses them when it gathers)."""
    connection = gatherer._connection
    settings = connection_kwargs(iceServers)
    for name in ("stun_server", "turn_server", "turn_username", "turn_password"):
        setattr(connection, name, settings.get(name))
    connection.turn_ssl = settings.get("turn_ssl", False)
    connection.turn_transport = settings.get("turn_transport", "udp")


def nominatedAddresses(transport: RTCIceTransport) -> tuple[str, str] | None:
    """The local and remote "host:port" of the selected ICE pair, if one was nominated."""
    pair = transport._connection._nominated.get(1)
    if pair is None:
        return None
    local, remote = pair.local_candidate, pair.remote_candidate
    return f"{local.host}:{local.port}", f"{remote.host}:{remote.port}"


async def checkConsent(transport: RTCIceTransport) -> bool:
    """One consent check (RFC 7675: a STUN binding request, not retransmitted) on the
    selected pair; True when the peer answered. aioice's own checks only run every ~5 s and
    say nothing until they have failed for ~30 s."""
    connection = transport._connection
    pair = connection._nominated.get(1)
    password = connection.remote_password
    if pair is None or password is None:
        return False
    request = connection.build_request(pair, nominate=False)
    try:
        await pair.protocol.request(
            request, pair.remote_addr, integrity_key=password.encode("utf8"), retransmissions=0
        )
    except (stun.TransactionError, ConnectionError, OSError):
        return False
    return True


def restartIceCredentials(transport: RTCIceTransport, usernameFragment: str, password: str) -> None:
    """Apply the server's new ICE credentials to the live session (aiortc cannot re-gather)."""
    connection = transport._connection
    connection.remote_username = usernameFragment
    connection.remote_password = password


async def sendRtp(dtls: RTCDtlsTransport, packet: bytes) -> None:
    """Protect with SRTP (or SRTCP, by packet type) and send; ConnectionError if not connected."""
    await dtls._send_rtp(packet)


def sendRtpNow(dtls: RTCDtlsTransport, packet: bytes) -> None:
    """``sendRtp`` without awaiting: protect and hand the datagram to the nominated pair's
    socket (or TURN allocation) at once, counting it in the transport's stats as aiortc
    does. A send path that batches or paces cannot afford a coroutine per packet."""
    if dtls._state != DtlsState.CONNECTED:
        raise ConnectionError("Cannot send encrypted RTP, not connected")
    srtp = dtls._tx_srtp
    data = srtp.protect_rtcp(packet) if is_rtcp(packet) else srtp.protect(packet)
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        raise ConnectionError("Cannot send data, not connected")
    pair.protocol.transport.sendto(data, pair.remote_addr)
    counted: Any = dtls  # aiortc's private (name-mangled) counters behind _get_stats()
    counted._RTCDtlsTransport__tx_bytes += len(data)
    counted._RTCDtlsTransport__tx_packets += 1


def addRtcpRecipient(dtls: RTCDtlsTransport, recipient: Any, ssrcs: Iterable[int]) -> None:
    """Route inbound RTCP about ``ssrcs`` to ``recipient._handle_rtcp_packet(packet)``
    (aiortc's router treats it like one of its RTP senders)."""
    for ssrc in ssrcs:
        dtls._rtp_router.register_sender(recipient, ssrc)


def removeRtcpRecipient(dtls: RTCDtlsTransport, recipient: Any) -> None:
    dtls._rtp_router.unregister_sender(recipient)


def tapRtcp(dtls: RTCDtlsTransport, listener: Callable[[bytes], None]) -> Callable[[], None]:
    """Hand every decrypted inbound RTCP datagram to ``listener`` before aiortc parses it
    (its parser reads any RTPFB as a NACK, so transport-cc feedback is lost there). Wraps the
    transport's ``_handle_rtcp_data`` on the instance; returns what removes this tap."""
    taps: list[Callable[[bytes], None]] | None = getattr(dtls, "_msc_rtcp_taps", None)
    if taps is None:
        taps = []
        original = dtls._handle_rtcp_data

        async def handle(data: bytes) -> None:
            for tap in list(taps):
                try:
                    tap(data)
                except Exception:
                    logger.exception("RTCP tap failed")
            await original(data)

        dtls._handle_rtcp_data = handle  # type: ignore[method-assign]
        dtls._msc_rtcp_taps = taps  # type: ignore[attr-defined]
    taps.append(listener)

    def remove() -> None:
        if listener in taps:
            taps.remove(listener)

    return remove


def dtlsStats(dtls: RTCDtlsTransport) -> Any:
    """The transport's RTCStatsReport (bytes/packets both ways, DTLS state)."""
    return dtls._get_stats()


def attachReceiverTrack(receiver: RTCRtpReceiver, kind: str, trackId: str) -> None:
    """Give an ORTC-created receiver the track its decoder feeds (RTCPeerConnection does
    this itself; a bare RTCRtpReceiver has none)."""
    receiver._track = RemoteStreamTrack(kind=kind, id=trackId)


def setReceiverRtcpSsrc(receiver: RTCRtpReceiver, ssrc: int) -> None:
    """The SSRC a receiver's reports and feedback (RR, NACK, PLI) are sent from."""
    receiver._set_rtcp_ssrc(ssrc)


async def sendReceiverPli(receiver: RTCRtpReceiver, mediaSsrc: int) -> None:
    await receiver._send_rtcp_pli(mediaSsrc)


def setReceiverEnabled(receiver: RTCRtpReceiver, enabled: bool) -> None:
    """A disabled receiver drops inbound RTP before the jitter buffer (consumer pause)."""
    receiver._enabled = enabled
