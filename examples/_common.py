"""What the examples share: a room (the one given, or a fresh one on the bundled local SFU) with a
sending and a receiving peer, and waiting for the consumer of a producer."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mediasoup_client import Consumer
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "url",
        nargs="?",
        help="a mediasoup-demo room URL, ws://host:port/?roomId=R (default: a new room on the "
        "bundled local SFU)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run")
    return parser


@contextlib.asynccontextmanager
async def room(url: str | None) -> AsyncIterator[tuple[RoomClient, RoomClient]]:
    """A publisher (sends only) and a subscriber (receives only) in one room."""
    with contextlib.ExitStack() as stack:
        if url is None:
            sfu = stack.enter_context(LocalSfu())
            url = f"ws://127.0.0.1:{sfu.port}/?roomId={uuid.uuid4().hex[:8]}"
        publisher = await RoomClient.join(peerUrl(url, "sender"), consume=False)
        subscriber = await RoomClient.join(peerUrl(url, "receiver"), produce=False)
        try:
            yield publisher, subscriber
        finally:
            await subscriber.close()
            await publisher.close()


def peerUrl(url: str, role: str) -> str:
    """``url`` with a peerId of its own (the room's other peers keep theirs)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["peerId"] = f"{role}-{uuid.uuid4().hex[:6]}"
    return urlunsplit(parts._replace(query=urlencode(query)))


async def consumerOf(subscriber: RoomClient, producerId: str, timeout: float = 10) -> Consumer:
    """The subscriber's consumer of ``producerId`` (the server creates it when it appears)."""
    async with asyncio.timeout(timeout):
        while True:
            for consumer in subscriber.consumers.values():
                if consumer.producerId == producerId:
                    return consumer
            await asyncio.sleep(0.05)
