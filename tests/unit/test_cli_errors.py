"""Error paths end to end: every failure is one line on stderr, never a traceback."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mediasoup_client.cli.main import main


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
