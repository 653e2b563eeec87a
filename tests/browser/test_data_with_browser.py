"""10 000 ordered data messages each way between our peer and Chromium's mediasoup-client,
through the router: all arrive, in order, text as text and binary as binary."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.browser.peer import BrowserPeer, Chromium, dataMessage
from tests.integration.router import waitFor

COUNT = 10_000


@pytest.fixture
async def room(sfu: LocalSfu, chromium: Chromium) -> AsyncIterator[tuple[RoomClient, BrowserPeer]]:
    roomId = uuid.uuid4().hex[:8]
    browser = await BrowserPeer.join(chromium, sfu.port, roomId)
    python = await RoomClient.join(sfu.url_for(roomId, "python"))
    yield python, browser
    await python.close()
    await browser.close()


async def test_ten_thousand_messages_from_us_reach_the_browser_complete_and_in_order(
    room: tuple[RoomClient, BrowserPeer],
) -> None:
    python, browser = room
    dataProducer = await python.produceData(label="bulk", protocol="test")
    if dataProducer.readyState != "open":
        opened = asyncio.Event()
        dataProducer.on("open", opened.set)
        await asyncio.wait_for(opened.wait(), 10)

    async def browserChannelOpen() -> bool:
        channels = await browser.dataConsumers()
        return any(c["label"] == "bulk" and c["readyState"] == "open" for c in channels)

    await waitFor(browserChannelOpen, 10, "the browser's data consumer to open")
    low = asyncio.Event()
    dataProducer.bufferedAmountLowThreshold = 64 * 1024
    dataProducer.on("bufferedamountlow", low.set)
    for index in range(COUNT):
        dataProducer.send(dataMessage(index))
        if dataProducer.bufferedAmount > 1024 * 1024:
            low.clear()
            await asyncio.wait_for(low.wait(), 10)
    [stats] = await python.request("getDataProducerStats", {"dataProducerId": dataProducer.id})
    state: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        [state] = [c for c in await browser.dataConsumers() if c["label"] == "bulk"]
        if state["received"] >= COUNT or state["mismatch"] is not None:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)  # anything extra would show now
    [state] = [c for c in await browser.dataConsumers() if c["label"] == "bulk"]
    assert state["mismatch"] is None, state
    assert state["received"] == COUNT, (
        f"the browser received {state['received']} of {COUNT} messages "
        f"(the router received {stats['messagesReceived']})"
    )


async def test_ten_thousand_messages_from_the_browser_reach_us_complete_and_in_order(
    room: tuple[RoomClient, BrowserPeer],
) -> None:
    python, browser = room
    received: list[Any] = []
    done = asyncio.Event()

    def onDataConsumer(dataConsumer: Any) -> None:
        def onMessage(message: Any) -> None:
            received.append(message)
            if len(received) == COUNT:
                done.set()

        dataConsumer.on("message", onMessage)

    python.on("newdataconsumer", onDataConsumer)
    dataProducer = await browser.produceData(label="from-browser", protocol="test")

    async def consumed() -> bool:
        return any(dc.label == "from-browser" for dc in python.dataConsumers.values())

    await waitFor(consumed, 10, "the server's newDataConsumer")
    await asyncio.sleep(0.5)  # the consumer's channel opens on the server side
    await browser.sendMessages(dataProducer["id"], COUNT)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 60)
    [stats] = await browser.request("getDataProducerStats", {"dataProducerId": dataProducer["id"]})
    assert len(received) == COUNT, (
        f"we received {len(received)} of {COUNT} (the router received {stats['messagesReceived']})"
    )
    wrong = next((i for i, m in enumerate(received) if m != dataMessage(i)), None)
    assert wrong is None, f"message {wrong} is {received[wrong]!r:.40}"
