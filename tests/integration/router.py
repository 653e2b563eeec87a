"""Reading what the real router received: helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mediasoup_client import Consumer, Producer
from mediasoup_client.signaling.room_client import RoomClient


def streamKey(stats: dict[str, Any]) -> str:
    return str(stats.get("rid") or stats["ssrc"])


async def routerStreams(client: RoomClient, producer: Producer) -> dict[str, dict[str, Any]]:
    """The router's inbound-rtp stats of ``producer``, by rid (or ssrc without simulcast)."""
    return {streamKey(s): s for s in await client.routerStats(producer)}


async def waitFor(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def packetCounts(client: RoomClient, producer: Producer) -> dict[str, int]:
    return {key: s["packetCount"] for key, s in (await routerStreams(client, producer)).items()}


async def measure(
    client: RoomClient, producer: Producer, seconds: float
) -> dict[str, dict[str, float]]:
    """Packets/s and bits/s the router counted per stream over ``seconds``.

    The interval is the router's own: each stream's stats carry the worker's clock at the
    moment they were read, so a slow stats reply (a busy event loop here, a busy signaling
    server) cannot stretch or shrink the window the counts are divided by."""
    before = await routerStreams(client, producer)
    started = time.monotonic()
    await asyncio.sleep(seconds)
    after = await routerStreams(client, producer)
    fallback = time.monotonic() - started  # for a stream that appeared meanwhile

    def rate(key: str, stats: dict[str, Any], counter: str) -> float:
        if key not in before:
            return float(stats[counter]) / fallback
        interval = float(stats["timestamp"] - before[key]["timestamp"]) / 1000
        return float(stats[counter] - before[key][counter]) / interval

    return {
        key: {
            "packetRate": rate(key, s, "packetCount"),
            "bitrate": 8 * rate(key, s, "byteCount"),
            "score": s["score"],
        }
        for key, s in after.items()
    }


async def consumerOf(subscriber: RoomClient, producerId: str) -> Consumer:
    """The subscriber's consumer of ``producerId``, once the server has offered it."""

    async def present() -> bool:
        return any(c.producerId == producerId for c in subscriber.consumers.values())

    await waitFor(present, 10, "the server's newConsumer")
    return next(c for c in subscriber.consumers.values() if c.producerId == producerId)
