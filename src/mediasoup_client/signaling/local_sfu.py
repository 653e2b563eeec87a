"""Start and stop the bundled mediasoup room server (``sfu/server.js``) on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlencode, urlsplit

logger = logging.getLogger(__name__)

MEDIASOUP_VERSION = "3.8.4"


class SfuNotInstalledError(RuntimeError):
    """The worker binary or the Node packages are missing."""


def repoRoot() -> Path:
    return Path(__file__).resolve().parents[3]


def sfuDir() -> Path:
    """The room server's directory: $MEDIASOUP_CLIENT_SFU_DIR, else ``sfu/`` of the source
    checkout this package runs from. An installed package (a wheel) does not carry it:
    ``SfuNotInstalledError`` says so on start."""
    configured = os.environ.get("MEDIASOUP_CLIENT_SFU_DIR")
    return Path(configured) if configured else repoRoot() / "sfu"


def workerBinary() -> Path:
    """The mediasoup worker: $MEDIASOUP_WORKER_BIN, else the install script's cache."""
    configured = os.environ.get("MEDIASOUP_WORKER_BIN")
    if configured:
        return Path(configured)
    cache = os.environ.get("MEDIASOUP_CLIENT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mediasoup-client-py"
    )
    return Path(cache) / f"mediasoup-worker-{MEDIASOUP_VERSION}" / "mediasoup-worker"


def watchPageUrl(roomUrl: str) -> str:
    """The local SFU's page to watch the room of ``roomUrl`` in a browser (same host and port,
    ``/watch?roomId=R``)."""
    parts = urlsplit(roomUrl)
    scheme = "https" if parts.scheme == "wss" else "http"
    roomId = parse_qs(parts.query).get("roomId", [""])[0]
    return f"{scheme}://{parts.netloc}/watch?{urlencode({'roomId': roomId})}"


class LocalSfu:
    """The local room server as a process. Synchronous start/stop (usable from any event loop
    and from pytest session fixtures); also a context manager."""

    def __init__(self, *, startTimeout: float = 20.0, listenIp: str = "127.0.0.1") -> None:
        """``listenIp``: where signaling and media listen (tests with a network namespace
        give the root side of their veth pair)."""
        self._startTimeout = startTimeout
        self.listenIp = listenIp
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.logPath = Path(tempfile.mkstemp(prefix="mediasoup-sfu-", suffix=".log")[1])

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the SFU is not running")
        return self._port

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def url_for(self, room_id: str | None = None, peer_id: str | None = None) -> str:
        query = urlencode(
            {"roomId": room_id or uuid.uuid4().hex[:8], "peerId": peer_id or uuid.uuid4().hex[:8]}
        )
        return f"ws://{self.listenIp}:{self.port}/?{query}"

    def watch_url_for(self, room_id: str) -> str:
        """The page that shows every producer of the room (video, audio, layers) in a browser."""
        return watchPageUrl(self.url_for(room_id))

    def start(self) -> LocalSfu:
        worker = workerBinary()
        server = sfuDir() / "server.js"
        if not server.is_file():
            where = (
                "MEDIASOUP_CLIENT_SFU_DIR"
                if os.environ.get("MEDIASOUP_CLIENT_SFU_DIR")
                else "this installation (the local SFU ships with the source checkout)"
            )
            raise SfuNotInstalledError(
                f"no local SFU in {where}: {server} is missing; run it from a clone of the "
                "repository (scripts/install-sfu.sh), or set MEDIASOUP_CLIENT_SFU_DIR to its "
                "sfu/ directory"
            )
        if not worker.is_file():
            raise SfuNotInstalledError(
                f"mediasoup worker not found at {worker}: run scripts/install-sfu.sh "
                "(or set MEDIASOUP_WORKER_BIN)"
            )
        if not (sfuDir() / "node_modules" / "mediasoup").is_dir():
            raise SfuNotInstalledError(
                f"the SFU's Node packages are missing in {sfuDir()}: run scripts/install-sfu.sh"
            )
        node = shutil.which("node")
        if node is None:
            raise SfuNotInstalledError("Node.js (node) is not on PATH")
        env = dict(os.environ, MEDIASOUP_WORKER_BIN=str(worker), SFU_LISTEN_IP=self.listenIp)
        log = self.logPath.open("ab")
        # We keep the server's stdin open without writing: when this process ends, however
        # abruptly, the server sees its stdin close and shuts down (--exit-with-stdin).
        self._process = subprocess.Popen(
            [node, str(server), "--port", "0", "--exit-with-stdin"],
            cwd=sfuDir(),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self._port = self._waitListening()
        logger.info(
            "local SFU listening on %s:%d (log %s)", self.listenIp, self._port, self.logPath
        )
        return self

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()

    def kill(self) -> None:
        """Make the SFU vanish abruptly (tests of what clients do when the server dies)."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=5)

    def logText(self) -> str:
        return self.logPath.read_text(errors="replace")

    def __enter__(self) -> LocalSfu:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _waitListening(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + self._startTimeout
        buffer = b""
        stdout = self._process.stdout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            ready, _, _ = select.select([stdout], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
            for line in buffer.decode(errors="replace").splitlines():
                if line.startswith("LISTENING "):
                    return int(line.split()[1])
        self.stop()
        raise RuntimeError(f"the local SFU did not start; its log:\n{self.logText()[-4000:]}")
