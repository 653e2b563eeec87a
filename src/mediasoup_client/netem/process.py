"""The impairment relay in a process of its own, with the same async API as
:class:`~.relay.ImpairmentRelay`.

In the client's process, the relay shares the event loop with everything else the client
does (packetising, SRTP, decoding hand-offs), and a busy loop delays the relay's packets: its
artefacts would be counted as the network's. In its own process it keeps time by itself, and
its CPU is its own (``stats()["processCpuSeconds"]``).

The child (``python -m mediasoup_client.netem``) reads one JSON request per line on stdin and
answers one JSON line on stdout; it exits when stdin closes, so it never outlives its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from ..types import IceCandidate
from .relay import ImpairmentRelay, relayUdpCandidates
from .spec import (
    GilbertElliott,
    ImpairmentSpec,
    LinkConfig,
    Phase,
    Plan,
    parseImpairment,
    requestedSpec,
)


class RelayProcessError(RuntimeError):
    """The relay process failed or answered with an error."""


class RelayProcess:
    """``await RelayProcess(spec).start()``; then as :class:`ImpairmentRelay`."""

    def __init__(self, spec: ImpairmentSpec | str | None = None, *, seed: int | None = None):
        # Parsed here, so a bad spec fails in the caller, before any process starts.
        self._spec = parseImpairment(spec) if isinstance(spec, str) else spec
        self._seed = seed
        self._process: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> RelayProcess:
        if self._process is not None:
            return self
        arguments = [sys.executable, "-m", "mediasoup_client.netem"]
        if self._seed is not None:
            arguments += ["--seed", str(self._seed)]
        self._process = await asyncio.create_subprocess_exec(
            *arguments,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # A session of its own: with the kernel's autogroup scheduling, a session shares
            # CPU time as one group, and the relay (a few % of a core) must not wait behind
            # its client's encoders to forward a packet.
            start_new_session=True,
        )
        await self._request("ping")
        if self._spec is not None:
            await self.configure(self._spec)
        return self

    async def addTarget(self, ip: str, port: int) -> tuple[str, int]:
        host, listenPort = await self._request("addTarget", ip=ip, port=int(port))
        return str(host), int(listenPort)

    async def relayCandidates(self, candidates: Iterable[IceCandidate]) -> list[IceCandidate]:
        return await relayUdpCandidates(self.addTarget, candidates)

    async def configure(
        self,
        spec: ImpairmentSpec | str | None = None,
        *,
        up: LinkConfig | str | Plan | None = None,
        down: LinkConfig | str | Plan | None = None,
    ) -> None:
        await self._request("configure", spec=_specToJson(requestedSpec(spec, up, down)))

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("stats")
        return result

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(Exception):
                process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise

    async def __aenter__(self) -> RelayProcess:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(self, method: str, **params: Any) -> Any:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise RelayProcessError("the relay process is not running")
        async with self._lock:
            requestId = next(self._ids)
            line = json.dumps({"id": requestId, "method": method, "params": params})
            process.stdin.write(line.encode() + b"\n")
            await process.stdin.drain()
            answer = await process.stdout.readline()
        if not answer:
            raise RelayProcessError(f"the relay process exited (status {process.returncode})")
        reply = json.loads(answer)
        if reply.get("id") != requestId:
            raise RelayProcessError(f"unexpected answer from the relay process: {reply!r}")
        if "error" in reply:
            raise RelayProcessError(reply["error"])
        return reply.get("result")


def _specToJson(spec: ImpairmentSpec) -> dict[str, Any]:
    return {"up": _planToJson(spec.up), "down": _planToJson(spec.down)}


def _planToJson(plan: Plan | None) -> list[dict[str, Any]] | None:
    if plan is None:
        return None
    return [
        {"config": dataclasses.asdict(phase.config), "duration": phase.duration} for phase in plan
    ]


def _planFromJson(value: Any) -> Plan | None:
    if value is None:
        return None
    phases = []
    for entry in value:
        fields = dict(entry["config"])
        gilbert = fields.pop("gilbert", None)
        fields["given"] = tuple(fields.get("given") or ())
        config = LinkConfig(
            **fields, gilbert=None if gilbert is None else GilbertElliott(**gilbert)
        )
        phases.append(Phase(config, entry["duration"]))
    return tuple(phases)


# The child.
def _raisePriority() -> str:
    """The network must not wait for CPU: the lowest real-time priority when allowed (the
    relay uses a few % of a core; the kernel keeps 5 % of every second for other tasks),
    else a lower nice value, else as it is. Returns what it got."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return "SCHED_FIFO 1"
    with contextlib.suppress(OSError):
        os.nice(-10)
        return "nice -10"
    return "normal"


async def serve(seed: int | None) -> None:
    scheduling = _raisePriority()
    relay = await ImpairmentRelay(seed=seed).start()
    relay.scheduling = scheduling
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout
    try:
        while True:
            line = await reader.readline()
            if not line:
                return  # the parent closed our stdin (or died)
            requestId = None
            try:
                request = json.loads(line)
                requestId = request.get("id")
                result = await _handle(relay, request["method"], request.get("params") or {})
                reply: dict[str, Any] = {"id": requestId, "result": result}
            except Exception as error:
                reply = {"id": requestId, "error": f"{type(error).__name__}: {error}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        await relay.close()


async def _handle(relay: ImpairmentRelay, method: str, params: dict[str, Any]) -> Any:
    if method == "ping":
        return "pong"
    if method == "addTarget":
        return list(await relay.addTarget(str(params["ip"]), int(params["port"])))
    if method == "configure":
        spec = params["spec"]
        await relay.configure(
            ImpairmentSpec(up=_planFromJson(spec.get("up")), down=_planFromJson(spec.get("down")))
        )
        return None
    if method == "stats":
        return relay.statsNow()
    raise ValueError(f"unknown method {method!r}")
