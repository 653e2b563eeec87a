"""The mediasoup-client command and RoomClient against the local SFU (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mediasoup_client import Device, FakeHandler
from mediasoup_client.media.test_sources import PatternVideoTrack
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient

pytestmark = pytest.mark.sfu


def runCli(*argv: str, timeout: float = 120, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "mediasoup_client.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def jsonLines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_produce_simulcast_json_router_receives_every_layer(sfu: LocalSfu) -> None:
    url = sfu.url_for("cli-simulcast")
    result = runCli("produce", url, "--duration", "5", "--json", "--simulcast", "3")
    assert result.returncode == 0, result.stderr
    lines = jsonLines(result.stdout)
    assert lines[0]["type"] == "joined" and lines[-1]["type"] == "summary"
    ticks = [line for line in lines if line["type"] == "stats"]
    assert len(ticks) >= 5
    last = ticks[-1]
    video = next(p for p in last["producers"] if p["kind"] == "video")
    audio = next(p for p in last["producers"] if p["kind"] == "audio")
    assert [layer["rid"] for layer in video["layers"]] == ["r0", "r1", "r2"]
    for layer in video["layers"] + audio["layers"]:
        assert layer["router"].get("bitrate", 0) > 0, layer
        assert layer["router"].get("packetCount", 0) > 0, layer
    # The local encoders run each layer at its own size, lowest first.
    widths = [layer["local"].get("frameWidth") for layer in video["layers"]]
    assert widths == [160, 320, 640]
    summary = lines[-1]
    for producer in summary["producers"]:
        for layer in producer["layers"]:
            assert layer["packetCount"] > 0 and layer["meanBitrate"] > 0, layer


def test_produce_starts_its_own_sfu(tmp_path: Path) -> None:
    # No URL: the command starts the bundled SFU itself (fake engine: signaling only).
    plot = tmp_path / "plot.png"
    result = runCli(
        "produce",
        "--engine",
        "fake",
        "--duration",
        "2",
        "--json",
        "--plot",
        str(plot),
        env={"XDG_RUNTIME_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    joined = jsonLines(result.stdout)[0]
    assert joined["url"].startswith("ws://127.0.0.1:")
    assert "peerId" not in joined["consumeUrl"]
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_loopback_snapshot_and_record(tmp_path: Path, sfu: LocalSfu) -> None:
    snapshot, recording = tmp_path / "snap.png", tmp_path / "out.mkv"
    result = runCli(
        "produce",
        sfu.url_for("cli-loopback"),
        "--duration",
        "5",
        "--json",
        "--loopback",
        "--snapshot",
        str(snapshot),
        "--record",
        str(recording),
    )
    assert result.returncode == 0, result.stderr
    assert snapshot.read_bytes().startswith(b"\x89PNG")
    assert recording.stat().st_size > 1000
    consumers = jsonLines(result.stdout)[-1]["consumers"]
    assert {c["kind"] for c in consumers} == {"audio", "video"}
    assert all(c["frames"].get("frames", 0) > 0 for c in consumers)


def test_consume_what_produce_sends(tmp_path: Path, sfu: LocalSfu) -> None:
    room = sfu.url_for("cli-consume").split("&peerId=")[0]
    producer = subprocess.Popen(
        [sys.executable, "-m", "mediasoup_client.cli", "produce", room, "--duration", "15"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        snapshot = tmp_path / "snap.png"
        result = runCli("consume", room, "--duration", "5", "--json", "--snapshot", str(snapshot))
        assert result.returncode == 0, result.stderr
        summary = jsonLines(result.stdout)[-1]
        assert {c["kind"] for c in summary["consumers"]} == {"audio", "video"}
        assert snapshot.read_bytes().startswith(b"\x89PNG")
    finally:
        producer.terminate()
        producer.wait(timeout=30)


async def test_room_client_consumers_follow_producers(sfu: LocalSfu) -> None:
    sender = await RoomClient.join(
        sfu.url_for("rc-fake", "sender"),
        device=Device(FakeHandler.createFactory()),
        consume=False,
    )
    receiver = await RoomClient.join(
        sfu.url_for("rc-fake", "receiver"),
        device=Device(FakeHandler.createFactory()),
        produce=False,
    )
    try:
        assert "sender" in receiver.peers
        arrived: asyncio.Queue[Any] = asyncio.Queue()
        receiver.on("newconsumer", arrived.put_nowait)
        producer = await sender.produce(
            PatternVideoTrack(320, 240, 30),
            encodings=[{"maxBitrate": 100_000}, {"maxBitrate": 400_000}],
        )
        consumer = await asyncio.wait_for(arrived.get(), 10)
        assert consumer.producerId == producer.id and consumer.kind == "video"
        assert receiver.consumers[consumer.id] is consumer
        assert isinstance(await sender.routerStats(producer), list)
        closed: asyncio.Queue[Any] = asyncio.Queue()
        receiver.on("consumerclosed", closed.put_nowait)
        await sender.closeProducer(producer)
        assert await asyncio.wait_for(closed.get(), 10) is consumer
        assert consumer.closed and consumer.id not in receiver.consumers
        data = await sender.produceData(label="chat")
        dataConsumer = await asyncio.wait_for(_waitFor(receiver.dataConsumers), 10)
        assert dataConsumer.dataProducerId == data.id and dataConsumer.label == "chat"
    finally:
        await sender.close()
        await receiver.close()
    assert sender.closed and sender.sendTransport.closed


async def test_room_client_reports_a_lost_connection() -> None:
    with LocalSfu() as server:
        client = await RoomClient.join(server.url_for(), device=Device(FakeHandler.createFactory()))
        lost = asyncio.Event()
        client.on("disconnected", lost.set)
        server.kill()
        await asyncio.wait_for(lost.wait(), 10)
        await client.close()


async def _waitFor(items: dict[str, Any]) -> Any:
    while not items:
        await asyncio.sleep(0.05)
    return next(iter(items.values()))
