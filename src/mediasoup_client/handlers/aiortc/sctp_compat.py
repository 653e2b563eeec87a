"""Compatibility layer (aiortc 1.16.0, aioice 0.13.0, asyncio internals): the receive path of
data channels, made to keep up with a mediasoup router on its default settings.

mediasoup 3.8 drops a DataConsumer message it cannot queue toward the association
(``sctpSendBufferSize``, 262 144 by default) and nothing slows the producer down, so a receiver
that acknowledges late loses messages. Stock aiortc/aioice: asyncio reads one datagram per
event-loop turn and the socket holds 512 KB, so a burst overflows the kernel queue and the router
retransmits, stalls and drops; and aiortc's SCTP sends a SACK for every packet. Here, per
transport:

- ``tuneDatagramSockets``: a larger receive buffer on each of the gatherer's UDP sockets, and a
  reader that takes every datagram already queued (up to ``MAX_DATAGRAMS_PER_TURN``) in one
  event-loop turn, so the queue stays short and the loop still turns between batches;
- ``tuneSctpTransport``: aiortc's per-packet SCTP entry point replaced by the same steps plus
  the delayed-SACK policy of RFC 4960 section 6.2, and its transmit step held to a send
  budget per event-loop turn (both in ``mediasoup_client.sctp_policies``).

``tests/unit/test_aiortc_compat.py`` fails loudly if an upgrade changes what this relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceGatherer, RTCSctpTransport
from aiortc.rtcsctptransport import DataChunk, ForwardTsnChunk, InitChunk, parse_packet

from ...sctp_policies import ReceivedPacket, SackPolicy, SendBudget

logger = logging.getLogger(__name__)

# What one association's flight can put in the socket: a router's send buffer (256 KiB by
# default, 32 MiB at most what our 1 MiB receive window lets it send) in ~1.2 KB datagrams,
# each taking about twice its size of kernel memory. The kernel doubles the value asked for.
RECEIVE_BUFFER_BYTES = 2 * 1024 * 1024
# A batch of datagrams handled in one turn (DTLS, SCTP, delivery: ~50 us each): a few ms.
MAX_DATAGRAMS_PER_TURN = 256
MAX_DATAGRAM_SIZE = 65536

# SO_RCVBUFFORCE: Linux, with CAP_NET_ADMIN; it may exceed net.core.rmem_max.
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", None)


def setReceiveBuffer(sock: socket.socket, size: int = RECEIVE_BUFFER_BYTES) -> int:
    """Ask for ``size`` bytes of receive buffer (forced past rmem_max where allowed); returns
    what the kernel granted (Linux reports double the request, its bookkeeping included)."""
    if _SO_RCVBUFFORCE is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < size:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if granted < size:
        logger.debug("UDP receive buffer: asked %d bytes, got %d (rmem_max)", size, granted)
    return int(granted)


def _drainingReceiver(
    receive: Callable[[bytes, tuple[Any, ...]], None],
    sock: socket.socket,
    onError: Callable[[Exception], None],
    maxDatagrams: int,
) -> Callable[[bytes, tuple[Any, ...]], None]:
    """``receive`` for the datagram asyncio read, then for those already queued behind it."""

    def datagramReceived(data: bytes, addr: tuple[Any, ...]) -> None:
        receive(data, addr)
        for _ in range(maxDatagrams - 1):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                onError(error)
                return
            receive(data, addr)

    return datagramReceived


def tuneDatagramSockets(
    gatherer: RTCIceGatherer, *, maxDatagramsPerTurn: int = MAX_DATAGRAMS_PER_TURN
) -> list[int]:
    """After ``gather()``: a larger receive buffer and batched reads on every host UDP socket
    of the gatherer (relayed candidates keep aioice's TURN socket as it is). Returns the
    receive buffer sizes granted."""
    granted = []
    protocol: Any  # aioice's StunProtocol, given instance attributes below
    for protocol in gatherer._connection._protocols:
        transport = getattr(protocol, "transport", None)
        # asyncio's selector datagram transport: the socket it reads one datagram at a time from.
        sock = getattr(transport, "_sock", None)
        if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_DGRAM:
            continue
        if getattr(protocol, "_mediasoupDraining", False):
            continue
        granted.append(setReceiveBuffer(sock))
        # An instance attribute: asyncio's transport looks the method up on every datagram.
        protocol.datagram_received = _drainingReceiver(
            protocol.datagram_received, sock, protocol.error_received, maxDatagramsPerTurn
        )
        protocol._mediasoupDraining = True
    return granted


class _SackTimer:
    """The delayed-SACK timer of one association."""

    def __init__(self, sctp: RTCSctpTransport, policy: SackPolicy) -> None:
        self._sctp = sctp
        self._policy = policy
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def arm(self) -> None:
        deadline = self._policy.deadline
        if self._handle is None and deadline is not None:
            self._handle = asyncio.get_running_loop().call_at(deadline, self._expired)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _expired(self) -> None:
        self._handle = None
        if self._policy.timerExpired(self.now()):
            self._task = asyncio.ensure_future(self.sendSack())
        else:
            self.arm()

    async def sendSack(self) -> None:
        self.cancel()
        sctp = self._sctp
        if not sctp._sack_needed or sctp._association_state == RTCSctpTransport.State.CLOSED:
            self._policy.sackSent()
            return
        with contextlib.suppress(ConnectionError):  # DTLS gone: the association goes too
            await sctp._send_sack()
        self._policy.sackSent()


def _installSackPolicy(sctp: RTCSctpTransport, policy: SackPolicy) -> None:
    """Replace ``sctp._handle_data`` (aiortc's entry point for every SCTP packet) by the same
    steps, with the SACK sent when ``policy`` says rather than after every packet."""
    timer = _SackTimer(sctp, policy)
    established = RTCSctpTransport.State.ESTABLISHED

    async def handleData(data: bytes) -> None:
        # As aiortc 1.16.0's RTCSctpTransport._handle_data, up to the SACK.
        try:
            _, _, verificationTag, chunks = parse_packet(data)
        except ValueError:
            return
        if any(isinstance(chunk, InitChunk) for chunk in chunks):
            if len(chunks) != 1:
                return  # an INIT is never bundled (aiortc asserts it)
            expectedTag = 0
        else:
            expectedTag = sctp._local_verification_tag
        if verificationTag != expectedTag:
            return
        for chunk in chunks:
            await sctp._receive_chunk(chunk)
        if not sctp._sack_needed:
            return
        packet = ReceivedPacket(
            data=any(isinstance(chunk, DataChunk) for chunk in chunks),
            duplicates=bool(sctp._sack_duplicates),
            gap=bool(sctp._sack_misordered),
            forwardTsn=any(isinstance(chunk, ForwardTsnChunk) for chunk in chunks),
            established=sctp._association_state == established,
        )
        if policy.packetReceived(timer.now(), packet):
            await timer.sendSack()
        else:
            timer.arm()

    sctp._handle_data = handleData  # type: ignore[method-assign]


def _installSendBudget(sctp: RTCSctpTransport, budget: SendBudget) -> None:
    """Wrap ``sctp._transmit`` (called on every SACK, send and T3 expiry) so that it sends no
    more than ``budget`` allows in one event-loop turn; what is left goes out next turn. The
    congestion window is narrowed for the call (``_transmit`` sends while its flight is below
    it) and restored after."""
    transmit = sctp._transmit
    tasks: set[asyncio.Task[None]] = set()
    state = {"turnScheduled": False, "resume": False}

    def newTurn() -> None:
        state["turnScheduled"] = False
        budget.newTurn()
        if state["resume"]:
            state["resume"] = False
            task = asyncio.ensure_future(resume())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def resume() -> None:
        # What a SACK would have done: refill the outbound queue from the channels, send.
        with contextlib.suppress(ConnectionError):
            await sctp._data_channel_flush()
            await sctp._transmit()

    async def budgetedTransmit() -> None:
        if not state["turnScheduled"]:
            state["turnScheduled"] = True
            asyncio.get_running_loop().call_soon(newTurn)
        allowance = budget.remaining
        if allowance <= 0:
            state["resume"] = True
            return
        cwnd = sctp._cwnd
        flight = sctp._flight_size
        narrowed = min(cwnd, flight + allowance)
        sctp._cwnd = narrowed
        try:
            await transmit()
        finally:
            if sctp._cwnd == narrowed:
                sctp._cwnd = cwnd
            budget.spend(max(0, sctp._flight_size - flight))
        if budget.remaining <= 0 and (sctp._outbound_queue or sctp._data_channel_queue):
            state["resume"] = True

    sctp._transmit = budgetedTransmit  # type: ignore[method-assign]


@dataclass
class SctpTuning:
    """What ``tuneSctpTransport`` installed on one association (its counters say how often
    each took effect)."""

    sackPolicy: SackPolicy
    sendBudget: SendBudget


def tuneSctpTransport(
    sctp: RTCSctpTransport,
    *,
    sackPolicy: SackPolicy | None = None,
    sendBudget: SendBudget | None = None,
) -> SctpTuning:
    """Before ``start()``: delayed SACKs (RFC 4960 6.2) and a per-turn send budget."""
    tuning = SctpTuning(sackPolicy or SackPolicy(), sendBudget or SendBudget())
    _installSackPolicy(sctp, tuning.sackPolicy)
    _installSendBudget(sctp, tuning.sendBudget)
    return tuning
