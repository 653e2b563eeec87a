"""Integration fixtures: the real local mediasoup SFU, started once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mediasoup_client.signaling.local_sfu import LocalSfu


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.sfu)


@pytest.fixture(scope="session")
def sfu() -> Iterator[LocalSfu]:
    """The running SFU (a synchronous fixture, so every test's event loop can connect)."""
    server = LocalSfu().start()
    try:
        yield server
    finally:
        server.stop()
