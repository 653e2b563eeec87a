"""Chromium running mediasoup-client decodes an H264 file that ``mediasoup-client produce
--file F --passthrough`` sends as it is (made here with libx264, never committed), and video our
VideoSource gets from numpy arrays; judged by the browser's own getStats."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mediasoup_client.media import VideoSource
from mediasoup_client.media.test_sources import drawFrameNumber, writeTestFile
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.browser.figures import decodedRate, inbound
from tests.browser.peer import BrowserPeer, Chromium


@pytest.fixture
async def browser(sfu: LocalSfu, chromium: Chromium) -> AsyncIterator[BrowserPeer]:
    peer = await BrowserPeer.join(chromium, sfu.port, uuid.uuid4().hex[:8], produce=False)
    yield peer
    await peer.close()


async def decodedFigures(browser: BrowserPeer, consumerId: str, seconds: float) -> Any:
    await browser.monitor(consumerId, intervalMs=200)
    await asyncio.sleep(seconds)
    samples = await browser.samples(consumerId)
    return samples, inbound(samples[-1])


async def test_the_browser_decodes_an_h264_file_sent_with_passthrough(
    sfu: LocalSfu, browser: BrowserPeer, tmp_path: Path
) -> None:
    clip = writeTestFile(str(tmp_path / "clip.mp4"), width=640, height=480, seconds=3)
    url = f"ws://127.0.0.1:{sfu.port}/?roomId={browser.roomId}&peerId=python"
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediasoup_client.cli", "produce", url, "--file", clip,
        "--passthrough", "--loop", "--no-audio", "--json", "--duration", "12",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert cli.stdout is not None
        joined = json.loads(await asyncio.wait_for(cli.stdout.readline(), 30))
        assert joined["type"] == "joined", joined
        consumer = await browser.consumerOf(joined["producers"][0])
        await asyncio.sleep(2)  # the first key frame (the file has one a second)
        samples, last = await decodedFigures(browser, consumer["id"], 4)
        line = json.loads(await asyncio.wait_for(cli.stdout.readline(), 10))
    finally:
        if cli.returncode is None:
            cli.terminate()  # the CLI this test started
        await cli.wait()
    rate = decodedRate(samples)
    size = f"{last.get('frameWidth')}x{last.get('frameHeight')}"
    print(f"browser decoded the passthrough file: {size} at {rate:.1f} fps")
    assert last["mimeType"].lower() == "video/h264"
    assert (last.get("frameWidth"), last.get("frameHeight")) == (640, 480)
    assert rate >= 25, rate
    assert last.get("framesDecoded", 0) >= 100
    assert line["type"] == "stats"
    local = line["producers"][0]["layers"][0]["local"]
    assert local["encoderImplementation"] == "passthrough" and local["framesEncoded"] == 0


async def test_the_browser_decodes_frames_pushed_as_numpy_arrays(
    sfu: LocalSfu, browser: BrowserPeer
) -> None:
    publisher = await RoomClient.join(
        f"ws://127.0.0.1:{sfu.port}/?roomId={browser.roomId}&peerId=python", consume=False
    )
    source = VideoSource(640, 360)

    async def push() -> None:
        # 30 fps by the clock (a plain sleep per frame drifts below that on a busy machine).
        started = time.monotonic()
        index = 0
        while True:
            picture = np.full((360, 640, 3), (30, 160, 90), np.uint8)
            drawFrameNumber(picture, index)
            source.captureFrame(picture)
            index += 1
            await asyncio.sleep(max(0.0, started + index / 30 - time.monotonic()))

    pusher = asyncio.ensure_future(push())
    try:
        producer = await publisher.produce(source)
        consumer = await browser.consumerOf(producer.id)
        await asyncio.sleep(1.5)
        samples, last = await decodedFigures(browser, consumer["id"], 3)
    finally:
        pusher.cancel()
        await publisher.close()
    assert (last.get("frameWidth"), last.get("frameHeight")) == (640, 360)
    assert decodedRate(samples) >= 24
