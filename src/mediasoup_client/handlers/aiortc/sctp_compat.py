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
- ``tuneSctpTransport``: aiortc's per-packet SCTP entry point replaced by the same steps, with
  a fast path for in-order DATA (a third of aiortc's cost per packet, and linear rather than
  quadratic in a message's fragments), plus the delayed-SACK policy of RFC 4960 section 6.2;
  and its transmit step held to a send budget per event-loop turn (both policies in
  ``mediasoup_client.sctp_policies``).

``tests/unit/test_aiortc_compat.py`` fails loudly if an upgrade changes what this relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceGatherer, RTCSctpTransport
from aiortc.rtcsctptransport import (
    SCTP_DATA_FIRST_FRAG,
    SCTP_DATA_LAST_FRAG,
    SCTP_DATA_UNORDERED,
    DataChunk,
    ForwardTsnChunk,
    InitChunk,
    parse_packet,
)
from aiortc.utils import uint16_add, uint32_gt
from google_crc32c import value as crc32c  # what aiortc checks SCTP packets with

from ...sctp_policies import SackPolicy, SendBudget

logger = logging.getLogger(__name__)

# What one association's flight can put in the socket: a router's send buffer (256 KiB by
# default, 32 MiB at most what our 1 MiB receive window lets it send) in ~1.2 KB datagrams,
# each taking about twice its size of kernel memory. The kernel doubles the value asked for.
RECEIVE_BUFFER_BYTES = 2 * 1024 * 1024
# At most this many datagrams read in one turn; handled at ~40 us each (DTLS, SCTP, delivery,
# half a SACK), a full batch holds the loop for ~10 ms before other tasks run again.
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
    """The delayed-SACK timer of one association. Lazy: armed for the pending deadline and
    never cancelled; when it fires it sends only if an acknowledgement is still due (a SACK
    every second packet would otherwise arm and cancel a timer per packet)."""

    def __init__(self, sctp: RTCSctpTransport, policy: SackPolicy) -> None:
        self._sctp = sctp
        self._policy = policy
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def arm(self) -> None:
        deadline = self._policy.deadline
        if self._handle is None and deadline is not None:
            self._handle = asyncio.get_running_loop().call_at(deadline, self._expired)

    def _expired(self) -> None:
        self._handle = None
        if self._policy.timerExpired(asyncio.get_running_loop().time()):
            self._task = asyncio.ensure_future(self.sendSack())
        else:
            self.arm()  # a later deadline, or none

    async def sendSack(self) -> None:
        sctp = self._sctp
        if sctp._sack_needed and sctp._association_state != RTCSctpTransport.State.CLOSED:
            with contextlib.suppress(ConnectionError):  # DTLS gone: the association goes too
                await sctp._send_sack()
        self._policy.sackSent()


class _InOrderReceiver:
    """The common case on its own: a packet holding one DATA chunk with the next TSN, for a
    stream whose messages arrive in order (what usrsctp sends us). It makes the state changes
    aiortc 1.16.0's ``_receive_data_chunk`` would (received TSN, duplicates, reassembly list,
    stream sequence number, advertised window) and delivers through ``_receive``, without
    building chunk objects for whole messages, sorting the TSNs seen or rescanning the
    reassembly list from its start on every fragment (quadratic in a 64 KiB message's 57).
    Anything else is left to aiortc (``receive`` returns False)."""

    def __init__(self, sctp: RTCSctpTransport) -> None:
        self._sctp = sctp
        # Stream id -> (its InboundStream, the stream sequence number of the message whose
        # fragments fill its reassembly list in TSN order, their bytes).
        self._assembling: dict[int, tuple[Any, int, int]] = {}

    def forget(self) -> None:
        """aiortc handled DATA or FORWARD TSN itself: reassembly lists may have changed."""
        self._assembling.clear()

    def _accept(self, tsn: int) -> None:
        sctp = self._sctp
        sctp._sack_needed = True
        sctp._last_received_tsn = tsn
        if sctp._sack_duplicates:  # as _mark_received: keep those above the received TSN
            sctp._sack_duplicates = [x for x in sctp._sack_duplicates if uint32_gt(x, tsn)]

    async def receive(self, data: bytes) -> bool:
        length = len(data)
        if length < _DATA_PACKET_MINIMUM or data[12] != _DATA_TYPE:
            return False
        chunkLength = (data[14] << 8) | data[15]
        if chunkLength < _DATA_CHUNK_MINIMUM or not 0 <= length - 12 - chunkLength <= 3:
            return False  # not exactly one chunk (and its padding)
        sctp = self._sctp
        last = sctp._last_received_tsn
        if last is None or sctp._sack_misordered:
            return False
        if _TAG.unpack_from(data, 4)[0] != sctp._local_verification_tag:
            return False
        tsn, streamId, streamSeq, ppid = _DATA_HEADER.unpack_from(data, 16)
        if tsn != (last + 1) & 0xFFFFFFFF:
            return False
        if _CHECKSUM.unpack_from(data, 8)[0] != crc32c(data[0:8] + b"\x00\x00\x00\x00" + data[12:]):
            return False
        flags = data[13]
        userData = data[28 : 12 + chunkLength]
        stream = sctp._inbound_streams.get(streamId) or sctp._get_inbound_stream(streamId)
        reassembly = stream.reassembly
        if flags & _UNORDERED:
            if flags & _COMPLETE != _COMPLETE or reassembly:
                return False
            self._accept(tsn)
            await sctp._receive(streamId, ppid, userData)
        elif flags & _COMPLETE == _COMPLETE:
            if reassembly or streamSeq != stream.sequence_number:
                return False
            self._accept(tsn)
            stream.sequence_number = uint16_add(streamSeq, 1)
            await sctp._receive(streamId, ppid, userData)
        elif flags & SCTP_DATA_FIRST_FRAG:
            if reassembly or streamSeq != stream.sequence_number:
                return False
            self._accept(tsn)
            reassembly.append(_dataChunk(flags, tsn, streamId, streamSeq, ppid, userData))
            sctp._advertised_rwnd -= len(userData)
            self._assembling[streamId] = (stream, streamSeq, len(userData))
        else:
            assembling = self._assembling.get(streamId)
            if (
                assembling is None
                or assembling[0] is not stream
                or assembling[1] != streamSeq
                or not reassembly
                or reassembly[-1].tsn != last
            ):
                return False
            self._accept(tsn)
            if flags & SCTP_DATA_LAST_FRAG:
                parts = [chunk.user_data for chunk in reassembly]
                parts.append(userData)
                stream.reassembly = []
                del self._assembling[streamId]
                sctp._advertised_rwnd += assembling[2]
                stream.sequence_number = uint16_add(streamSeq, 1)
                await sctp._receive(streamId, ppid, b"".join(parts))
            else:
                reassembly.append(_dataChunk(flags, tsn, streamId, streamSeq, ppid, userData))
                sctp._advertised_rwnd -= len(userData)
                self._assembling[streamId] = (stream, streamSeq, assembling[2] + len(userData))
        if sctp._reconfig_deferred is not None:
            await sctp._reset_deferred_streams()
        return True


_DATA_TYPE = DataChunk.type
_DATA_CHUNK_MINIMUM = 16  # chunk header + TSN, stream id, stream sequence, payload protocol
_DATA_PACKET_MINIMUM = 12 + _DATA_CHUNK_MINIMUM
_COMPLETE = SCTP_DATA_FIRST_FRAG | SCTP_DATA_LAST_FRAG
_UNORDERED = SCTP_DATA_UNORDERED
_DATA_HEADER = struct.Struct("!LHHL")
_TAG = struct.Struct("!L")
_CHECKSUM = struct.Struct("<L")  # little-endian, as aiortc reads and writes it


def _dataChunk(
    flags: int, tsn: int, streamId: int, streamSeq: int, ppid: int, userData: bytes
) -> DataChunk:
    chunk = DataChunk(flags=flags)
    chunk.tsn, chunk.stream_id, chunk.stream_seq, chunk.protocol = tsn, streamId, streamSeq, ppid
    chunk.user_data = userData
    return chunk


def datagramsWaiting(sctp: RTCSctpTransport) -> Callable[[], bool]:
    """Whether received datagrams wait in aioice's queue behind the one the DTLS transport is
    handling (a batch ``tuneDatagramSockets`` read in one go): the receive loop takes them in
    the same event-loop turn, so a SACK left for them is sent within microseconds."""
    queue: asyncio.Queue[Any] = sctp.transport.transport._connection._queue
    return lambda: not queue.empty()


def _installSackPolicy(
    sctp: RTCSctpTransport, policy: SackPolicy, moreWaiting: Callable[[], bool]
) -> None:
    """Replace ``sctp._handle_data`` (aiortc's entry point for every SCTP packet): in-order
    DATA by ``_InOrderReceiver``, anything else by the steps of aiortc 1.16.0's
    ``_handle_data``; then the SACK when ``policy`` says rather than after every packet."""
    timer = _SackTimer(sctp, policy)
    inOrder = _InOrderReceiver(sctp)
    established = RTCSctpTransport.State.ESTABLISHED

    async def handleData(data: bytes) -> None:
        if await inOrder.receive(data):
            hasData, hasForwardTsn = True, False
        else:
            # As aiortc 1.16.0's RTCSctpTransport._handle_data, up to the SACK.
            try:
                _, _, verificationTag, chunks = parse_packet(data)
            except ValueError:
                return
            hasData = hasForwardTsn = hasInit = False
            for chunk in chunks:
                if isinstance(chunk, DataChunk):
                    hasData = True
                elif isinstance(chunk, ForwardTsnChunk):
                    hasForwardTsn = True
                elif isinstance(chunk, InitChunk):
                    hasInit = True
            if hasInit:
                if len(chunks) != 1:
                    return  # an INIT is never bundled (aiortc asserts it)
                expectedTag = 0
            else:
                expectedTag = sctp._local_verification_tag
            if verificationTag != expectedTag:
                return
            if hasData or hasForwardTsn:
                inOrder.forget()
            for chunk in chunks:
                await sctp._receive_chunk(chunk)
        if not sctp._sack_needed:
            return
        if policy.packetReceived(
            asyncio.get_running_loop().time(),
            data=hasData,
            duplicates=bool(sctp._sack_duplicates),
            gap=bool(sctp._sack_misordered),
            forwardTsn=hasForwardTsn,
            established=sctp._association_state == established,
            moreWaiting=moreWaiting(),
        ):
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
    moreWaiting: Callable[[], bool] | None = None,
) -> SctpTuning:
    """Before ``start()``: delayed SACKs (RFC 4960 6.2) and a per-turn send budget.
    ``moreWaiting``: whether received datagrams wait behind the current one (by default
    ``datagramsWaiting``, aioice's queue under the association's DTLS transport)."""
    tuning = SctpTuning(sackPolicy or SackPolicy(), sendBudget or SendBudget())
    _installSackPolicy(sctp, tuning.sackPolicy, moreWaiting or datagramsWaiting(sctp))
    _installSendBudget(sctp, tuning.sendBudget)
    return tuning
