"""The page to watch a room (served by the local SFU at /watch?roomId=R): decoded video on
screen, the layer/resolution/rate figures, sound, and a layer the viewer picks."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import av
import numpy as np

from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.browser.peer import Chromium, pageUrl

SIMULCAST = [
    {"maxBitrate": 100_000, "scaleResolutionDownBy": 4},
    {"maxBitrate": 300_000, "scaleResolutionDownBy": 2},
    {"maxBitrate": 900_000},
]
VIEWS = """[...window.watchState.views.values()].map((v) => ({
    kind: v.consumer.kind, shown: v.shown || null, text: v.stats.textContent }))"""


async def shownViews(chromium: Chromium, page: int) -> list[dict[str, Any]]:
    views: list[dict[str, Any]] = await chromium.evaluate(page, VIEWS)
    return views


async def waitForViews(
    chromium: Chromium, page: int, check: Any, what: str, timeout: float = 15
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        views = await shownViews(chromium, page)
        if check(views):
            return views
        if time.monotonic() > deadline:
            raise AssertionError(f"the watch page never showed {what}: {views}")
        await asyncio.sleep(0.25)


def videoShows(views: list[dict[str, Any]], width: int) -> bool:
    return any(
        v["kind"] == "video"
        and v["shown"]
        and v["shown"]["width"] == width
        and (v["shown"]["fps"] or 0) >= 20
        and v["shown"]["bitrate"] > 0
        for v in views
    )


def audioPlays(views: list[dict[str, Any]]) -> bool:
    return any(v["kind"] == "audio" and v["shown"] and v["shown"]["level"] > 0 for v in views)


async def test_the_watch_page_shows_our_video_plays_our_audio_and_switches_layers(
    sfu: LocalSfu, chromium: Chromium, tmp_path: Path
) -> None:
    roomId = uuid.uuid4().hex[:8]
    publisher = await RoomClient.join(sfu.url_for(roomId, "python"), consume=False)
    page = None
    try:
        await publisher.produce(PatternVideoTrack(640, 480, 30), encodings=SIMULCAST)
        await publisher.produce(ToneAudioTrack(440))
        page = await chromium.open(pageUrl(sfu.port, "watch", roomId=roomId), api="watchState")
        views = await waitForViews(
            chromium,
            page,
            lambda v: videoShows(v, 640) and audioPlays(v),
            "640x480 video and sound",
        )
        [video] = [v for v in views if v["kind"] == "video"]
        assert "640x480" in video["text"] and "fps" in video["text"], video["text"]

        # Decoded video is on the screen: the tile's picture is far from uniform.
        shot = tmp_path / "watch.png"
        await chromium.screenshot(page, shot, selector=".tile video")
        container = av.open(str(shot))
        pixels = next(container.decode(video=0)).to_ndarray(format="rgb24")
        container.close()
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
        assert pixels.std() > 20 and colours > 200, (pixels.std(), colours)

        # The viewer picks the lowest spatial layer at its highest temporal layer (simulcast
        # has L1T3 by default, as from Chrome: the buttons run S0T0, S0T1, S0T2, S1T0, ...).
        await chromium.evaluate(
            page, "[...document.querySelectorAll('button[data-spatial=\"0\"]')].pop().click()"
        )
        views = await waitForViews(
            chromium, page, lambda v: videoShows(v, 160), "the 160x120 layer"
        )
        [video] = [v for v in views if v["kind"] == "video"]
        assert "layer S0" in video["text"], video["text"]
    finally:
        if page is not None:
            await chromium.closePage(page)
        await publisher.close()


async def test_the_watch_page_without_a_room_says_so(sfu: LocalSfu, chromium: Chromium) -> None:
    page = await chromium.open(pageUrl(sfu.port, "watch"), api="watchState")
    try:
        status = await chromium.evaluate(page, "document.getElementById('status').textContent")
        assert "no room" in status
    finally:
        await chromium.closePage(page)


async def test_the_url_produce_prints_opens_the_page_with_its_video(
    chromium: Chromium, tmp_path: Path
) -> None:
    """``mediasoup-client produce`` (own SFU) prints the watch URL; the page shows its video."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediasoup_client.cli",
        "produce",
        "--simulcast",
        "3",
        "--duration",
        "12",
        "--json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
    )
    page = None
    try:
        assert process.stdout is not None
        joined = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert joined["type"] == "joined", joined
        watchUrl = joined["watchUrl"]
        assert watchUrl.startswith("http://127.0.0.1:") and "/watch?roomId=" in watchUrl
        page = await chromium.open(watchUrl, api="watchState")
        await waitForViews(chromium, page, lambda v: videoShows(v, 640), "the CLI's 640x480 video")
    finally:
        if page is not None:
            await chromium.closePage(page)
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.communicate(), 15)
