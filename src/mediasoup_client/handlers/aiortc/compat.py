"""Every use of aiortc/aioice internals, in one place (pinned: aiortc 1.16.0, aioice 0.13.0).

aiortc's public ORTC objects cover ICE/DTLS/SCTP setup, but mediasoup needs a few things they
do not expose: the ICE-controlling role (mediasoup is ICE-lite), raw SRTP send for our own RTP
streams, RTCP routing by SSRC to our senders, inbound RTP routing to our receivers (as
aiortc's own RTCRtpReceiver registers itself), and credential-only ICE restarts. Below aiortc:
pyOpenSSL's ``Connection`` (pinned too), read and written with less Python per DTLS record.
``tests/unit/test_aiortc_compat.py`` fails loudly if an aiortc upgrade changes any of these.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import socket
import struct
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from aioice import stun
from aiortc import (
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceServer,
    RTCIceTransport,
)
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import connection_kwargs
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpReceiveParameters
from aiortc.rtp import RTCP_PSFB, RTCP_PSFB_APP, RTCP_RTPFB, is_rtcp
from OpenSSL import SSL
from OpenSSL._util import ffi as _sslFfi
from OpenSSL._util import lib as _sslLib

from .rtp_port import RtpListener, RtpRoute
from .send.cc.transport_feedback import FMT_TRANSPORT_FEEDBACK

PINNED_AIORTC = "1.16.0"
PINNED_PYOPENSSL = "26.4.0"  # fastDtlsRecords: its Connection's internals
PINNED_PYLIBSRTP = "1.0.0"  # growSrtpBufferOnDemand: its Session's buffer

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


def dtlsConnected(dtls: RTCDtlsTransport) -> bool:
    """``dtls.state == "connected"`` without the public property, which formats the state's
    enum name as a string on every call (asked for every packet and every producer's frame)."""
    return dtls._state is DtlsState.CONNECTED


def sendRtpNow(dtls: RTCDtlsTransport, packet: bytes) -> None:
    """``sendRtp`` without awaiting: protect and hand the datagram to the nominated pair's
    socket (or TURN allocation) at once, counting it in the transport's stats as aiortc
    does. A send path that batches or paces cannot afford a coroutine per packet."""
    _protectAndSend(dtls, [packet])


def sendRtpBatchNow(dtls: RTCDtlsTransport, packets: Sequence[bytes]) -> None:
    """``sendRtpNow`` for several packets at once, in order. On a plain UDP socket, runs of
    datagrams of one size (the last of a run may be shorter) leave in one system call with
    UDP generic segmentation offload: the kernel cuts them apart, so the peer receives the
    same datagrams. Measured on loopback to the SFU: the per-packet ``sendto`` was a quarter
    to half of a packet's send cost, and one shared Opus frame goes to 32 producers' streams
    of equal size at a time. Elsewhere (TURN, ICE-TCP, a kernel without GSO, a full socket
    buffer) each datagram goes through the transport as ``sendRtpNow`` does."""
    _protectAndSend(dtls, packets)


def _protectAndSend(dtls: RTCDtlsTransport, packets: Sequence[bytes]) -> None:
    if dtls._state is not DtlsState.CONNECTED:
        raise ConnectionError("Cannot send encrypted RTP, not connected")
    srtp = dtls._tx_srtp
    protect, protectRtcp = srtp.protect, srtp.protect_rtcp
    datagrams = [protectRtcp(p) if is_rtcp(p) else protect(p) for p in packets]
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        raise ConnectionError("Cannot send data, not connected")
    _sendDatagrams(pair.protocol.transport, datagrams, pair.remote_addr)
    counted: Any = dtls  # aiortc's private (name-mangled) counters behind _get_stats()
    counted._RTCDtlsTransport__tx_bytes += sum(map(len, datagrams))
    counted._RTCDtlsTransport__tx_packets += len(datagrams)


UDP_SEGMENT = 103  # <linux/udp.h>: the segment size of a GSO send, as a cmsg or socket option
MAX_GSO_SEGMENTS = 64  # UDP_MAX_SEGMENTS
MAX_GSO_BYTES = 65_000  # below the largest UDP datagram, headers included
_gsoRefused: weakref.WeakSet[Any] = weakref.WeakSet()  # transports whose socket said no


def _gsoSocket(transport: Any) -> socket.socket | None:
    """The socket of a plain asyncio UDP transport with nothing buffered (so a direct send
    keeps the order), where GSO has not failed before; None otherwise."""
    if not sys.platform.startswith("linux") or transport in _gsoRefused:
        return None
    sock = getattr(transport, "_sock", None)  # asyncio's _SelectorDatagramTransport
    buffered = getattr(transport, "get_write_buffer_size", None)
    if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_DGRAM:
        return None
    if buffered is None or buffered() or transport.is_closing():
        return None
    return sock


def _sendDatagrams(transport: Any, datagrams: list[bytes], address: Any) -> None:
    sock = _gsoSocket(transport) if len(datagrams) > 1 else None
    index, count = 0, len(datagrams)
    while index < count:
        size = len(datagrams[index])
        end = index + 1
        if sock is not None:
            total = size
            limit = min(count, index + MAX_GSO_SEGMENTS)
            while end < limit and total + size <= MAX_GSO_BYTES:
                length = len(datagrams[end])
                if length > size:
                    break
                end += 1
                total += length
                if length < size:
                    break  # a shorter one ends the run
        if end - index == 1 or sock is None:
            transport.sendto(datagrams[index], address)
            index += 1
            if sock is not None and transport.get_write_buffer_size():
                sock = None  # that one was buffered: what follows must queue behind it
            continue
        try:
            sock.sendmsg(
                [b"".join(datagrams[index:end])],
                [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))],
                0,
                address,
            )
        except BlockingIOError:
            sock = None  # the socket is full: the transport buffers the rest, in order
            continue
        except OSError as error:
            # No GSO here (an old kernel, a device that cannot): never again on this socket.
            logger.debug("UDP GSO refused (%s): one datagram per call from now on", error)
            _gsoRefused.add(transport)
            sock = None
            continue
        index = end


