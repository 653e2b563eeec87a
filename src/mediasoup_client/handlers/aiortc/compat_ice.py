"""Compatibility layer (aioice 0.13 internals), beside ``compat.py``: what aioice's ICE agent
lacks for mediasoup.

- **ICE over TCP** (RFC 6544) to mediasoup's passive TCP candidates: one active local candidate
  per host address, whose protocol opens a TCP connection to each remote passive candidate it
  is paired with and carries STUN, DTLS and SRTP over it in RFC 4571 frames (a 2-byte length
  before every packet). It duck-types aioice's ``StunProtocol`` (``request``, ``send_stun``,
  ``send_data``, ``transport.sendto(data, addr)``, ``close``), so aioice's checks, nomination,
  consent checks and ``compat.sendRtpNow`` use it unchanged.
- **TURN gathering we can report on**: aioice gathers from the first TURN URL only and drops the
  reason when it fails. We gather a relay candidate from every ``turn:``/``turns:`` URL
  ourselves (with aioice's own ``relayed_candidate``) and say why each one failed.

``tests/unit/test_aiortc_compat.py`` fails loudly if an aioice upgrade changes these internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from dataclasses import dataclass
from typing import Any, cast

from aioice import stun
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol, TransportPolicy, relayed_candidate
from aiortc import RTCIceGatherer, RTCIceServer
from aiortc.rtcicetransport import parse_stun_turn_uri

logger = logging.getLogger(__name__)

# RFC 6544 section 4.2: local preference = 2^13 * direction-pref + other-pref, active host
# candidates have direction-pref 6. Lower than aioice's 65535 for UDP: UDP pairs go first.
TCP_ACTIVE_LOCAL_PREFERENCE = (6 << 13) + 8191
TCP_CONNECT_TIMEOUT = 5.0
# Beyond this much unsent data on a TCP stream, packets are dropped (as a full UDP socket
# would): a slow link must not grow an unbounded queue and an ever larger delay.
TCP_WRITE_BUFFER_LIMIT = 1 << 20
MAX_FRAME = 0xFFFF

TURN_GATHER_TIMEOUT = 5.0  # aioice's own limit for gathering
# Relay candidates over UDP are preferred to TCP, and TCP to TLS (as browsers do).
RELAY_LOCAL_PREFERENCE = {"udp": 65535, "tcp": 65534, "tls": 65533}


# RFC 4571 framing (pure).
def frame(packet: bytes) -> bytes:
    """``packet`` with its 2-byte length in front."""
    if len(packet) > MAX_FRAME:
        raise ValueError(f"a {len(packet)}-byte packet does not fit an RFC 4571 frame")
    return struct.pack("!H", len(packet)) + packet


class FrameDecoder:
    """Bytes of a stream in, whole packets out (a frame may arrive in any number of pieces)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        packets: list[bytes] = []
        while len(self._buffer) >= 2:
            length = (self._buffer[0] << 8) | self._buffer[1]
            if len(self._buffer) < 2 + length:
                break
            packets.append(bytes(self._buffer[2 : 2 + length]))
            del self._buffer[: 2 + length]
        return packets


