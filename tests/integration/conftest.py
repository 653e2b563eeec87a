"""Integration fixtures: a publisher and a subscriber in a fresh room of the local SFU (the
``sfu`` fixture itself, one per session, is in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.sfu)


@pytest.fixture
async def peers(sfu: LocalSfu) -> AsyncIterator[tuple[RoomClient, RoomClient]]:
    """(publisher, subscriber): one peer that only produces, one that only consumes."""
    room = uuid.uuid4().hex[:8]
    publisher = await RoomClient.join(sfu.url_for(room, "publisher"), consume=False)
    subscriber = await RoomClient.join(sfu.url_for(room, "subscriber"), produce=False)
    yield publisher, subscriber
    await subscriber.close()
    await publisher.close()
