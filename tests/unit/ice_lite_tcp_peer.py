"""An in-process stand-in for mediasoup's passive ICE-TCP candidate: an ICE-lite agent on
127.0.0.1 that accepts TCP connections, reads RFC 4571 frames, answers authenticated binding
requests (and records whether they nominated) and hands every other frame to the test."""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

from aioice import stun

from mediasoup_client.handlers.aiortc.compat_ice import FrameDecoder, frame


class _Connection(asyncio.Protocol):
    def __init__(self, peer: IceLiteTcpPeer) -> None:
        self.peer = peer
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer.connections.append(self)

    def data_received(self, data: bytes) -> None:
        for packet in self.decoder.feed(data):
            self.peer.received(self, packet)

    def send(self, packet: bytes) -> None:
        assert self.transport is not None
        self.transport.write(frame(packet))


class IceLiteTcpPeer:
    def __init__(self) -> None:
        self.username = "liteufrag"
        self.password = "litepassword0123456789ab"
        self.connections: list[_Connection] = []
        self.requests: list[stun.Message] = []
        self.data: list[bytes] = []
        self.dataArrived = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> IceLiteTcpPeer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def candidate(self) -> dict[str, Any]:
        """The way mediasoup signals it."""
        return {
            "foundation": "tcpcandidate",
            "priority": 1076302079,
            "ip": "127.0.0.1",
            "protocol": "tcp",
            "port": self.port,
            "type": "host",
            "tcpType": "passive",
        }

    def received(self, connection: _Connection, packet: bytes) -> None:
        try:
            message = stun.parse_message(packet)
        except ValueError:
            self.data.append(packet)
            self.dataArrived.set()
            return
        if message.message_class != stun.Class.REQUEST:
            return
        self.requests.append(message)
        ok = message.check_message_integrity(self.password.encode()) and str(
            message.attributes.get("USERNAME", "")
        ).startswith(self.username + ":")
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE if ok else stun.Class.ERROR,
            transaction_id=message.transaction_id,
        )
        if ok:
            assert connection.transport is not None
            response.attributes["XOR-MAPPED-ADDRESS"] = connection.transport.get_extra_info(
                "peername"
            )[:2]
        else:
            response.attributes["ERROR-CODE"] = (401, "Unauthorized")
        response.add_message_integrity(self.password.encode())
        connection.send(bytes(response))

    def sendData(self, packet: bytes) -> None:
        self.connections[-1].send(packet)

    def sendInPieces(self, packet: bytes) -> None:
        """One frame written a byte at a time (a stream may cut it anywhere)."""
        transport = self.connections[-1].transport
        assert transport is not None
        for byte in struct.pack("!H", len(packet)) + packet:
            transport.write(bytes([byte]))

    def dropConnections(self) -> None:
        for connection in self.connections:
            if connection.transport is not None:
                connection.transport.close()

    async def close(self) -> None:
        self.dropConnections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