# ICE over TCP.
class _Stream(asyncio.Protocol):
    """One TCP connection to one remote passive candidate."""

    def __init__(self, owner: IceTcpProtocol, remote: tuple[str, int]) -> None:
        self.owner = owner
        self.remote = remote
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        for packet in self.decoder.feed(data):
            self.owner.datagram_received(packet, self.remote)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.owner.streamLost(self)

    def write(self, packet: bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > TCP_WRITE_BUFFER_LIMIT:
            return False
        transport.write(frame(packet))
        return True


class _FramedSender:
    """What aioice and ``compat.sendRtpNow`` see as the protocol's datagram transport."""

    def __init__(self, owner: IceTcpProtocol) -> None:
        self._owner = owner
        self.dropped = 0  # packets not written: no stream to that address, or a full one

    def sendto(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        stream = self._owner.streams.get(addr) if addr is not None else None
        if stream is None or not stream.write(data):
            self.dropped += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self._owner.local_candidate.host, self._owner.local_candidate.port
        return default

    def is_closing(self) -> bool:
        return self._owner.isClosed

    def close(self) -> None:
        self._owner.closeStreams()


class IceTcpProtocol:
    """An active ICE-TCP host candidate (RFC 6544) on one local address, for aioice."""

    def __init__(self, receiver: Connection, host: str, component: int = 1) -> None:
        self.receiver = receiver
        self.id = f"tcp-active-{host}"
        self.transactions: dict[bytes, stun.Transaction] = {}
        self.streams: dict[tuple[str, int], _Stream] = {}
        self.isClosed = False
        # Once ICE is done, only the selected pair's stream may exist (None: no stream).
        self._done = False
        self._keep: tuple[str, int] | None = None
        self._connecting: dict[tuple[str, int], asyncio.Task[_Stream]] = {}
        self.transport = _FramedSender(self)
        self.local_candidate = Candidate(
            foundation=candidate_foundation("host", "tcp", host),
            component=component,
            transport="tcp",
            priority=candidate_priority(component, "host", TCP_ACTIVE_LOCAL_PREFERENCE),
            host=host,
            port=9,  # an active candidate has no listening port (RFC 6544 section 4.5)
            type="host",
            tcptype="active",
        )

    def __repr__(self) -> str:
        return f"protocol({self.id})"

    # What aioice's agent calls.
    async def request(
        self,
        request: stun.Message,
        addr: tuple[str, int],
        integrity_key: bytes | None = None,
        retransmissions: int | None = None,
    ) -> tuple[stun.Message, tuple[str, int]]:
        """A STUN transaction over the stream to ``addr``, connecting it first. A connection
        that cannot be made is a failed check (``TransactionTimeout``), as for UDP."""
        try:
            await self._stream(addr)
        except (TimeoutError, OSError) as error:
            logger.info("ICE-TCP: cannot connect to %s:%d: %s", addr[0], addr[1], error)
            raise stun.TransactionTimeout() from error
        if integrity_key is not None:
            request.add_message_integrity(integrity_key)
        transaction = stun.Transaction(
            request, addr, self, retransmissions=retransmissions, integrity_key=integrity_key
        )
        self.transactions[request.transaction_id] = transaction
        try:
            return await transaction.run()
        finally:
            del self.transactions[request.transaction_id]

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        self.transport.sendto(bytes(message), addr)

    async def send_data(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)

    async def close(self) -> None:
        self.isClosed = True
        for task in self._connecting.values():
            task.cancel()
        streams = list(self.streams.values())
        self.closeStreams()
        for stream in streams:
            await stream.closed

    # Streams.
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """One framed packet from ``addr``: STUN to its transaction or to the agent, anything
        else (DTLS, SRTP) to the agent's receive queue (as aioice's ``StunProtocol``)."""
        try:
            message = stun.parse_message(data)
        except ValueError:
            self.receiver.data_received(data, self.local_candidate.component)
            return
        if message.message_class in (stun.Class.RESPONSE, stun.Class.ERROR):
            transaction = self.transactions.get(message.transaction_id)
            if transaction is not None:
                transaction.response_received(message, addr)
        elif message.message_class == stun.Class.REQUEST:
            self.receiver.request_received(message, addr, self)  # type: ignore[arg-type]

    def streamLost(self, stream: _Stream) -> None:
        if self.streams.get(stream.remote) is stream:
            del self.streams[stream.remote]
        # Only losing the selected pair's stream ends the session (a recv() error reaches
        # DTLS); streams of pairs that lost the race close quietly.
        pair = self.receiver._nominated.get(self.local_candidate.component)
        ours = pair is not None and pair.protocol is self  # type: ignore[comparison-overlap]
        if ours and pair is not None and pair.remote_addr == stream.remote:
            self.receiver.protocol_lost(self)  # type: ignore[arg-type]

    def closeStreams(self, keep: tuple[str, int] | None = None) -> None:
        """Close every stream but ``keep``'s, connections still being made included, and
        refuse new ones to other addresses (pairs that lost to the selected one)."""
        self._done, self._keep = True, keep
        for remote, task in list(self._connecting.items()):
            if remote != keep:
                task.cancel()
        for remote, stream in list(self.streams.items()):
            if remote != keep and stream.transport is not None:
                stream.transport.close()

    def _refused(self, addr: tuple[str, int]) -> bool:
        return self.isClosed or (self._done and addr != self._keep)

    async def _stream(self, addr: tuple[str, int]) -> _Stream:
        if self._refused(addr):
            raise ConnectionError("ICE-TCP candidate closed")
        stream = self.streams.get(addr)
        if stream is not None:
            return stream
        task = self._connecting.get(addr)
        if task is None:
            task = asyncio.ensure_future(self._connect(addr))
            self._connecting[addr] = task
            task.add_done_callback(lambda _t: self._connecting.pop(addr, None))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the request itself was cancelled
            raise ConnectionError("ICE-TCP connection given up") from None

    async def _connect(self, addr: tuple[str, int]) -> _Stream:
        loop = asyncio.get_running_loop()
        _transport, stream = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Stream(self, addr),
                host=addr[0],
                port=addr[1],
                local_addr=(self.local_candidate.host, 0),
            ),
            TCP_CONNECT_TIMEOUT,
        )
        if self._refused(addr):
            if stream.transport is not None:
                stream.transport.close()
            raise ConnectionError("ICE-TCP candidate closed")
        self.streams[addr] = stream
        return stream


