"""A real Chromium running the real mediasoup-client, as a peer of the tests.

``Chromium`` is one headless browser behind ``browser/driver.js`` (puppeteer-core), spoken to
in JSON lines over the driver's stdin/stdout. Starting and stopping it is synchronous, like
``LocalSfu``, and its async calls work from any event loop (a reader thread hands answers to
the loop that waits for them), so one browser can serve a whole test module.

``BrowserPeer`` is one tab of it with the test page (``browser/src/peer.js``) joined to a room
of the local SFU over mediasoup-demo's protoo protocol: it produces the fake camera and
microphone, produces and consumes data, consumes everything the room has, sets preferred
layers and reads the browser's own getStats.

Every failure is a ``BrowserError`` with a one-line message: Chromium or the Node packages
missing, a page that fails to load, a browser that went away mid-test (pending calls fail at
once, nothing hangs). The driver and Chromium end with this process, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mediasoup_client.signaling.local_sfu import repoRoot

logger = logging.getLogger(__name__)

DEFAULT_CHROMIUM = "/usr/bin/chromium"

# (direction "send"/"recv", createWebRtcTransport answer) -> the answer the page should use.
TransportInfoHook = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class BrowserError(RuntimeError):
    """Something about the browser peer went wrong; the message is one line."""


def browserDir() -> Path:
    return Path(os.environ.get("MEDIASOUP_CLIENT_BROWSER_DIR") or repoRoot() / "browser")


def chromiumPath() -> str:
    return os.environ.get("MEDIASOUP_CLIENT_CHROMIUM") or DEFAULT_CHROMIUM


class Chromium:
    """One headless Chromium, driven by puppeteer-core in a Node process."""

    def __init__(
        self,
        *,
        chromium: str | None = None,
        startTimeout: float = 30.0,
        extraArgs: Sequence[str] = (),
    ) -> None:
        """``extraArgs``: more Chromium flags, e.g. ``--use-file-for-fake-video-capture=F.y4m``
        (the fake camera plays that file, looping, instead of its own picture)."""
        self._chromium = chromium or chromiumPath()
        self._startTimeout = startTimeout
        self._extraArgs = list(extraArgs)
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._ready = threading.Event()
        self._failure: str | None = None
        self._userDataDir: str | None = None
        self.chromiumPid: int | None = None
        self.version: str | None = None
        # The pages' console output and errors (the newest lines), for failure messages.
        self.log: deque[str] = deque(maxlen=300)

    # Life cycle (synchronous).
    def start(self) -> Chromium:
        if not (os.path.isfile(self._chromium) and os.access(self._chromium, os.X_OK)):
            raise BrowserError(
                f"Chromium not found at {self._chromium}: run scripts/install-browser.sh "
                "(or set MEDIASOUP_CLIENT_CHROMIUM)"
            )
        driver = browserDir() / "driver.js"
        if not (browserDir() / "node_modules" / "puppeteer-core").is_dir():
            raise BrowserError(
                f"the browser's Node packages are missing in {browserDir()}: "
                "run scripts/install-browser.sh"
            )
        node = shutil.which("node")
        if node is None:
            raise BrowserError("Node.js (node) is not on PATH")
        self._userDataDir = tempfile.mkdtemp(prefix="mediasoup-chromium-")
        logPath = Path(self._userDataDir).with_suffix(".driver.log")
        with logPath.open("ab") as log:
            # The driver keeps Chromium alive exactly as long as its stdin stays open: when
            # this process ends, however abruptly, the pipe closes and both go.
            self._process = subprocess.Popen(
                [
                    node,
                    str(driver),
                    "--chromium",
                    self._chromium,
                    "--user-data-dir",
                    self._userDataDir,
                    *[part for arg in self._extraArgs for part in ("--chromium-arg", arg)],
                ],
                cwd=browserDir(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        self._logPath = logPath
        self._reader = threading.Thread(target=self._readLoop, name="chromium-driver", daemon=True)
        self._reader.start()
        if not self._ready.wait(self._startTimeout) or self._failure is not None:
            failure = self._failure or f"Chromium did not start within {self._startTimeout:g} s"
            self.stop()
            raise BrowserError(failure)
        logger.info("Chromium %s running (pid %s)", self.version, self.chromiumPid)
        return self

    def stop(self) -> None:
        """Close the browser and the driver; kills what does not end within 5 s."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert process.stdin is not None
                process.stdin.write(b'{"id": 0, "cmd": "close"}\n')
                process.stdin.flush()
            with contextlib.suppress(OSError, ValueError):
                assert process.stdin is not None
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self._killChromium()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
        self._failAll("the browser was closed")
        if self._userDataDir is not None:
            shutil.rmtree(self._userDataDir, ignore_errors=True)
            with contextlib.suppress(OSError):
                self._logPath.unlink()
            self._userDataDir = None

    def kill(self) -> None:
        """Make Chromium vanish abruptly (tests of a browser that goes away mid-test)."""
        self._killChromium()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None and not self._failure

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Commands (async, from any event loop).
    async def command(self, cmd: str, timeout: float = 30.0, **fields: Any) -> Any:
        if self._failure is not None:
            raise BrowserError(self._failure)
        process = self._process
        if process is None or process.stdin is None:
            raise BrowserError("the browser is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        commandId = next(self._ids)
        line = json.dumps({"id": commandId, "cmd": cmd, **fields}) + "\n"
        with self._lock:
            self._pending[commandId] = (loop, future)
            try:
                process.stdin.write(line.encode())
                process.stdin.flush()
            except (OSError, ValueError) as error:
                self._pending.pop(commandId, None)
                raise BrowserError(f"the browser driver is gone ({error})") from None
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise BrowserError(
                f"browser command {cmd} {fields.get('fn', '')} timed out after {timeout:g} s"
            ) from None
        finally:
            with self._lock:
                self._pending.pop(commandId, None)

    async def open(self, url: str, api: str | None = None) -> int:
        """A new tab at ``url``; ``api`` names a window object the page must define. Returns
        the page id."""
        answer = await self.command("open", url=url, api=api)
        return int(answer["page"])

    async def evaluate(self, page: int, expression: str) -> Any:
        return await self.command("evaluate", page=page, expression=expression)

    async def screenshot(
        self, page: int, path: str | os.PathLike[str], selector: str | None = None
    ) -> None:
        """A PNG of the page, or of its first element matching ``selector``."""
        await self.command("screenshot", page=page, path=str(path), selector=selector)

    async def closePage(self, page: int) -> None:
        await self.command("closePage", timeout=5, page=page)

    # The reader thread.
    def _readLoop(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        for raw in process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                self.log.append(f"driver: {raw.decode(errors='replace').rstrip()}")
                continue
            event = message.get("event")
            if event is None:
                self._answer(message)
            elif event == "ready":
                self.chromiumPid = message.get("pid")
                self.version = message.get("version")
                self._ready.set()
            elif event == "failed":
                self._failure = str(message.get("text"))
                self._ready.set()
            elif event == "disconnected":
                self._failure = f"Chromium went away mid-test ({message.get('reason')})"
                self._failAll(self._failure)
            else:
                self.log.append(f"[page {message.get('page')} {event}] {message.get('text')}")
        # The driver ended: nothing pending may wait for it.
        if self._failure is None:
            self._failure = "the browser driver exited"
        self._ready.set()
        self._failAll(self._failure)

    def _answer(self, message: dict[str, Any]) -> None:
        with self._lock:
            entry = self._pending.pop(int(message.get("id", -1)), None)
        if entry is None:
            return
        loop, future = entry
        if "error" in message:
            error = BrowserError(str(message["error"]).splitlines()[0])
            loop.call_soon_threadsafe(_settle, future, None, error)
        else:
            loop.call_soon_threadsafe(_settle, future, message.get("result"), None)

    def _failAll(self, reason: str) -> None:
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for loop, future in pending:
            with contextlib.suppress(RuntimeError):  # a loop that is closed already
                loop.call_soon_threadsafe(_settle, future, None, BrowserError(reason))

    def _killChromium(self) -> None:
        pid = self.chromiumPid
        if pid is None:
            return
        # Puppeteer starts Chromium as its own process group: take its helpers too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def pageUrl(sfuPort: int, page: str = "peer.html", **query: str) -> str:
    suffix = f"?{urlencode(query)}" if query else ""
    return f"http://127.0.0.1:{sfuPort}/{page}{suffix}"


class BrowserPeer:
    """One Chromium tab with the test page, joined to a room of the local SFU."""

    def __init__(self, browser: Chromium, page: int, roomId: str, roomUrl: str) -> None:
        self.browser = browser
        self.page = page
        self.roomId = roomId
        self.roomUrl = roomUrl
        self.closed = False

    @classmethod
    async def join(
        cls,
        browser: Chromium,
        sfuPort: int,
        roomId: str,
        *,
        peerId: str | None = None,
        produce: bool = True,
        consume: bool = True,
        displayName: str = "chromium",
        transportInfoHook: TransportInfoHook | None = None,
    ) -> BrowserPeer:
        """``transportInfoHook(direction, info) -> info`` rewrites the server's
        createWebRtcTransport answers before the page makes its transports, as
        ``RoomClient.join(transportInfoHook=...)`` does for ours (e.g.
        ``mediasoup_client.netem.transportInfoHook(recv=relay)``: the browser's receive
        transport through an impairment relay)."""
        query = {"roomId": roomId, "peerId": peerId or f"chromium-{uuid.uuid4().hex[:6]}"}
        roomUrl = f"ws://127.0.0.1:{sfuPort}/?{urlencode(query)}"
        page = await browser.open(pageUrl(sfuPort), api="peerApi")
        peer = cls(browser, page, roomId, roomUrl)
        held = [
            d for d in ("send", "recv") if (d == "send" and produce) or (d == "recv" and consume)
        ]
        try:
            joining = asyncio.ensure_future(
                peer.call(
                    "join",
                    {
                        "url": roomUrl,
                        "produce": produce,
                        "consume": consume,
                        "displayName": displayName,
                        "holdTransportInfo": held if transportInfoHook is not None else [],
                    },
                )
            )
            if transportInfoHook is not None:
                await peer._rewriteTransportInfo(joining, transportInfoHook)
            await joining
        except BaseException:
            await peer.close()
            raise
        return peer

    async def _rewriteTransportInfo(
        self, joining: asyncio.Future[Any], hook: TransportInfoHook
    ) -> None:
        """While the page joins: hand every transport answer it holds to ``hook`` and back."""
        while not joining.done():
            for held in await self.call("pendingTransportInfo"):
                info = await hook(held["direction"], held["info"])
                await self.call(
                    "provideTransportInfo", {"direction": held["direction"], "info": info}
                )
            await asyncio.wait({joining}, timeout=0.05)

    async def call(self, fn: str, arg: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        if self.closed:
            raise BrowserError("the browser peer is closed")
        return await self.browser.command("call", timeout=timeout, page=self.page, fn=fn, arg=arg)

    # Producing.
    async def produceVideo(
        self,
        *,
        codec: str = "VP8",
        codecParameters: dict[str, Any] | None = None,
        encodings: list[dict[str, Any]] | None = None,
        width: int = 640,
        height: int = 480,
        frameRate: int = 30,
    ) -> dict[str, Any]:
        """The fake camera: ``encodings`` as in mediasoup-client (several = simulcast, or one
        with a ``scalabilityMode``); ``codec`` "VP8" or "H264", ``codecParameters`` choosing
        among the router's codecs of that name (``{"profile-level-id": "42e01f"}``)."""
        arg: dict[str, Any] = {
            "codec": codec,
            "codecParameters": codecParameters or {},
            "width": width,
            "height": height,
            "frameRate": frameRate,
        }
        if encodings is not None:
            arg["encodings"] = encodings
        result: dict[str, Any] = await self.call("produceVideo", arg)
        return result

    async def produceAudio(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("produceAudio")
        return result

    async def produceData(self, **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("produceData", options)
        return result

    async def sendMessages(
        self,
        dataProducerId: str,
        count: int,
        *,
        rate: float = 0,
        size: int | None = None,
        timeout: float = 120,
    ) -> Any:
        """Messages 0..count-1 of the test rule (``dataMessage``, of ``size`` bytes if given),
        sent from the browser, ``rate`` messages per second (0: as fast as the channel takes
        them). The page checks what its data consumers receive by the same rule (with the
        size of a ``size:<bytes>`` protocol)."""
        return await self.call(
            "sendMessages",
            {"dataProducerId": dataProducerId, "count": count, "rate": rate, "size": size},
            timeout=timeout,
        )

    # Consuming.
    async def consumers(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("consumers")
        return result

    async def waitForConsumers(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            consumers = await self.consumers()
            if len(consumers) >= count:
                return consumers
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"the browser has {len(consumers)} consumers after {timeout:g} s, "
                    f"expected {count}"
                )
            await asyncio.sleep(0.1)

    async def consumerOf(self, producerId: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for consumer in await self.consumers():
                if consumer["producerId"] == producerId:
                    return consumer
            if time.monotonic() > deadline:
                raise BrowserError(f"the browser got no consumer of {producerId} in {timeout:g} s")
            await asyncio.sleep(0.1)

    async def dataConsumers(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("dataConsumers")
        return result

    async def setPreferredLayers(
        self, consumerId: str, spatialLayer: int, temporalLayer: int | None = None
    ) -> float:
        """The server request ``setConsumerPreferredLayers``; returns the page time (ms) it
        was answered at."""
        answer = await self.call(
            "setPreferredLayers",
            {
                "consumerId": consumerId,
                "spatialLayer": spatialLayer,
                "temporalLayer": temporalLayer,
            },
        )
        return float(answer["at"])

    async def request(self, method: str, data: dict[str, Any] | None = None) -> Any:
        """Any protoo request to the room server, as this peer."""
        return await self.call("request", {"method": method, "data": data or {}})

    # The browser's own view.
    async def stats(self, entityId: str) -> list[dict[str, Any]]:
        """inbound-rtp / outbound-rtp entries (with the codec's ``mimeType``) of a consumer or
        producer, and a producer's media-source (what the camera delivered), as the browser's
        getStats() reports them."""
        result: list[dict[str, Any]] = await self.call("stats", {"id": entityId})
        return result

    async def monitor(self, entityId: str, intervalMs: int = 100) -> float:
        """Starts sampling ``stats(entityId)`` in the page every ``intervalMs``; returns the
        page time (ms) it started at."""
        answer = await self.call("monitor", {"id": entityId, "intervalMs": intervalMs})
        return float(answer["at"])

    async def samples(self, entityId: str, since: float = 0) -> list[dict[str, Any]]:
        """The monitor's samples ``{"at": ms, "stats": [...]}`` taken at or after ``since``."""
        result: list[dict[str, Any]] = await self.call("samples", {"id": entityId, "since": since})
        return result

    async def frameTimes(self, consumerId: str, since: float = 0) -> list[float]:
        """Page times (ms) of the frames the page's <video> rendered (requestVideoFrameCallback)."""
        result: list[float] = await self.call(
            "frameTimes", {"consumerId": consumerId, "since": since}
        )
        return result

    async def notifications(self, since: float = 0) -> list[dict[str, Any]]:
        """The room's notifications to this peer ``{"at": page ms, "method", "data"}``
        (consumerLayersChanged, consumerScore, ...), from ``since`` on."""
        result: list[dict[str, Any]] = await self.call("notifications", {"since": since})
        return result

    async def transportIds(self) -> dict[str, str | None]:
        """The ids of the page's send and receive transports (None: not made)."""
        result: dict[str, str | None] = await self.call("transports")
        return result

    async def now(self) -> float:
        return float(await self.call("now"))

    async def screenshot(self, path: str | os.PathLike[str], selector: str | None = None) -> None:
        await self.browser.screenshot(self.page, path, selector)

    async def close(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(BrowserError):
            await self.call("close", timeout=5)
        self.closed = True
        with contextlib.suppress(BrowserError):
            await self.browser.closePage(self.page)


def dataMessage(index: int, size: int | None = None) -> str | bytes:
    """The data message the browser page sends and expects at ``index`` (odd: text, even:
    binary; 1 to 3000 bytes; with ``size``: binary, of that size)."""
    body = f"{index}:".ljust(size or 1 + (index * 7919) % 3000, "x")
    return body if index % 2 and not size else body.encode()
