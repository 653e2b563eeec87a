"""The slice of one DTLS transport that an RTP sender or receiver uses.

The transport side (``connection.py``) implements it on aiortc's ``RTCDtlsTransport``; the send
path (``send/``) and receive path only ever talk to this protocol, so they can be unit-tested
with an in-memory port that records packets and injects RTCP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

# One parsed RTCP packet as aiortc's ``aiortc.rtp`` parses them (RtcpSrPacket, RtcpRrPacket,
# RtcpPsfbPacket, RtcpRtpfbPacket, ...). Kept as Any: aiortc ships no type information here.
RtcpPacket = Any
RtcpListener = Callable[[RtcpPacket], Awaitable[None] | None]
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

    async def sendRtp(self, packet: bytes) -> None:
        """Protect (SRTP) and send one serialised RTP packet.

        Raises ``ConnectionError`` when not connected."""

    async def sendRtcp(self, packet: bytes) -> None:
        """Protect (SRTCP) and send one serialised RTCP (compound) packet."""

    def listenRtcp(self, ssrcs: Sequence[int], listener: RtcpListener) -> Callable[[], None]:
        """Route inbound RTCP about any of ``ssrcs`` to ``listener`` (reports by reportee SSRC,
        PLI/FIR/NACK by media SSRC, REMB by the SSRCs in its list). Returns an unsubscribe."""

    def listenRawRtcp(self, listener: RawRtcpListener) -> Callable[[], None]:
        """Every inbound RTCP datagram (decrypted, compound) to ``listener``, before it is
        parsed and routed: the transport's own feedback (transport-cc, which aiortc cannot
        parse, and REMB) names no sender. Returns an unsubscribe."""