# Room for SRTCP datagrams up to the largest UDP payload, given to a session only once it
# meets a longer one than its own buffer (every session holding 64 KiB cost 128 KiB of RSS
# per transport; RTP itself stays within the MTU).
SRTP_BUFFER_BYTES = 65536
_SRTCP_TRAILER_ROOM = 64  # >= pylibsrtp's SRTP_MAX_SRTCP_TRAILER_LEN


def acceptLargeSrtp(dtls: RTCDtlsTransport) -> None:
    """Let the transport's SRTP sessions take RTCP datagrams longer than 1500 bytes.
    pylibsrtp's ``Session`` has a fixed 1500-byte buffer and raises ``ValueError`` on a longer
    packet, which ends aiortc's DTLS transport; mediasoup sends longer compound RTCP to a
    transport with many streams (measured: 100 Opus producers on one transport, the transport
    failed within a second). Wraps ``_setup_srtp`` on the instance: once the handshake has
    made the sessions, their RTCP methods grow the buffer to SRTP_BUFFER_BYTES when needed."""
    setup = dtls._setup_srtp

    def setupWithLargeBuffers() -> None:
        setup()
        for session in (dtls._rx_srtp, dtls._tx_srtp):
            if session is not None:
                growSrtpBufferOnDemand(session)

    dtls._setup_srtp = setupWithLargeBuffers  # type: ignore[method-assign]


