"""The slice of one DTLS transport that an RTP sender or receiver uses.

The transport side (``connection.py``) implements it on aiortc's ``RTCDtlsTransport``; the send
path (``send/``) and receive path only ever talk to this protocol, so they can be unit-tested
with an in-memory port that records packets and injects RTCP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# One parsed RTCP packet as aiortc's ``aiortc.rtp`` parses them (RtcpSrPacket, RtcpRrPacket,
# RtcpPsfbPacket, RtcpRtpfbPacket, ...). Kept as Any: aiortc ships no type information here.
RtcpPacket = Any
RtcpListener = Callable[[RtcpPacket], Awaitable[None] | None]
# One parsed RTP packet (``aiortc.rtp.RtpPacket``: ssrc, payload_type, sequence_number,
# timestamp, marker, payload, extensions.transport_sequence_number, ...).
RtpPacket = Any


@dataclass(frozen=True)
class RtpRoute:
    """Which inbound RTP a receiver takes: its SSRCs (media and RTX) with their payload
    types, and the header extensions to parse (router ids, one set per transport)."""

    ssrcs: tuple[int, ...]
    payloadTypes: tuple[int, ...]
    headerExtensions: tuple[tuple[int, str], ...] = ()  # (id, uri)


class RtpListener(Protocol):
    """What the transport calls for a route. Called inline from the transport's receive loop:
    keep it short and never raise (the transport logs and drops what does)."""

    def onRtp(self, packet: RtpPacket, arrival: float) -> None:
        """One RTP packet; ``arrival`` is ``time.monotonic()`` when the transport took it."""

    def onRtcp(self, packet: RtcpPacket) -> None:
        """RTCP from the media's sender about the route's SSRCs (SR, BYE)."""

    def onTransportClosed(self) -> None:
        """DTLS closed or failed: nothing more will arrive."""
RawRtcpListener = Callable[[bytes], None]


class RtpPort(Protocol):
    @property
    def connected(self) -> bool:
        """True once DTLS is connected and SRTP keys exist; False again after close/failure."""

    async def waitConnected(self) -> None:
        """Return once connected; raise ``ConnectionError`` if the transport failed or closed."""

    def send(self, packet: bytes) -> None:
        """Protect (SRTP, or SRTCP by packet type) and send one serialised packet at once,
        without awaiting. Raises ``ConnectionError`` when not connected."""

    def sendMany(self, packets: Sequence[bytes]) -> None:
        """``send`` for several packets, in order, as cheaply as the socket allows (one
        system call for a run of equal-sized datagrams where the kernel can split them)."""

    async def sendRtp(self, packet: bytes) -> None:
        """Protect (SRTP) and send one serialised RTP packet.

        Raises ``ConnectionError`` when not connected."""

    async def sendRtcp(self, packet: bytes) -> None:
        """Protect (SRTCP) and send one serialised RTCP (compound) packet."""

    def listenRtcp(self, ssrcs: Sequence[int], listener: RtcpListener) -> Callable[[], None]:
        """Route inbound RTCP about any of ``ssrcs`` to ``listener`` (reports by reportee SSRC,
        PLI/FIR/NACK by media SSRC, REMB by the SSRCs in its list). Returns an unsubscribe."""

    def listenRtp(self, route: RtpRoute, listener: RtpListener) -> Callable[[], None]:
        """Route inbound RTP matching ``route`` (and the sender's RTCP about its SSRCs) to
        ``listener``. Returns an unsubscribe."""

    def listenRawRtcp(self, listener: RawRtcpListener) -> Callable[[], None]:
        """Every inbound RTCP datagram (decrypted, compound) to ``listener``, before it is
        parsed and routed: the transport's own feedback (transport-cc, which aiortc cannot
        parse, and REMB) names no sender. Returns an unsubscribe."""
