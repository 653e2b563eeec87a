"""Command-line options mapped to the library's: encodings, codec options, codec, room URL."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from mediasoup_client.cli import commands
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
from mediasoup_client.cli.sources import openSources
from tests.unit.cli_support import parse


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
