"""The mediasoup-client command without a network: parsing, option mapping, error paths."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import pytest

from mediasoup_client.cli import commands, local_room
from mediasoup_client.cli.controls import Controls
from mediasoup_client.cli.main import buildParser, main
from mediasoup_client.cli.options import (
    MIN_LAYER_BITRATE,
    CliError,
    audioCodecOptions,
    defaultMaxBitrate,
    parseBitrate,
    parseEncodings,
    pickVideoCodec,
    roomUrl,
    simulcastEncodings,
    videoEncodings,
    withoutPeer,
)
from mediasoup_client.cli.receiving import Recording, savePng
from mediasoup_client.cli.session import RunLoop
from mediasoup_client.cli.sources import Sources, openSources
from mediasoup_client.cli.stats import RunRecord, Sampler, writePlot
from tests.unit.fake_clock import FakeClock

# ---------------------------------------------------------------- parsing


def parse(*argv: str) -> argparse.Namespace:
    return buildParser().parse_args(list(argv))


def test_produce_defaults() -> None:
    args = parse("produce")
    assert args.command == "produce"
    assert args.url is None and args.room is None
    assert args.duration == 20.0
    assert not args.json and not args.no_audio and not args.no_video
    assert args.simulcast is None and args.encodings is None and args.codec is None
    assert args.engine == "aiortc"


def test_produce_all_options() -> None:
    args = parse(
        "produce",
        "ws://127.0.0.1:4443/?roomId=r",
        "--simulcast",
        "3",
        "--codec",
        "h264",
        "--max-bitrate",
        "1.5M",
        "--width",
        "1280",
        "--height",
        "720",
        "--fps",
        "25",
        "--opus-stereo",
        "--opus-fec",
        "--opus-dtx",
        "--opus-ptime",
        "40",
        "--duration",
        "0",
        "--json",
        "--plot",
        "out.png",
    )
    assert args.url == "ws://127.0.0.1:4443/?roomId=r"
    assert (args.simulcast, args.codec, args.max_bitrate) == (3, "h264", 1_500_000)
    assert (args.width, args.height, args.fps) == (1280, 720, 25.0)
    assert args.opus_stereo and args.opus_fec and args.opus_dtx and args.opus_ptime == 40
    assert args.duration == 0 and args.json and args.plot == "out.png"


def test_consume_options() -> None:
    args = parse("consume", "--room", "demo", "--record", "x.mkv", "--snapshot", "x.png")
    assert (args.command, args.room, args.record, args.snapshot) == (
        "consume",
        "demo",
        "x.mkv",
        "x.png",
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["produce", "--codec", "av1"],
        ["produce", "--simulcast", "0"],
        ["produce", "--simulcast", "two"],
        ["produce", "--max-bitrate", "fast"],
        ["produce", "--opus-ptime", "33"],
        ["produce", "--duration", "-1"],
        ["produce", "--bogus"],
    ],
)
def test_usage_errors_are_one_line_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mediasoup-client: error: ")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "produce" in capsys.readouterr().err


# ---------------------------------------------------------------- option mapping


def test_simulcast_encodings_lowest_first() -> None:
    encodings = simulcastEncodings(3, 1_200_000, width=640, height=480)
    assert [e["scaleResolutionDownBy"] for e in encodings] == [4.0, 2.0, 1.0]
    bitrates = [e["maxBitrate"] for e in encodings]
    assert bitrates == sorted(bitrates) and len(set(bitrates)) == 3
    assert bitrates[-1] == 1_200_000
    assert bitrates[0] == 1_200_000 // 16
    assert all("rid" not in e and "ssrc" not in e for e in encodings)


def test_simulcast_bitrates_keep_rising_with_a_low_cap() -> None:
    encodings = simulcastEncodings(3, MIN_LAYER_BITRATE * 3, width=640, height=480)
    bitrates = [e["maxBitrate"] for e in encodings]
    assert bitrates == sorted(bitrates) and len(set(bitrates)) == 3


@pytest.mark.parametrize(
    ("layers", "bitrate", "size", "message"),
    [
        (0, 1_000_000, (640, 480), "at least 1"),
        (6, 1_000_000, (640, 480), "too many layers"),
        (3, 50_000, (640, 480), "too low"),
    ],
)
def test_simulcast_rejects(layers: int, bitrate: int, size: tuple[int, int], message: str) -> None:
    with pytest.raises(CliError, match=message):
        simulcastEncodings(layers, bitrate, width=size[0], height=size[1])


def test_video_encodings_mapping() -> None:
    size: dict[str, Any] = {"width": 640, "height": 480, "fps": 30}
    none: dict[str, Any] = {"simulcast": None, "encodings": None, "maxBitrate": None}
    assert videoEncodings(**none, **size) is None
    assert videoEncodings(**{**none, "maxBitrate": 500_000}, **size) == [{"maxBitrate": 500_000}]
    assert videoEncodings(**{**none, "simulcast": 1}, **size) == [
        {"maxBitrate": defaultMaxBitrate(640, 480, 30)}
    ]
    three = videoEncodings(**{**none, "simulcast": 3, "maxBitrate": 900_000}, **size)
    assert three is not None and [e["maxBitrate"] for e in three][-1] == 900_000
    explicit = videoEncodings(**{**none, "encodings": '[{"maxBitrate": 1}, {}]'}, **size)
    assert explicit == [{"maxBitrate": 1}, {}]
    with pytest.raises(CliError, match="either --simulcast or --encodings"):
        videoEncodings(**{**none, "simulcast": 2, "encodings": "[{}]"}, **size)
    with pytest.raises(CliError, match="inside the JSON"):
        videoEncodings(**{**none, "encodings": "[{}]", "maxBitrate": 5}, **size)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("{}", "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        ("[1]", "must be an object"),
        ('[{"maxBitRate": 1}]', "unknown field 'maxBitRate'"),
        ('[{"maxBitrate": "1"}]', "wrong type"),
        ('[{"maxBitrate": true}]', "wrong type"),
        ('[{"active": 1}]', "wrong type"),
        ('[{"scaleResolutionDownBy": 0.5}]', ">= 1"),
        ('[{"maxBitrate": 0}]', "positive"),
    ],
)
def test_parse_encodings_errors(text: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        parseEncodings(text)


def test_audio_codec_options() -> None:
    assert audioCodecOptions() is None
    assert audioCodecOptions(stereo=True, fec=True, dtx=True, ptime=40) == {
        "opusStereo": True,
        "opusFec": True,
        "opusDtx": True,
        "opusPtime": 40,
    }
    with pytest.raises(CliError):
        audioCodecOptions(ptime=33)


SEND_CAPS: Any = {
    "codecs": [
        {
            "kind": "audio",
            "mimeType": "audio/opus",
            "preferredPayloadType": 100,
            "clockRate": 48000,
        },
        {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 101, "clockRate": 90000},
        {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 102, "clockRate": 90000},
        {
            "kind": "video",
            "mimeType": "video/H264",
            "preferredPayloadType": 103,
            "clockRate": 90000,
        },
    ]
}


def test_pick_video_codec() -> None:
    assert pickVideoCodec(SEND_CAPS, "h264")["mimeType"] == "video/H264"
    assert pickVideoCodec(SEND_CAPS, "VP8")["preferredPayloadType"] == 101
    with pytest.raises(CliError, match=r"vp9 cannot be sent.*share: h264, vp8"):
        pickVideoCodec(SEND_CAPS, "vp9")
    with pytest.raises(CliError, match="unsupported codec"):
        pickVideoCodec(SEND_CAPS, "av1")


def test_room_url() -> None:
    url = roomUrl("ws://127.0.0.1:4443", roomId="demo", peerId="me")
    assert url == "ws://127.0.0.1:4443/?roomId=demo&peerId=me"
    kept = roomUrl("wss://127.0.0.1/x?roomId=r&peerId=p&foo=1")
    assert kept == "wss://127.0.0.1/x?roomId=r&peerId=p&foo=1"
    generated = roomUrl("ws://127.0.0.1/")
    assert "roomId=" in generated and "peerId=" in generated
    assert withoutPeer(kept) == "wss://127.0.0.1/x?roomId=r&foo=1"
    with pytest.raises(CliError, match="ws:// or wss://"):
        roomUrl("http://127.0.0.1/")
    with pytest.raises(CliError, match="ws:// or wss://"):
        roomUrl("127.0.0.1:4443")
    with pytest.raises(CliError, match="no host"):
        roomUrl("ws:///?roomId=x")
    with pytest.raises(CliError, match="invalid room URL"):
        roomUrl("ws://127.0.0.1:notaport/")
    with pytest.raises(CliError, match="no roomId"):
        roomUrl("ws://127.0.0.1/", needRoom=True)
    with pytest.raises(CliError, match="contradicts"):
        roomUrl("ws://127.0.0.1/?roomId=a", roomId="b")


def test_parse_bitrate() -> None:
    assert parseBitrate("800000") == 800_000
    assert parseBitrate("800k") == 800_000
    assert parseBitrate("1.5M") == 1_500_000
    for bad in ("", "abc", "-5", "0"):
        with pytest.raises(ValueError):
            parseBitrate(bad)


class StubDevice:
    sendRtpCapabilities = SEND_CAPS


class StubClient:
    """Records what the CLI asks RoomClient.produce for."""

    def __init__(self) -> None:
        self.device = StubDevice()
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    async def produce(self, track: Any, **options: Any) -> Any:
        self.calls.append((track, options))
        return argparse.Namespace(kind=track.kind, id=f"p{len(self.calls)}")


async def test_cli_options_reach_produce() -> None:
    args = parse(
        "produce",
        "--simulcast",
        "3",
        "--max-bitrate",
        "1200k",
        "--codec",
        "h264",
        "--opus-stereo",
        "--opus-dtx",
        "--opus-ptime",
        "20",
        "--width",
        "320",
        "--height",
        "240",
    )
    encodings = videoEncodings(
        simulcast=args.simulcast,
        encodings=None,
        maxBitrate=args.max_bitrate,
        width=args.width,
        height=args.height,
        fps=30,
    )
    codecOptions = audioCodecOptions(stereo=True, dtx=True, ptime=20)
    sources = openSources(width=320, height=240, stereo=True)
    try:
        client = StubClient()
        await commands._produceAll(client, sources, args, encodings, codecOptions)  # type: ignore[arg-type]
    finally:
        sources.stop()
    (video_track, video), (audio_track, audio) = client.calls
    assert video_track.kind == "video" and audio_track.kind == "audio"
    assert video["codec"]["mimeType"] == "video/H264"
    assert [e["scaleResolutionDownBy"] for e in video["encodings"]] == [4.0, 2.0, 1.0]
    assert video["encodings"][-1]["maxBitrate"] == 1_200_000
    assert audio["codecOptions"] == {"opusStereo": True, "opusDtx": True, "opusPtime": 20}
    assert audio_track.channels == 2


# ---------------------------------------------------------------- sources


def test_sources_errors(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="no such media file"):
        openSources(file=str(tmp_path / "missing.mp4"))
    with pytest.raises(CliError, match="nothing to produce"):
        openSources(audio=False, video=False)
    with pytest.raises(CliError, match="either --file or --device"):
        openSources(file="x", device=True)
    with pytest.raises(CliError, match="even"):
        openSources(width=641)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a media file" * 10)
    with pytest.raises(CliError, match="cannot open"):
        openSources(file=str(garbage))
    with pytest.raises(CliError, match="no camera"):
        openSources(device=True, videoDevice=str(tmp_path / "video99"))


def test_file_source(tmp_path: Path) -> None:
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(5):
            frame = av.VideoFrame.from_ndarray(
                np.full((48, 64, 3), index * 40, dtype=np.uint8), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    sources = openSources(file=str(path))
    try:
        assert sources.video is not None and sources.audio is None
    finally:
        sources.stop()
    with pytest.raises(CliError, match="has no audio stream"):
        openSources(file=str(path), video=False)


def test_test_pattern_sources() -> None:
    sources = openSources(width=320, height=240, fps=15, audio=False)
    try:
        assert isinstance(sources, Sources)
        assert sources.audio is None and sources.video is not None
        assert "320x240@15" in sources.label
    finally:
        sources.stop()


# ---------------------------------------------------------------- stats, view, outputs


class StubProducer:
    id = "producer-1"
    kind = "video"
    paused = False
    maxSpatialLayer = None
    rtpParameters: ClassVar[Any] = {
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}],
        "encodings": [{"rid": "r0", "ssrc": 11}, {"rid": "r1", "ssrc": 22}],
    }

    def __init__(self) -> None:
        self.bytes = 0

    async def getStats(self) -> dict[str, Any]:
        self.bytes += 1000
        report: dict[str, Any] = {
            f"OT{ssrc}": {
                "type": "outbound-rtp",
                "ssrc": ssrc,
                "rid": rid,
                "bytesSent": self.bytes,
                "framesEncoded": 7,
                "frameWidth": 160 * (i + 1),
                "frameHeight": 120 * (i + 1),
                "active": i == 0,
                "targetBitrate": 100_000 if i == 0 else 0,
            }
            for i, (rid, ssrc) in enumerate((("r0", 11), ("r1", 22)))
        }
        report["CC"] = {
            "type": "congestion-control",
            "mode": "transport-cc",
            "availableOutgoingBitrate": 543_000,
            "pacingRate": 651_600,
            "pacerQueueDelay": 0.042,
            "pacerQueueBytes": 3100,
            "retransmissionBitrate": 12_000,
        }
        return report


class StubStatsClient:
    producerScores: ClassVar[dict[str, Any]] = {"producer-1": [{"score": 10}]}

    async def routerStats(self, producer: Any) -> list[dict[str, Any]]:
        # The router may list a rid stream under an ssrc it learned itself.
        return [
            {"type": "inbound-rtp", "rid": "r1", "ssrc": 999, "bitrate": 500_000, "score": 9},
            {"type": "inbound-rtp", "rid": "r0", "ssrc": 998, "bitrate": 100_000, "score": 10},
        ]


async def test_sampler_matches_layers_by_rid_and_computes_bitrate() -> None:
    clock = FakeClock()
    sampler, client, producer = Sampler(clock.now), StubStatsClient(), StubProducer()
    first = await sampler.producer(client, producer)  # type: ignore[arg-type]
    clock.advance(0.05)
    second = await sampler.producer(client, producer)  # type: ignore[arg-type]
    layers = second["layers"]
    assert [layer["router"]["bitrate"] for layer in layers] == [100_000, 500_000]
    assert [layer["local"]["frameWidth"] for layer in layers] == [160, 320]
    assert "bitrate" not in first["layers"][0]["local"]
    assert layers[0]["local"]["bitrate"] > 0
    assert second["score"] == [{"score": 10}]
    json.dumps(second)  # JSON lines need plain values

    record = RunRecord()
    record.add({"time": 0.0, "producers": [first]})
    record.add({"time": 1.0, "producers": [second]})
    summary = record.summary()
    assert [layer["maxBitrate"] for layer in summary["producers"][0]["layers"]] == [
        100_000,
        500_000,
    ]
    from rich.console import Console

    from mediasoup_client.cli.view import renderSummary, renderTick

    console = Console(file=io.StringIO(), width=100)
    console.print(renderTick({"time": 1.0, "producers": [second]}, {"command": "produce"}))
    console.print(renderSummary(summary))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "r1" in shown
    # The send transport's estimate and pacer, and the suspended layer.
    assert second["congestion"]["availableOutgoingBitrate"] == 543_000
    assert "send estimate 543 kbit/s (transport-cc)" in shown and "queue 42 ms 3 kB" in shown
    assert " off " in shown


def test_write_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    record = RunRecord()
    record.kinds["p"] = "video"
    from mediasoup_client.cli.stats import LayerTotals

    record.totals["p"] = {0: LayerTotals("r0", 1), 1: LayerTotals("r1", 2)}
    record.series[("p", 0)] = [(0.0, 0), (1.0, 100_000)]
    record.series[("p", 1)] = [(0.0, 0), (1.0, 400_000)]
    path = tmp_path / "plot.png"
    writePlot(record, str(path))
    assert path.read_bytes().startswith(b"\x89PNG")


def test_save_png(tmp_path: Path) -> None:
    frame = av.VideoFrame.from_ndarray(np.zeros((48 * 3 // 2, 64), dtype=np.uint8), "yuv420p")
    path = tmp_path / "snap.png"
    savePng(frame, str(path))
    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("extension", "codecs"), [("mkv", {"h264", "aac"}), ("webm", {"vp8", "opus"})]
)
async def test_recording_writes_video_and_audio(
    tmp_path: Path, extension: str, codecs: set[str]
) -> None:
    from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack

    path = tmp_path / f"out.{extension}"
    recording = Recording(str(path))
    video = FiniteTrack(PatternVideoTrack(160, 120, 30, paced=False), 20)
    audio = FiniteTrack(ToneAudioTrack(paced=False), 50)
    recording.start((video, 160, 120), audio)
    await asyncio.wait(recording._tasks)  # both tracks ended
    await recording.close()
    with av.open(str(path)) as container:
        assert {s.codec_context.name for s in container.streams} == codecs
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 20
    assert recording.stats()["framesWritten"] == {"video": 20, "audio": 50}


async def test_recording_drops_and_counts_what_the_writer_cannot_take(tmp_path: Path) -> None:
    # A writer that cannot keep up (a slow disk): the event loop never waits for it, the
    # queue stays bounded and the oldest frames are dropped and counted.
    import threading

    from mediasoup_client.cli.receiving import RECORD_QUEUE_FRAMES
    from mediasoup_client.media.test_sources import PatternVideoTrack

    recording = Recording(str(tmp_path / "out.mkv"))
    gate = threading.Event()
    container = recording._container

    class SlowContainer:
        def __getattr__(self, name: str) -> Any:
            return getattr(container, name)

        def mux(self, packet: Any) -> None:
            gate.wait(10)
            container.mux(packet)

    recording._container = SlowContainer()
    video = FiniteTrack(PatternVideoTrack(160, 120, 30, paced=False), 200)
    recording.start((video, 160, 120), None)
    await asyncio.wait(recording._tasks)
    stats = recording.stats()
    assert stats["framesQueued"]["video"] <= RECORD_QUEUE_FRAMES["video"]
    # The writer took a few frames into the encoder's lookahead before it blocked.
    assert stats["framesDropped"]["video"] > 100
    gate.set()
    await recording.close()
    written, dropped = recording.framesWritten["video"], recording.framesDropped["video"]
    assert written + dropped == 200 and written >= RECORD_QUEUE_FRAMES["video"]


class FiniteTrack:
    """A track that ends after ``frames`` frames (the recording then has all of them)."""

    def __init__(self, source: Any, frames: int) -> None:
        self.kind = source.kind
        self._source = source
        self._left = frames

    async def recv(self) -> Any:
        from aiortc.mediastreams import MediaStreamError

        if self._left <= 0:
            raise MediaStreamError
        self._left -= 1
        return await self._source.recv()


async def test_recording_without_media_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mkv"
    recording = Recording(str(path))
    await recording.close()
    assert not path.exists()
    with pytest.raises(CliError, match="--record"):
        Recording(str(tmp_path / "out.unknownformat"))


async def test_run_loop_json_ticks_until_duration() -> None:
    out = io.StringIO()
    ticks: list[float] = []

    async def takeTick(elapsed: float) -> dict[str, Any]:
        ticks.append(elapsed)
        return {"type": "stats", "time": elapsed, "producers": []}

    async def onKey(key: str) -> None:
        pass

    loop = RunLoop(takeTick, onKey, {}, duration=0.35, jsonOutput=True, out=out, interval=0.1)
    outcome = await loop.run()
    assert 3 <= len(ticks) <= 6
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(line["type"] == "stats" for line in lines)
    assert outcome.failure is None and not outcome.interrupted


async def test_run_loop_failure_ends_the_run() -> None:
    async def takeTick(elapsed: float) -> dict[str, Any]:
        loop.fail("the connection to the room was lost")
        return {"type": "stats", "time": elapsed, "producers": []}

    async def onKey(key: str) -> None:
        pass

    loop = RunLoop(takeTick, onKey, {}, duration=0, jsonOutput=True, out=io.StringIO())
    outcome = await asyncio.wait_for(loop.run(), 5)
    assert outcome.failure == "the connection to the room was lost"


async def test_controls_keys_and_signals() -> None:
    keys: list[str] = []
    stops: list[bool] = []
    both = asyncio.Event()

    def onKey(key: str) -> None:
        keys.append(key)
        if len(keys) == 2:
            both.set()

    controls = Controls(onKey, lambda: stops.append(True))
    controls.start()
    try:
        os.kill(os.getpid(), __import__("signal").SIGUSR1)
        os.kill(os.getpid(), __import__("signal").SIGUSR2)
        await asyncio.wait_for(both.wait(), 2)
        assert keys == ["p", "+"]
        assert not controls.keyboard or sys.stdin.isatty()
    finally:
        controls.stop()


def test_local_room_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert local_room.find() is None
    local_room.publish(4321)
    assert local_room.find() == 4321
    local_room.unpublish()
    assert local_room.find() is None


# ---------------------------------------------------------------- error paths end to end


def closedPort() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def runMain(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["produce", "--file", "/nonexistent/clip.mp4"], "no such media file"),
        (["produce", "http://127.0.0.1:1/"], "must start with ws:// or wss://"),
        (["consume"], "consume needs a ROOM_URL"),
        (["produce", "--encodings", "[1]"], "must be an object"),
        (["produce", "--snapshot", "x.png"], "need --loopback"),
        (["produce", "--plot", "/nonexistent/dir/plot.png"], "does not exist"),
    ],
)
def test_bad_input_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = runMain(argv, capsys)
    assert code == 1
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_unreachable_room_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"ws://127.0.0.1:{closedPort()}/?roomId=r"
    code, err = runMain(["produce", url, "--engine", "fake", "--duration", "1"], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "cannot connect to ws://127.0.0.1:" in err


def test_consume_without_local_sfu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    code, err = runMain(["consume", "--room", "demo", "--engine", "fake"], capsys)
    assert code == 1 and "no local SFU is running" in err


def test_sfu_not_installed_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDIASOUP_WORKER_BIN", str(tmp_path / "no-worker"))
    code, err = runMain(["produce", "--engine", "fake", "--duration", "1"], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "not installed" in err and "install-sfu.sh" in err


@contextlib.contextmanager
def refusingRoom() -> Iterator[str]:
    """A protoo server on 127.0.0.1 that answers every request with an error."""
    from websockets.sync.server import ServerConnection, serve

    def handler(connection: ServerConnection) -> None:
        for raw in connection:
            request = json.loads(raw)
            answer = {"response": True, "id": request["id"], "ok": False}
            connection.send(json.dumps({**answer, "errorCode": 403, "errorReason": "room full"}))

    with serve(handler, "127.0.0.1", 0, subprotocols=["protoo"]) as server:  # type: ignore[list-item]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/?roomId=r"
        finally:
            server.shutdown()
            thread.join(5)


@contextlib.contextmanager
def httpOnly(status: int) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1: the WebSocket upgrade gets ``status``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # websockets rejects HTTP/1.0 answers outright

        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_address[1]}/?roomId=r"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_room_that_refuses_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with refusingRoom() as url:
        code, err = runMain(["consume", url, "--engine", "fake", "--duration", "1"], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "refused to let us join: room full" in err


def test_server_that_is_not_a_room_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with httpOnly(403) as url:
        code, err = runMain(["produce", url, "--engine", "fake", "--duration", "1"], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "cannot connect" in err and "403" in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["produce", "ws://127.0.0.1:{port}/?roomId=r", "--duration", "1"], 1, "cannot connect"),
        (["produce", "--codec", "av1"], 2, "invalid choice"),
        # ALSA writes its own complaints to fd 2: they must not show.
        (["produce", "--device", "--no-video", "--audio-device", "no_such_pcm_x"], 1, "cannot"),
    ],
)
def test_subprocess_error_paths(argv: list[str], code: int, message: str) -> None:
    argv = [arg.format(port=closedPort()) for arg in argv]
    result = subprocess.run(
        [sys.executable, "-m", "mediasoup_client.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == code
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("mediasoup-client: error: ") and message in result.stderr
    assert result.stdout == ""
