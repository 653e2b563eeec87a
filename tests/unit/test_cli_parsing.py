"""The command line's grammar: defaults, options, usage errors (exit 2, one line)."""

from __future__ import annotations

import pytest

from mediasoup_client.cli.main import main
from tests.unit.cli_support import parse


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
