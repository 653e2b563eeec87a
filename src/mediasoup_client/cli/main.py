"""``mediasoup-client``: produce a test pattern (or a file, or a camera) to a mediasoup room and
watch what the router receives, or consume a room.

Every expected failure ends with one line on stderr and a non-zero exit status:
1 an error, 2 bad usage, 3 the run worked but the router received no media, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from .. import __version__
from .impair import impairSpec
from .options import OPUS_PTIMES, VIDEO_CODECS, CliError, parseBitrate

PROG = "mediasoup-client"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EPILOG = """\
Without ROOM_URL, produce starts the bundled SFU on 127.0.0.1 (scripts/install-sfu.sh installs
it) and joins a random room there, or --room ID. It prints the URL to consume it with; while it
runs, `mediasoup-client consume --room ID` finds that local SFU too.
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def _bitrate(text: str) -> int:
    try:
        return parseBitrate(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive (got {text})")
        return value

    parse.__name__ = kind.__name__
    return parse


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (until interrupted) or more")
    return value


def buildParser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Produce to and consume from a mediasoup room (mediasoup-demo protocol).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    common = _Parser(add_help=False)
    common.add_argument(
        "url",
        nargs="?",
        metavar="ROOM_URL",
        help="ws:// or wss:// room URL (mediasoup-demo: ...?roomId=R&peerId=P; "
        "missing ids are generated)",
    )
    common.add_argument("--room", metavar="ID", help="room id (on the local SFU without ROOM_URL)")
    common.add_argument(
        "--duration",
        type=_duration,
        default=20.0,
        metavar="SECONDS",
        help="how long to run; 0 = until Ctrl-C or q (default: 20)",
    )
    common.add_argument(
        "--json", action="store_true", help="print the figures as JSON lines, no live view"
    )
    common.add_argument(
        "--engine",
        choices=("aiortc", "fake"),
        default="aiortc",
        help="media engine: aiortc (real media, default) or fake (signaling only, no media)",
    )
    common.add_argument(
        "--impair",
        type=impairSpec,
        metavar="SPEC",
        help="through an impairment relay on 127.0.0.1, e.g. 'loss=5%%,delay=40ms,rate=600k' or "
        "'up:rate=600k;down:loss=2%%' (up = this peer to the router); see the README",
    )
    common.add_argument("--display-name", default="mediasoup-client-python", metavar="NAME")
    common.add_argument("--debug", action="store_true", help="debug logs and tracebacks")

    produce = commands.add_parser(
        "produce",
        parents=[common],
        help="send media to a room and watch what the router receives",
        description="Send a test pattern and tone (or a file, or a camera and microphone) and "
        "show, every second, what the router received per producer and layer beside the local "
        "encoder figures. Keys: p pause/resume, 0-9 max spatial layer, q quit; signals: "
        "SIGUSR1 pause/resume, SIGUSR2 next max spatial layer.",
    )
    source = produce.add_argument_group("source (default: moving test pattern + 440 Hz tone)")
    source.add_argument(
        "--file", metavar="PATH_OR_URL", help="media file or network stream (through PyAV)"
    )
    source.add_argument("--loop", action="store_true", help="loop --file")
    source.add_argument(
        "--device", action="store_true", help="camera and microphone (Linux: v4l2 + ALSA)"
    )
    source.add_argument("--video-device", default="/dev/video0", metavar="PATH")
    source.add_argument("--audio-device", default="default", metavar="ALSA_NAME")
    source.add_argument("--no-audio", action="store_true", help="produce no audio")
    source.add_argument("--no-video", action="store_true", help="produce no video")
    source.add_argument(
        "--width", type=_positive(int), metavar="PX", help="test pattern/camera width (640)"
    )
    source.add_argument(
        "--height", type=_positive(int), metavar="PX", help="test pattern/camera height (480)"
    )
    source.add_argument(
        "--fps", type=_positive(float), metavar="N", help="test pattern/camera frame rate (30)"
    )

    video = produce.add_argument_group("video producer")
    video.add_argument("--codec", choices=VIDEO_CODECS, help="video codec (default: the first)")
    video.add_argument(
        "--simulcast",
        type=_positive(int),
        metavar="N",
        help="N simulcast encodings, index 0 lowest: scaleResolutionDownBy 2^(N-1-i), "
        "maxBitrate rising",
    )
    video.add_argument(
        "--encodings",
        metavar="JSON",
        help='explicit encodings, e.g. \'[{"maxBitrate":100000,"scaleResolutionDownBy":4},'
        '{"maxBitrate":900000}]\'',
    )
    video.add_argument(
        "--max-bitrate",
        type=_bitrate,
        metavar="BPS",
        help="maxBitrate of the (top) encoding, e.g. 800k or 1.5M",
    )

    audio = produce.add_argument_group("audio producer (Opus codecOptions)")
    audio.add_argument("--opus-stereo", action="store_true", help="opusStereo (stereo tone)")
    audio.add_argument("--opus-fec", action="store_true", help="opusFec (in-band FEC)")
    audio.add_argument("--opus-dtx", action="store_true", help="opusDtx")
    audio.add_argument(
        "--opus-ptime", type=int, choices=OPUS_PTIMES, metavar="MS", help="opusPtime: 10/20/40/60"
    )

    output = produce.add_argument_group("output")
    output.add_argument(
        "--plot", metavar="FILE.png", help="chart of the router bitrate per layer at the end"
    )
    output.add_argument(
        "--loopback",
        action="store_true",
        help="also join as a second peer that consumes what this one produces",
    )
    output.add_argument("--record", metavar="FILE", help="with --loopback: record (e.g. out.mkv)")
    output.add_argument(
        "--snapshot", metavar="FILE.png", help="with --loopback: save one decoded video frame"
    )

    consume = commands.add_parser(
        "consume",
        parents=[common],
        help="receive what a room's producers send",
        description="Join as a receiver: consume every producer of the room and show what "
        "arrives. Keys: 0-9 preferred spatial layer, p pause/resume, q quit.",
    )
    consume.add_argument("--record", metavar="FILE", help="record what arrives (e.g. out.mkv)")
    consume.add_argument(
        "--snapshot", metavar="FILE.png", help="save the first decoded video frame"
    )
    consume.add_argument(
        "--layer", type=int, metavar="N", help="preferred spatial layer of video consumers"
    )
    return parser


def _configureLogging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Without --debug only our own warnings: the one-line error promise includes third parties.
    root.setLevel(logging.DEBUG if debug else logging.CRITICAL)
    logging.getLogger("mediasoup_client").setLevel(logging.DEBUG if debug else logging.WARNING)


async def _run(args: argparse.Namespace) -> int:
    from . import commands

    if args.command == "produce":
        return await commands.produce(args)
    return await commands.consume(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = buildParser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _configureLogging(args.debug)
    try:
        return asyncio.run(_run(args))
    except CliError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exitCode
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        lines = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        hint = "" if args.debug else " (--debug shows the traceback)"
        print(f"{PROG}: error: unexpected {reason}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
