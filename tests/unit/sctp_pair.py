"""Two aiortc SCTP associations joined by an in-memory stand-in for DTLS, with every packet
each side sends held until the test delivers it (no network, no timers of ours)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCDataChannel, RTCDataChannelParameters, RTCSctpTransport
from aiortc.rtcsctptransport import DataChunk, SackChunk, parse_packet


class HeldDtls:
    """What RTCSctpTransport uses of RTCDtlsTransport: packets it sends are kept in ``sent``."""

    def __init__(self, role: str) -> None:
        self._role = role
        self.state = "connected"
        self.receiver: Any = None
        self.sent: list[bytes] = []

    def _register_data_receiver(self, receiver: Any) -> None:
        self.receiver = receiver

    def _unregister_data_receiver(self, receiver: Any) -> None:
        if self.receiver is receiver:
            self.receiver = None

    async def _send_data(self, data: bytes) -> None:
        if self.state != "connected":
            raise ConnectionError("not connected")
        self.sent.append(data)

    def take(self) -> list[bytes]:
        packets, self.sent = self.sent, []
        return packets


def chunksOf(packet: bytes) -> list[Any]:
    return parse_packet(packet)[3]


def isSack(packet: bytes) -> bool:
    return any(isinstance(chunk, SackChunk) for chunk in chunksOf(packet))


def isData(packet: bytes) -> bool:
    return any(isinstance(chunk, DataChunk) for chunk in chunksOf(packet))


class SctpPair:
    """``client`` sends to ``server``; ``pump()`` delivers what is held until both are quiet."""

    def __init__(self) -> None:
        self.clientDtls = HeldDtls("client")
        self.serverDtls = HeldDtls("server")
        self.client = RTCSctpTransport(self.clientDtls)  # type: ignore[arg-type]
        self.server = RTCSctpTransport(self.serverDtls)  # type: ignore[arg-type]
        self._waiting = 0  # packets of the current delivery still to be handled

    def moreWaiting(self) -> bool:
        """For ``tuneSctpTransport``: whether packets delivered together wait behind this one."""
        return self._waiting > 0

    async def start(self) -> None:
        await self.client.start(self.server.getCapabilities(), self.server.port)
        await self.server.start(self.client.getCapabilities(), self.client.port)
        await self.pump()
        assert self.client.state == "connected" and self.server.state == "connected"

    async def deliver(
        self, packets: list[bytes], to: RTCSctpTransport, *, together: bool = False
    ) -> None:
        """Hand ``packets`` to ``to`` one by one; ``together``: as a batch read from the
        socket in one go (``moreWaiting`` is true until the last)."""
        for index, packet in enumerate(packets):
            self._waiting = len(packets) - 1 - index if together else 0
            await to._handle_data(packet)
        self._waiting = 0

    async def pump(self, rounds: int = 1000) -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)  # let flush/transmit tasks run
            toServer, toClient = self.clientDtls.take(), self.serverDtls.take()
            if not toServer and not toClient:
                await asyncio.sleep(0)
                if not self.clientDtls.sent and not self.serverDtls.sent:
                    return
                continue
            await self.deliver(toServer, self.server)
            await self.deliver(toClient, self.client)
        raise AssertionError("the associations kept talking")

    def channels(self, streamId: int = 1, **options: Any) -> tuple[RTCDataChannel, RTCDataChannel]:
        """A negotiated channel on both sides (as the handler opens them)."""
        parameters = {"label": "test", "negotiated": True, "id": streamId, **options}
        sending = RTCDataChannel(self.client, RTCDataChannelParameters(**parameters))
        receiving = RTCDataChannel(self.server, RTCDataChannelParameters(**parameters))
        return sending, receiving