def addTcpActiveCandidates(gatherer: RTCIceGatherer) -> list[IceTcpProtocol]:
    """After gathering: one active TCP candidate per host address aioice gathered on (none
    with the relay policy), so remote passive TCP candidates get pairs. Call it before adding
    remote candidates (aioice pairs a remote candidate with the protocols it has then)."""
    connection = gatherer._connection
    hosts = [
        p.local_candidate.host
        for p in connection._protocols
        if p.local_candidate.type == "host" and p.local_candidate.transport == "udp"
    ]
    protocols = [IceTcpProtocol(connection, host) for host in dict.fromkeys(hosts)]
    connection._protocols.extend(protocols)  # type: ignore[arg-type]
    return protocols


def closeUnselectedTcpStreams(gatherer: RTCIceGatherer) -> None:
    """Once ICE is done, close the TCP connections of pairs that were not selected."""
    connection = gatherer._connection
    pair = connection._nominated.get(1)
    for protocol in connection._protocols:
        if isinstance(protocol, IceTcpProtocol):
            keep = pair.remote_addr if pair is not None and pair.protocol is protocol else None
            protocol.closeStreams(keep)


def selectedPair(gatherer: RTCIceGatherer) -> dict[str, Any] | None:
    """What the selected pair is made of, in WebRTC stats names (candidate types, transport
    protocol, and for a relay candidate the protocol to the TURN server)."""
    pair = gatherer._connection._nominated.get(1)
    if pair is None:
        return None
    local, remote = pair.local_candidate, pair.remote_candidate
    info: dict[str, Any] = {
        "localAddress": f"{local.host}:{local.port}",
        "remoteAddress": f"{remote.host}:{remote.port}",
        "localCandidateType": local.type,
        "remoteCandidateType": remote.type,
        "protocol": local.transport,
    }
    relayProtocol = getattr(pair.protocol, "relayProtocol", None)
    if relayProtocol is not None:
        info["relayProtocol"] = relayProtocol
    return info


def describePair(pair: dict[str, Any] | None) -> str:
    """``selectedPair`` in a few words for a log line."""
    if pair is None:
        return "none"
    via = f" via TURN over {pair['relayProtocol']}" if "relayProtocol" in pair else ""
    return (
        f"{pair['localCandidateType']} {pair['protocol']} {pair['localAddress']} -> "
        f"{pair['remoteAddress']}{via}"
    )


# TURN.
TURN_DELETE_TIMEOUT = 2.0


def _boundTurnDeletion(protocol: StunProtocol, timeout: float = TURN_DELETE_TIMEOUT) -> None:
    """aioice deletes an allocation on close with up to 7 tries (about a minute) and holds
    its socket meanwhile: a TURN server gone mid-call would keep both that long after
    ``close()``. Give up after ``timeout`` (the server frees the allocation when it expires;
    aioice closes the socket when its deletion is cancelled)."""
    inner = getattr(protocol.transport, "_TurnTransport__inner_protocol", None)
    if inner is None:
        return
    delete = inner.delete

    async def boundedDelete() -> None:
        try:
            await asyncio.wait_for(delete(), timeout)
        except TimeoutError:
            logger.info("TURN: no answer to the allocation's deletion within %g s", timeout)

    inner.delete = boundedDelete


@dataclass(frozen=True, slots=True)
class TurnServer:
    """One ``turn:``/``turns:`` URL with its credentials."""

    url: str
    host: str
    port: int
    transport: str  # "udp" or "tcp" (to the TURN server)
    secure: bool  # turns: TLS over TCP
    username: str | None
    credential: str | None

    @property
    def relayProtocol(self) -> str:
        return "tls" if self.secure else self.transport


class TurnGatheringError(Exception):
    """Why a TURN server gave no relay candidate, in words that say which failure it was."""

    def __init__(self, server: TurnServer, reason: str) -> None:
        super().__init__(f"TURN server {server.url}: {reason}")
        self.server = server
        self.reason = reason


def describeTurnFailure(error: BaseException, timeout: float) -> str:
    """The cause of a failed allocation, for a log line a user can act on."""
    if isinstance(error, asyncio.TimeoutError | stun.TransactionTimeout):
        return f"no answer within {timeout:g} s (unreachable?)"
    if isinstance(error, stun.TransactionFailed):
        code, reason = error.response.attributes.get("ERROR-CODE", (0, "?"))
        if code == 401:
            return f"wrong credentials ({code} {reason})"
        return f"allocation refused ({code} {reason})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate did not verify ({error.verify_message or error})"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed ({error.reason or error})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (unreachable)"
    if isinstance(error, OSError):
        return f"unreachable ({error.strerror or error})"
    return f"{type(error).__name__}: {error}"


