"""The impairment relay: UDP on 127.0.0.1 between a client and a router's ICE candidates.

For every router candidate it forwards to (``addTarget``), the relay listens on a port of its
own; the client is given that port instead (``relayCandidates``). Each client source address
gets its own socket towards the router, so the router sees one tuple per client address and
ICE, DTLS, SRTP/SRTCP and SCTP all flow through unchanged. Both directions go through a
:class:`~.link.Link` (up = client to router, down = router to client), shared by every
target of one relay, as one access link would be.

A thin asyncio layer over the pure :class:`Link`: sockets are read with ``recvmsg`` until
empty (several datagrams per wake-up), each stamped with the kernel's arrival time
(``SO_TIMESTAMPNS``), so the impairment is computed from when a packet really arrived, and
the relay measures its own lateness: how long after its due time each packet was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..types import IceCandidate
from .link import Link
from .packets import RTCP, classify, rtcpKind
from .spec import ImpairmentSpec, LinkConfig, Plan, parseImpairment, requestedSpec

logger = logging.getLogger(__name__)

# Linux socket options Python does not name (asm-generic/socket.h).
_SO_TIMESTAMPNS = 35
_SO_RXQ_OVFL = 40
_TIMESPEC = struct.Struct("@ll")
_COUNT = struct.Struct("@I")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_COUNT.size)
_BUFFER = 4 << 20  # socket buffers: room for bursts while the relay's loop is busy
_MAX_DATAGRAM = 65535
_BATCH = 256  # datagrams read per wake-up at most (then timers get their turn)

# Lateness histogram bucket upper bounds, in seconds.
LATENESS_BOUNDS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 1.0)

Direction = str  # "up" (client -> router) or "down" (router -> client)


@dataclass
class _Lateness:
    """How long after its due time each packet was handed to the kernel."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENESS_BOUNDS) + 1))
    total: float = 0.0
    maximum: float = 0.0
    packets: int = 0

    def add(self, seconds: float) -> None:
        self.packets += 1
        self.total += seconds
        if seconds > self.maximum:
            self.maximum = seconds
        for index, bound in enumerate(LATENESS_BOUNDS):
            if seconds <= bound:
                self.counts[index] += 1
                return
        self.counts[-1] += 1

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding the ``q`` quantile."""
        if not self.packets:
            return None
        rank = q * self.packets
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return LATENESS_BOUNDS[index] if index < len(LATENESS_BOUNDS) else self.maximum
        return self.maximum

    def asDict(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "mean": self.total / self.packets if self.packets else None,
            "p50": self.quantile(0.5),
            "p99": self.quantile(0.99),
            "max": self.maximum,
            "bounds": list(LATENESS_BOUNDS),
            "counts": list(self.counts),
        }


@dataclass
class _Side:
    link: Link
    lateness: _Lateness = field(default_factory=_Lateness)
    kernelDropped: int = 0  # datagrams the kernel dropped: the relay read too slowly
    sendErrors: int = 0
    unreachable: int = 0  # ICMP port unreachable from the other end
    # RTCP datagrams that arrived, by the type of their first packet (packets.rtcpKind):
    # kind -> [datagrams, bytes].
    rtcpTypes: dict[str, list[int]] = field(default_factory=dict)

    def countRtcp(self, data: bytes) -> None:
        kind = rtcpKind(data)
        if kind is not None:
            counts = self.rtcpTypes.setdefault(kind, [0, 0])
            counts[0] += 1
            counts[1] += len(data)


class _Target:
    """One router candidate and the socket the client talks to instead."""

    def __init__(self, address: tuple[str, int], listener: socket.socket) -> None:
        self.address = address
        self.listener = listener
        self.listenAddress: tuple[str, int] = listener.getsockname()
        self.flows: dict[tuple[str, int], _Flow] = {}
        self.lastOverflow = 0


class _Flow:
    """One client source address of a target, with its own socket towards the router."""

    def __init__(self, target: _Target, client: tuple[str, int], upstream: socket.socket):
        self.target = target
        self.client = client
        self.upstream = upstream
        self.lastOverflow = 0


def _openSocket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, _SO_RXQ_OVFL, 1)
    sock.bind((host, 0))
    return sock


async def relayUdpCandidates(
    addTarget: Callable[[str, int], Awaitable[tuple[str, int]]],
    candidates: Iterable[IceCandidate],
) -> list[IceCandidate]:
    """``candidates`` rewritten to the relay ports ``addTarget`` opens for them: UDP only
    (the relay carries UDP), ValueError when none is left."""
    relayed: list[IceCandidate] = []
    for candidate in candidates:
        if candidate.get("protocol") != "udp":
            continue
        host, port = await addTarget(candidate["ip"], candidate["port"])
        relayed.append({**candidate, "ip": host, "port": port})
    if not relayed:
        raise ValueError("no UDP candidate to relay (the relay carries UDP only)")
    return relayed


class ImpairmentRelay:
    """An impairment relay in this process's event loop (see :class:`RelayProcess` for one
    in a process of its own, which the client's own work cannot delay)."""

    def __init__(
        self,
        spec: ImpairmentSpec | str | None = None,
        *,
        seed: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        now = time.monotonic()
        self.host = host
        self._sides: dict[Direction, _Side] = {
            "up": _Side(Link(seed=seed, now=now)),
            "down": _Side(Link(seed=None if seed is None else seed + 1, now=now)),
        }
        self._targets: dict[tuple[str, int], _Target] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timerWhen = 0.0
        self._busy = 0.0
        self._closed = False
        self.scheduling = "the caller's event loop"  # what serve() got, in a relay process
        self._pendingSpec = parseImpairment(spec) if isinstance(spec, str) else spec

    # The API (async, as RelayProcess's).
    async def start(self) -> ImpairmentRelay:
        self._loop = asyncio.get_running_loop()
        if self._pendingSpec is not None:
            self._apply(self._pendingSpec)
            self._pendingSpec = None
        return self

    async def addTarget(self, ip: str, port: int) -> tuple[str, int]:
        """Forward to ``ip:port``; the address the client should send to instead."""
        loop = self._running()
        key = (ip, int(port))
        target = self._targets.get(key)
        if target is None:
            listener = _openSocket(self.host)
            target = _Target(key, listener)
            self._targets[key] = target
            loop.add_reader(listener.fileno(), self._readUplink, target)
        return target.listenAddress

    async def relayCandidates(self, candidates: Iterable[IceCandidate]) -> list[IceCandidate]:
        """The router's candidates as the client should use them: every UDP candidate
        rewritten to the relay's port for it; TCP candidates left out (the relay is UDP
        only, and so is the library's engine)."""
        return await relayUdpCandidates(self.addTarget, candidates)

    async def configure(
        self,
        spec: ImpairmentSpec | str | None = None,
        *,
        up: LinkConfig | str | Plan | None = None,
        down: LinkConfig | str | Plan | None = None,
    ) -> None:
        """Change the impairment from now on: a whole spec (the directions it names), or
        ``up``/``down`` configs or one-direction texts ("rate=600k for 10s then ...")."""
        spec = requestedSpec(spec, up, down)
        if self._loop is None:
            self._pendingSpec = spec
            return
        self._apply(spec)

    async def stats(self) -> dict[str, Any]:
        """Counters per direction (cumulative), phase changes, the relay's own costs."""
        return self.statsNow()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for target in self._targets.values():
            for flow in target.flows.values():
                self._closeSocket(flow.upstream)
            self._closeSocket(target.listener)
        self._targets.clear()

    async def __aenter__(self) -> ImpairmentRelay:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # Synchronous helpers.
    def statsNow(self) -> dict[str, Any]:
        now = time.monotonic()
        result: dict[str, Any] = {
            "time": now,
            "targets": [],
            "busySeconds": self._busy,
            "scheduling": self.scheduling,
        }
        for name, side in self._sides.items():
            result[name] = {
                **side.link.snapshot(now),
                "lateness": side.lateness.asDict(),
                "kernelDropped": side.kernelDropped,
                "sendErrors": side.sendErrors,
                "unreachable": side.unreachable,
                "rtcpTypes": {
                    kind: {"packets": n, "bytes": size}
                    for kind, (n, size) in side.rtcpTypes.items()
                },
            }
        for target in self._targets.values():
            result["targets"].append(
                {
                    "target": f"{target.address[0]}:{target.address[1]}",
                    "listen": f"{target.listenAddress[0]}:{target.listenAddress[1]}",
                    "flows": [f"{c[0]}:{c[1]}" for c in target.flows],
                }
            )
        times = os.times()
        result["processCpuSeconds"] = times.user + times.system
        return result

    def link(self, direction: Direction) -> Link:
        return self._sides[direction].link

    # Internals.
    def _running(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the relay is not started (await relay.start())")
        if self._closed:
            raise RuntimeError("the relay is closed")
        return self._loop

    def _apply(self, spec: ImpairmentSpec) -> None:
        now = time.monotonic()
        for name, plan in (("up", spec.up), ("down", spec.down)):
            if plan is not None:
                self._sides[name].link.setPlan(now, plan)
        self._release(now)

    def _readUplink(self, target: _Target) -> None:
        started = time.perf_counter()
        side = self._sides["up"]
        for data, client, arrival in self._datagrams(target.listener, side, target):
            flow = target.flows.get(client)
            if flow is None:
                flow = self._openFlow(target, client)
                if flow is None:
                    continue
            tag, marker = classify(data)
            if tag == RTCP:
                side.countRtcp(data)
            side.link.offer(arrival, (data, flow), len(data), tag, marker)
        self._release(time.monotonic())
        self._busy += time.perf_counter() - started

    def _readDownlink(self, flow: _Flow) -> None:
        started = time.perf_counter()
        side = self._sides["down"]
        for data, _, arrival in self._datagrams(flow.upstream, side, flow):
            tag, marker = classify(data)
            if tag == RTCP:
                side.countRtcp(data)
            side.link.offer(arrival, (data, flow), len(data), tag, marker)
        self._release(time.monotonic())
        self._busy += time.perf_counter() - started

    def _datagrams(
        self, sock: socket.socket, side: _Side, overflowOf: _Target | _Flow
    ) -> Iterator[tuple[bytes, tuple[str, int], float]]:
        """(data, source address, monotonic arrival) of up to ``_BATCH`` waiting datagrams;
        the kernel's drops (counted on ``overflowOf``'s socket) and ICMP unreachables (the
        other end's port is gone) go to ``side``'s counters."""
        offset = time.time() - time.monotonic()
        for _ in range(_BATCH):
            try:
                data, ancillary, _, address = sock.recvmsg(_MAX_DATAGRAM, _ANCILLARY)
            except BlockingIOError:
                return
            except OSError as error:
                side.unreachable += isinstance(error, ConnectionRefusedError)
                continue
            arrival, overflow = self._arrival(ancillary, offset)
            if overflow is not None:
                side.kernelDropped += (overflow - overflowOf.lastOverflow) & 0xFFFFFFFF
                overflowOf.lastOverflow = overflow
            yield data, address, arrival

    def _openFlow(self, target: _Target, client: tuple[str, int]) -> _Flow | None:
        loop = self._running()
        upstream = _openSocket(self.host)
        try:
            upstream.connect(target.address)
        except OSError as error:
            logger.warning("relay: cannot reach %s: %s", target.address, error)
            upstream.close()
            return None
        flow = _Flow(target, client, upstream)
        target.flows[client] = flow
        loop.add_reader(upstream.fileno(), self._readDownlink, flow)
        return flow

    @staticmethod
    def _arrival(
        ancillary: list[tuple[int, int, bytes]], offset: float
    ) -> tuple[float, int | None]:
        """(monotonic arrival time, kernel overflow count) from the ancillary data."""
        arrival: float | None = None
        overflow: int | None = None
        for level, kind, data in ancillary:
            if level != socket.SOL_SOCKET:
                continue
            if kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                arrival = seconds + nanoseconds * 1e-9 - offset
            elif kind == _SO_RXQ_OVFL and len(data) >= _COUNT.size:
                overflow = _COUNT.unpack_from(data)[0]
        now = time.monotonic()
        if arrival is None or arrival > now:
            arrival = now
        return arrival, overflow

    def _release(self, now: float) -> None:
        """Send what is due by ``now`` both ways, then wake up for the next due packet."""
        if self._closed:
            return
        up, down = self._sides["up"], self._sides["down"]
        for payload, due in up.link.poll(now):
            data, flow = payload
            self._send(up, flow.upstream, data, None, due)
        for payload, due in down.link.poll(now):
            data, flow = payload
            self._send(down, flow.target.listener, data, flow.client, due)
        self._schedule()

    def _send(
        self,
        side: _Side,
        sock: socket.socket,
        data: bytes,
        address: tuple[str, int] | None,
        due: float,
    ) -> None:
        try:
            if address is None:
                sock.send(data)
            else:
                sock.sendto(data, address)
        except ConnectionRefusedError:
            side.unreachable += 1
            return
        except OSError:
            side.sendErrors += 1
            return
        side.lateness.add(max(0.0, time.monotonic() - due))

    def _schedule(self) -> None:
        times = [t for side in self._sides.values() if (t := side.link.nextEventTime()) is not None]
        if not times:
            return
        when = min(times)
        loop = self._running()
        if self._timer is not None and not self._timer.cancelled():
            if self._timerWhen <= when:
                return
            self._timer.cancel()
        self._timerWhen = when
        self._timer = loop.call_at(when, self._onTimer)

    def _onTimer(self) -> None:
        self._timer = None
        started = time.perf_counter()
        self._release(time.monotonic())
        self._busy += time.perf_counter() - started

    def _closeSocket(self, sock: socket.socket) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock.fileno())
        sock.close()
