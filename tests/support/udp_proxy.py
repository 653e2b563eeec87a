"""A UDP relay on 127.0.0.1 in front of one router candidate, counting the STUN binding
requests (ICE checks and consent checks) that reach the router and its answers, with their
times: what a router that enforces consent (mediasoup 3.13+: 30 s) would see.

Give the client the relay's address instead of the router's candidate (and set ``router`` to
that candidate); the router sees the relay's address as the client's and answers there; the
relay forwards both ways.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, cast

BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
STUN_MAGIC = b"\x21\x12\xa4\x42"


def stunType(data: bytes) -> int | None:
    if len(data) >= 20 and data[4:8] == STUN_MAGIC and data[0] < 2:
        return int.from_bytes(data[:2], "big")
    return None


@dataclass
class Counts:
    requests: list[float] = field(default_factory=list)  # monotonic times
    successes: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    toRouter: int = 0
    fromRouter: int = 0


class _ClientSide(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.relay.fromClient(data, (addr[0], addr[1]))


class _RouterSide(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.relay.fromRouter(data)


class UdpRelay:
    def __init__(self, router: tuple[str, int] | None = None) -> None:
        self.router = router
        self.counts = Counts()
        self._client: tuple[str, int] | None = None
        self._clientSide: _ClientSide | None = None
        self._routerSide: _RouterSide | None = None

    async def start(self) -> UdpRelay:
        loop = asyncio.get_running_loop()
        _t, self._clientSide = await loop.create_datagram_endpoint(
            lambda: _ClientSide(self), local_addr=("127.0.0.1", 0)
        )
        _t, self._routerSide = await loop.create_datagram_endpoint(
            lambda: _RouterSide(self), local_addr=("127.0.0.1", 0)
        )
        return self

    @property
    def address(self) -> tuple[str, int]:
        assert self._clientSide is not None and self._clientSide.transport is not None
        host, port = self._clientSide.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def fromClient(self, data: bytes, addr: tuple[str, int]) -> None:
        self._client = addr
        if stunType(data) == BINDING_REQUEST:
            self.counts.requests.append(time.monotonic())
        self.counts.toRouter += 1
        side = self._routerSide
        if self.router is not None and side is not None and side.transport is not None:
            side.transport.sendto(data, self.router)

    def fromRouter(self, data: bytes) -> None:
        kind = stunType(data)
        if kind == BINDING_SUCCESS:
            self.counts.successes.append(time.monotonic())
        elif kind == BINDING_ERROR:
            self.counts.errors.append(time.monotonic())
        self.counts.fromRouter += 1
        side = self._clientSide
        if self._client is not None and side is not None and side.transport is not None:
            side.transport.sendto(data, self._client)

    def close(self) -> None:
        for side in (self._clientSide, self._routerSide):
            if side is not None and side.transport is not None:
                side.transport.close()


def longestGap(times: list[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] without one of ``times``."""
    points = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(points))