def takeTurnServers(gatherer: RTCIceGatherer) -> None:
    """Stop aioice gathering from the TURN server aiortc gave it: ``gatherRelayCandidates``
    does it for every TURN URL and reports failures."""
    connection = gatherer._connection
    connection.turn_server = None
    connection.turn_username = connection.turn_password = None


def relayOnly(gatherer: RTCIceGatherer) -> bool:
    return bool(gatherer._connection._transport_policy == TransportPolicy.RELAY)


def markGathered(gatherer: RTCIceGatherer) -> None:
    """With the relay policy aioice would gather nothing but TURN, which is ours: mark its
    gathering done without running it (it would log that there is no TURN server)."""
    connection = gatherer._connection
    connection._local_candidates_start = True
    connection._local_candidates_end = True


async def gatherRelayCandidates(
    gatherer: RTCIceGatherer,
    servers: list[TurnServer],
    *,
    timeout: float = TURN_GATHER_TIMEOUT,
) -> list[TurnGatheringError]:
    """A relay candidate from each server, in parallel, within ``timeout``; added to the
    gatherer's candidates (so they pair with remote candidates added afterwards). Returns
    why the others failed. ``turns:`` verifies the server's certificate against the default
    trust store (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` change it, as for any OpenSSL user)."""
    connection = gatherer._connection
    policy = connection._transport_policy

    async def allocate(server: TurnServer) -> tuple[Candidate, StunProtocol]:
        candidate, protocol = await asyncio.wait_for(
            relayed_candidate(
                component=1,
                hide_related_address=policy == TransportPolicy.RELAY,
                protocol_factory=lambda: StunProtocol(connection),
                turn_server=(server.host, server.port),
                turn_username=server.username,
                turn_password=server.credential,
                turn_ssl=server.secure,
                turn_transport="tcp" if server.secure else server.transport,
            ),
            timeout,
        )
        # aioice names every relay candidate "udp" (the relayed transport) with one priority.
        candidate.priority = candidate_priority(
            1, "relay", RELAY_LOCAL_PREFERENCE[server.relayProtocol]
        )
        protocol.relayProtocol = server.relayProtocol  # type: ignore[attr-defined]
        _boundTurnDeletion(protocol)
        return candidate, protocol

    results = await asyncio.gather(*(allocate(s) for s in servers), return_exceptions=True)
    errors: list[TurnGatheringError] = []
    for server, result in zip(servers, results, strict=True):
        if isinstance(result, BaseException):
            if isinstance(result, asyncio.CancelledError):
                raise result
            errors.append(TurnGatheringError(server, describeTurnFailure(result, timeout)))
            continue
        candidate, protocol = result
        connection._protocols.append(protocol)
        connection._local_candidates.append(candidate)
    return errors


async def closeProtocols(gatherer: RTCIceGatherer) -> None:
    """Close every socket, TCP stream and TURN allocation of a connection that never reached
    ``connect()`` (aioice's ``close()`` does the same for one that did)."""
    connection = gatherer._connection
    for protocol in list(connection._protocols):
        with contextlib.suppress(Exception):
            await protocol.close()
    connection._protocols.clear()


def turnServersFrom(iceServers: list[RTCIceServer]) -> list[TurnServer]:
    """Every ``turn:``/``turns:`` URL of the configuration (aiortc keeps the first one only).
    ``TypeError`` for a URL aioice cannot use (malformed, or a transport other than UDP and
    TCP, or ``turns:`` over UDP) instead of dropping it unsaid."""
    servers: list[TurnServer] = []
    for server in iceServers:
        urls = server.urls if isinstance(server.urls, list) else [server.urls]
        for url in urls:
            if not url.startswith("turn"):
                continue
            try:
                parsed = parse_stun_turn_uri(url)
            except ValueError as error:
                raise TypeError(f"invalid iceServers URL {url!r}: {error}") from None
            secure = parsed["scheme"] == "turns"
            transport = parsed["transport"]
            if transport not in ("udp", "tcp") or (secure and transport != "tcp"):
                raise TypeError(
                    f"iceServers URL {url!r}: TURN over {transport!r} is not supported "
                    "(turn: over udp or tcp, turns: over tcp)"
                )
            if server.credentialType != "password":
                raise TypeError(f"iceServers URL {url!r}: only password credentials")
            servers.append(
                TurnServer(
                    url=url,
                    host=parsed["host"],
                    port=parsed["port"],
                    transport=transport,
                    secure=secure,
                    username=server.username,
                    credential=server.credential,
                )
            )
    return servers
