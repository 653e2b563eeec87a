"""Fixtures every suite that needs a router shares: the local SFU, started once per session
(integration and browser tests; unit tests never ask for it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mediasoup_client.signaling.local_sfu import LocalSfu


@pytest.fixture(scope="session")
def sfu() -> Iterator[LocalSfu]:
    """The running SFU (a synchronous fixture, so every test's event loop can connect)."""
    server = LocalSfu().start()
    try:
        yield server
    finally:
        server.stop()
