"""The browser helpers fail with one clear line and leave no process behind: Chromium
missing, a page that does not load, a browser that goes away mid-test."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

import pytest

from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.browser.peer import BrowserError, BrowserPeer, Chromium, pageUrl
from tests.integration.router import waitFor


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_a_missing_chromium_is_one_clear_line(tmp_path: os.PathLike[str]) -> None:
    missing = os.path.join(str(tmp_path), "chromium")
    with pytest.raises(BrowserError) as raised:
        Chromium(chromium=missing).start()
    message = str(raised.value)
    assert "\n" not in message
    assert f"Chromium not found at {missing}" in message
    assert "scripts/install-browser.sh" in message


async def test_a_page_that_does_not_load_is_one_clear_line(
    sfu: LocalSfu, chromium: Chromium
) -> None:
    with pytest.raises(BrowserError, match=r"failed to load: HTTP 404$"):
        await chromium.open(pageUrl(sfu.port, "no-such-page.html"), api="peerApi")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BrowserError, match="failed to load: net::ERR_CONNECTION_REFUSED") as raised:
        await chromium.open(pageUrl(port), api="peerApi")
    assert "\n" not in str(raised.value)
    # A room URL nothing answers: join fails in the page, as one line.
    page = await chromium.open(pageUrl(sfu.port), api="peerApi")
    try:
        with pytest.raises(BrowserError, match=f"cannot reach ws://127.0.0.1:{port}/"):
            await chromium.command(
                "call",
                page=page,
                fn="join",
                arg={"url": f"ws://127.0.0.1:{port}/?roomId=r&peerId=p"},
            )
    finally:
        await chromium.closePage(page)
    assert chromium.running  # the shared browser is still fine


async def test_a_browser_that_goes_away_mid_test_fails_fast_and_leaves_nothing(
    sfu: LocalSfu,
) -> None:
    browser = Chromium().start()
    try:
        roomId = uuid.uuid4().hex[:8]
        python = await RoomClient.join(sfu.url_for(roomId, "python"))
        peer = await BrowserPeer.join(browser, sfu.port, roomId, peerId="doomed")
        await peer.produceAudio()
        left = asyncio.Event()
        python.on("peerclosed", lambda peerId: left.set() if peerId == "doomed" else None)
        pending = asyncio.ensure_future(
            peer.call("sendMessages", {"dataProducerId": "x", "count": 1})
        )
        await asyncio.sleep(0.2)
        driverPid = browser._process.pid if browser._process else None
        assert browser.chromiumPid is not None and driverPid is not None
        started = time.monotonic()
        browser.kill()
        with pytest.raises(BrowserError) as raised:
            await asyncio.wait_for(peer.consumers(), 10)
        assert time.monotonic() - started < 5
        assert "\n" not in str(raised.value)
        # The call that was waiting when the browser went away failed too.
        with pytest.raises(BrowserError):
            await asyncio.wait_for(pending, 1)
        # The room sees the browser leave (its websocket closed with it).
        await asyncio.wait_for(left.wait(), 15)
        await python.close()

        async def driverGone() -> bool:
            return not alive(driverPid)

        await waitFor(driverGone, 5, "the driver to exit with its browser")
        assert not alive(browser.chromiumPid)
    finally:
        browser.stop()