def growSrtpBufferOnDemand(session: Any) -> None:
    """Wrap a pylibsrtp ``Session``'s RTCP methods (on the instance) so that a packet longer
    than its buffer first gets it a buffer of SRTP_BUFFER_BYTES."""
    from pylibsrtp._binding import ffi

    def grown(method: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        def call(packet: bytes) -> bytes:
            if len(packet) + _SRTCP_TRAILER_ROOM > len(session._cdata):
                cdata = ffi.new("char[]", SRTP_BUFFER_BYTES)
                session._cdata = cdata
                session._buffer = ffi.buffer(cdata)
            return method(packet)

        return call

    session.protect_rtcp = grown(session.protect_rtcp)
    session.unprotect_rtcp = grown(session.unprotect_rtcp)


# What aiortc asks for in one call (1500); a larger request goes through pyOpenSSL as it is.
_RECORD_BUFFER_BYTES = 2048


class _FastRecordConnection(SSL.Connection):
    """pyOpenSSL's ``Connection`` for an association whose handshake is done, with the four
    calls aiortc makes per datagram (``bio_write``, ``recv``, ``bio_read``, ``send``) going
    straight to OpenSSL: one reused buffer instead of a new one per call, and no error lookup
    when the call succeeded. Failures take pyOpenSSL's own path, so callers see the same
    results and exceptions. Measured on a DTLS pair in memory: a 1150-byte record in and the
    empty flush after it, 4.0 -> 2.5 us (a data-channel burst is ~30 us per datagram)."""

    _recordBuffer: Any

    def bio_write(self, buf: Any) -> int:
        if self._into_ssl is None or not isinstance(buf, bytes):
            return super().bio_write(buf)
        result: int = _sslLib.BIO_write(self._into_ssl, buf, len(buf))
        if result <= 0:
            self._handle_bio_errors(self._into_ssl, result)
        return result

    def recv(self, bufsiz: int, flags: int | None = None) -> bytes:
        if flags is not None or bufsiz > _RECORD_BUFFER_BYTES:
            return super().recv(bufsiz, flags)
        buffer = self._recordBuffer
        result = _sslLib.SSL_read(self._ssl, buffer, bufsiz)
        if result > 0:
            return _sslFfi.buffer(buffer, result)[:]  # type: ignore[no-any-return]
        self._raise_ssl_error(self._ssl, result)  # WantRead, ZeroReturn, an SSL error
        return b""

    def bio_read(self, bufsiz: int) -> bytes:
        if self._from_ssl is None or not isinstance(bufsiz, int) or bufsiz > _RECORD_BUFFER_BYTES:
            return super().bio_read(bufsiz)
        buffer = self._recordBuffer
        result = _sslLib.BIO_read(self._from_ssl, buffer, bufsiz)
        if result > 0:
            return _sslFfi.buffer(buffer, result)[:]  # type: ignore[no-any-return]
        self._handle_bio_errors(self._from_ssl, result)  # nothing pending: WantReadError
        return b""

    def send(self, buf: Any, flags: int = 0) -> int:
        if not isinstance(buf, bytes):
            return super().send(buf, flags)
        result: int = _sslLib.SSL_write(self._ssl, buf, len(buf))
        if result <= 0:
            self._raise_ssl_error(self._ssl, result)
        return result


def fastDtlsRecords(dtls: RTCDtlsTransport) -> bool:
    """Once ``dtls`` is connected: its records are read and written with less Python per
    datagram (``_FastRecordConnection``). Not before: the handshake keeps pyOpenSSL's checks
    after every call (its certificate callback's errors). Returns whether it took effect."""
    connection = dtls._ssl
    if dtls.state != "connected" or type(connection) is not SSL.Connection:
        return False
    _fastenConnection(connection)
    return True


def _fastenConnection(connection: SSL.Connection) -> None:
    """Make a stock pyOpenSSL connection a ``_FastRecordConnection`` in place."""
    connection.__class__ = _FastRecordConnection
    cast(_FastRecordConnection, connection)._recordBuffer = _sslFfi.new(
        "char[]", _RECORD_BUFFER_BYTES
    )


def addRtcpRecipient(dtls: RTCDtlsTransport, recipient: Any, ssrcs: Iterable[int]) -> None:
    """Route inbound RTCP about ``ssrcs`` to ``recipient._handle_rtcp_packet(packet)``
    (aiortc's router treats it like one of its RTP senders)."""
    for ssrc in ssrcs:
        dtls._rtp_router.register_sender(recipient, ssrc)


def removeRtcpRecipient(dtls: RTCDtlsTransport, recipient: Any) -> None:
    dtls._rtp_router.unregister_sender(recipient)


def onlyCongestionFeedback(data: bytes) -> bool:
    """True when a (compound) RTCP datagram holds nothing but transport-cc feedback and
    REMB: what the taps read, and what aiortc has no use for (it would parse the feedback as a
    NACK and route it by SSRC to producers that ignore it). mediasoup sends such a datagram
    about every 100 ms per transport: most of the RTCP a sender receives."""
    position = 0
    end = len(data)
    while position + 4 <= end:
        first = data[position]
        packet_type = data[position + 1]
        fmt = first & 0x1F
        if first >> 6 != 2 or not (
            (packet_type == RTCP_RTPFB and fmt == FMT_TRANSPORT_FEEDBACK)
            or (packet_type == RTCP_PSFB and fmt == RTCP_PSFB_APP)  # REMB
        ):
            return False
        position += 4 + ((data[position + 2] << 8) | data[position + 3]) * 4
    return position == end and end > 0


def tapRtcp(dtls: RTCDtlsTransport, listener: Callable[[bytes], None]) -> Callable[[], None]:
    """Hand every decrypted inbound RTCP datagram to ``listener`` before aiortc parses it
    (its parser reads any RTPFB as a NACK, so transport-cc feedback is lost there); datagrams
    of only transport-cc feedback and REMB stop at the taps. Wraps the transport's
    ``_handle_rtcp_data`` on the instance; returns what removes this tap."""
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
            if not onlyCongestionFeedback(data):
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


_SIOCGSTAMP = 0x8906  # Linux: the kernel's receive time of the last datagram read
_TIMEVAL = struct.Struct("@qq")


class ArrivalClock:
    """When each datagram the DTLS transport reads reached us.

    The receive loop handles one datagram per event-loop turn, so a busy loop (decoding,
    encoding on the same process) would bunch arrival times up: transport-cc feedback would
    then tell the router's estimator the downlink is faster or burstier than it is. On Linux the
    kernel's receive timestamp of each datagram is read right after asyncio's ``recvfrom``
    (ioctl SIOCGSTAMP); elsewhere, the time aioice got it. ``current`` is the arrival time
    (``time.monotonic()`` scale) of the datagram the DTLS transport is handling now."""

    def __init__(self) -> None:
        self._queued: collections.deque[float] = collections.deque()
        self._kernel: float | None = None
        self.current: float | None = None
        self.kernelStamps = 0

    def _received(self) -> None:
        stamp, self._kernel = self._kernel, None
        self._queued.append(stamp if stamp is not None else time.monotonic())

    def _taken(self) -> None:
        self.current = self._queued.popleft() if self._queued else time.monotonic()

    def _readKernelStamp(self, fd: int) -> None:
        try:
            seconds, micros = _TIMEVAL.unpack(fcntl.ioctl(fd, _SIOCGSTAMP, bytes(_TIMEVAL.size)))
        except OSError:
            return  # the first call only switches the socket's timestamping on
        wall, mono = time.time(), time.monotonic()
        age = wall - (seconds + micros / 1e6)
        if 0 <= age < 1.0:
            self._kernel = mono - age
            self.kernelStamps += 1


def stampArrivals(transport: RTCIceTransport) -> ArrivalClock:
    """Track arrival times for ``transport``'s datagrams (after gathering: the host sockets
    exist). Wraps, on these instances only, aioice's datagram hand-off and aiortc's read."""
    clock = ArrivalClock()
    connection = transport._connection
    queued = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        clock._received()
        queued(data, component)

    connection.data_received = data_received  # type: ignore[method-assign]
    if sys.platform.startswith("linux"):
        for protocol in connection._protocols:
            socket = protocol.transport.get_extra_info("socket") if protocol.transport else None
            if socket is None:
                continue
            fd = socket.fileno()
            clock._readKernelStamp(fd)  # switches the socket's timestamping on
            handed = protocol.datagram_received

            def datagram_received(
                data: bytes | str, addr: Any, _handed: Any = handed, _fd: int = fd
            ) -> None:
                # Only RTP and RTCP (first byte 128-191, RFC 7983) need their arrival time;
                # the ioctl was ~3 % of our consumer's CPU during a data-channel burst.
                if isinstance(data, bytes) and data and 127 < data[0] < 192:
                    clock._readKernelStamp(_fd)
                _handed(data, addr)

            protocol.datagram_received = datagram_received  # type: ignore[method-assign]
    read = transport._recv

    async def _recv() -> bytes:
        data: bytes = await read()
        clock._taken()
        return data

    transport._recv = _recv
    return clock


class _RtpRecipient:
    """What aiortc's RTP router calls for a registered receiver (an RTCRtpReceiver's three
    internal entry points), handed on to an ``RtpListener``. aiortc's DTLS receive loop dies
    on an exception from here, so none escapes."""

    def __init__(self, listener: RtpListener, arrivals: ArrivalClock | None) -> None:
        self._listener = listener
        self._arrivals = arrivals

    async def _handle_rtp_packet(self, packet: Any, arrival_time_ms: int) -> None:
        # aiortc's arrival time is wall-clock milliseconds taken late; feedback needs better.
        arrivals = self._arrivals
        arrival = arrivals.current if arrivals is not None else None
        try:
            self._listener.onRtp(packet, arrival if arrival is not None else time.monotonic())
        except Exception:
            logger.exception("RTP listener failed")

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        try:
            self._listener.onRtcp(packet)
        except Exception:
            logger.exception("RTCP listener failed")

    def _handle_disconnect(self) -> None:
        try:
            self._listener.onTransportClosed()
        except Exception:
            logger.exception("RTP listener failed on disconnect")


def addRtpListener(
    dtls: RTCDtlsTransport,
    route: RtpRoute,
    listener: RtpListener,
    arrivals: ArrivalClock | None = None,
) -> Callable[[], None]:
    """Register ``listener`` with the transport's RTP router for ``route`` (as an
    RTCRtpReceiver registers itself): RTP by SSRC and payload type (with the arrival time
    from ``arrivals``), the sender's SR/BYE by SSRC, header extensions parsed with the route's
    ids. Returns the unregistration."""
    recipient = _RtpRecipient(listener, arrivals)
    dtls._rtp_header_extensions_map.configure(
        RTCRtpReceiveParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri)
                for ext_id, uri in route.headerExtensions
            ]
        )
    )
    dtls._rtp_router.register_receiver(
        recipient, ssrcs=list(route.ssrcs), payload_types=list(route.payloadTypes), mid=None
    )
    return lambda: dtls._rtp_router.unregister_receiver(recipient)
