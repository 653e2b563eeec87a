"""The benchmark suite: our client against pymediasoup 1.5.0, side by side, in one run.

Starts the local SFU once, then runs every scenario with both clients, one process at a time
(``worker.py``; ours under ``.venv``, pymediasoup under ``bench/.venv-pymediasoup``), profiles
our send path with py-spy, prints the table and writes ``bench/out/results.json`` and
``bench/out/results.png``. Started by ``bench/run``, which prepares both environments.

    .venv/bin/python bench/driver.py [--quick] [--skip-profile]
        [--only media|data|paths|passthrough]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layer_quality import table as layerTable
from profile_summary import summarise as summariseProfile

from mediasoup_client.signaling.local_sfu import LocalSfu

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.coturn import Coturn, CoturnError

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
PYTHONS = {
    "ours": REPO / ".venv" / "bin" / "python",
    "pymediasoup": BENCH / ".venv-pymediasoup" / "bin" / "python",
}
PYSPY = REPO / ".venv" / "bin" / "py-spy"
CLIENTS = ("ours", "pymediasoup")


@dataclass
class Settings:
    reps: int
    videoWarmup: float  # aiortc's VP8 bitrate follows REMB up to 1.5 Mbps in about 25 s
    videoWindow: int
    opusSteps: str
    opusWarmup: float
    opusWindow: int
    opusMaxTime: float
    transports: int
    profileWindow: int
    dataReps: int
    dataMixedCount: int
    data64kCount: int
    layerWarmup: float
    layerWindow: float
    passthroughWarmup: float = 5
    fanoutSteps: str = "50,100,150,200,300,400,500,600,700,800"


FULL = Settings(
    reps=20,
    videoWarmup=25,
    videoWindow=10,
    opusSteps="10,20,30,40,60,80,100,120,150,200",
    opusWarmup=3,
    opusWindow=5,
    opusMaxTime=150,
    transports=100,
    profileWindow=15,
    dataReps=3,
    dataMixedCount=10_000,
    data64kCount=2_000,
    layerWarmup=8,
    layerWindow=10,
)
QUICK = Settings(
    reps=4,
    videoWarmup=6,
    videoWindow=4,
    opusSteps="10,20,40",
    opusWarmup=2,
    opusWindow=3,
    opusMaxTime=40,
    transports=15,
    profileWindow=5,
    dataReps=1,
    dataMixedCount=3_000,
    data64kCount=300,
    layerWarmup=5,
    layerWindow=6,
    fanoutSteps="50,100,200",
)


class Runner:
    def __init__(self, sfu: LocalSfu, logDir: Path) -> None:
        self.sfu = sfu
        self.logDir = logDir
        self.count = 0

    def command(self, client: str, scenario: str, options: list[str]) -> list[str]:
        url = self.sfu.url_for(f"bench-{uuid.uuid4().hex[:8]}", client)
        worker = str(BENCH / "worker.py")
        return [str(PYTHONS[client]), worker, scenario, "--client", client, "--url", url, *options]

    def run(
        self,
        client: str,
        scenario: str,
        options: list[str],
        *,
        label: str,
        timeout: float = 400,
        profileTo: Path | None = None,
        command: list[str] | None = None,
    ) -> dict[str, Any]:
        """One worker process (or ``command``, any script that ends with a ``RESULT`` line);
        its result, or ``{"error": ...}`` (the table says so)."""
        self.count += 1
        command = command or self.command(client, scenario, options)
        if profileTo is not None:
            # py-spy samples all threads, 100 Hz, without stopping the process at each sample.
            command = [
                str(PYSPY), "record", "--format", "raw", "--rate", "100", "--threads",
                "--nonblocking", "--output", str(profileTo), "--", *command,
            ]  # fmt: skip
        log = self.logDir / f"{self.count:02d}-{label}-{client}.log"
        print(f"  {label} [{client}] ...", end="", flush=True, file=sys.stderr)
        started = time.monotonic()
        with log.open("w") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
            try:
                stdout, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()  # only the worker this run started
                process.communicate()
                print(" timed out", file=sys.stderr)
                return {"error": f"timed out after {timeout:.0f} s (log {log})"}
        elapsed = time.monotonic() - started
        for line in reversed(stdout.splitlines()):
            if line.startswith("RESULT "):
                print(f" {elapsed:.0f} s", file=sys.stderr)
                result: dict[str, Any] = json.loads(line[len("RESULT ") :])
                result["elapsedSeconds"] = elapsed
                return result
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        print(f" failed (exit {process.returncode})", file=sys.stderr)
        return {"error": f"exit {process.returncode}: {' | '.join(tail)} (log {log})"}


def videoOptions(
    settings: Settings,
    *,
    k: int = 1,
    width: int = 640,
    height: int = 480,
    layers: int = 1,
    maxBitrate: float | None = None,
    startBitrate: bool = True,
) -> list[str]:
    options = [
        "--k", str(k), "--width", str(width), "--height", str(height),
        "--layers", str(layers),
        "--warmup", str(settings.videoWarmup), "--window", str(settings.videoWindow),
    ]  # fmt: skip
    if maxBitrate:
        options += ["--max-bitrate", str(int(maxBitrate))]
        if startBitrate:
            # Start at the whole demand, so ours runs at the matched bitrate from the first
            # second (until dbb7eb2 the start bitrate also capped it for good, RESULTS.md).
            total = maxBitrate * sum(4**-i for i in range(layers))
            options += ["--start-bitrate", str(math.ceil(total / 1000))]
    return options


def runLayerQuality(runner: Runner, settings: Settings) -> dict[str, Any]:
    """Scenario 6 (bench/layer_quality.py): per simulcast layer, fps, bitrate and PSNR/SSIM of
    ours beside Chromium's encoder, same source, same encodings (the CLI's and mediasoup-demo's)."""
    print("6. per-layer fps, bitrate and quality: ours beside Chromium's encoder", file=sys.stderr)
    results: dict[str, Any] = {}
    for encodings in ("cli", "demo"):
        command = [
            str(PYTHONS["ours"]), str(BENCH / "layer_quality.py"),
            "--sfu-port", str(runner.sfu.port), "--encodings", encodings,
            "--warmup", str(settings.layerWarmup), "--window", str(settings.layerWindow),
        ]  # fmt: skip
        results[encodings] = runner.run(
            "ours", "layer-quality", [], label=f"layers-{encodings}", command=command
        )
    return results


def runScenarios(runner: Runner, settings: Settings) -> dict[str, Any]:
    results: dict[str, Any] = {}
    print("1. first RTP after produce()", file=sys.stderr)
    results["firstRtp"] = {
        c: runner.run(c, "first-rtp", ["--reps", str(settings.reps)], label="first-rtp")
        for c in CLIENTS
    }

    print("2. VP8 640x480@30 producers", file=sys.stderr)
    for k in (1, 4):
        theirs = runner.run("pymediasoup", "video", videoOptions(settings, k=k), label=f"vp8-k{k}")
        # Ours at the bitrate pymediasoup delivered (its encoder follows REMB, ours is capped).
        matched = theirs.get("bitratePerStream") or 1_000_000
        ours = runner.run(
            "ours", "video", videoOptions(settings, k=k, maxBitrate=matched), label=f"vp8-k{k}"
        )
        results[f"vp8k{k}"] = {"ours": ours, "pymediasoup": theirs}

    print("3. Opus producers at full rate within one core", file=sys.stderr)
    opusOptions = [
        "--steps", settings.opusSteps, "--warmup", str(settings.opusWarmup),
        "--window", str(settings.opusWindow), "--max-time", str(settings.opusMaxTime),
    ]  # fmt: skip
    results["opus"] = {c: runner.run(c, "opus", opusOptions, label="opus") for c in CLIENTS}

    print("4. VP8 1280x720@30: 3-layer simulcast and single layer", file=sys.stderr)
    theirs720 = runner.run(
        "pymediasoup", "video", videoOptions(settings, width=1280, height=720), label="720p"
    )
    top = theirs720.get("bitratePerStream") or 1_500_000
    hd: dict[str, Any] = {"width": 1280, "height": 720, "maxBitrate": top}
    results["single720"] = {
        "pymediasoup": theirs720,
        "ours": runner.run("ours", "video", videoOptions(settings, **hd), label="720p"),
    }
    results["simulcast720"] = {
        "ours": runner.run(
            "ours", "video", videoOptions(settings, layers=3, **hd), label="simulcast"
        ),
        "pymediasoup": runner.run(
            "pymediasoup", "video", videoOptions(settings, layers=3, **hd), label="simulcast"
        ),
        # Without codecOptions (until dbb7eb2 this showed the start-bitrate cap).
        "oursNoWorkaround": runner.run(
            "ours",
            "video",
            videoOptions(settings, layers=3, startBitrate=False, **hd),
            label="simulcast-as-shipped",
        ),
    }

    print("5. memory per send transport with one Opus producer", file=sys.stderr)
    memoryOptions = ["--transports", str(settings.transports), "--warmup", "3"]
    results["memory"] = {c: runner.run(c, "memory", memoryOptions, label="memory") for c in CLIENTS}
    # The same without media: what a transport and its producer take by themselves.
    results["memoryPaused"] = {
        c: runner.run(c, "memory", [*memoryOptions, "--paused"], label="memory-paused")
        for c in CLIENTS
    }
    results["passthrough"] = runPassthrough(runner, settings)
    return results


# Section 7: the pre-encoded files (made here, never committed) and their encoded twins.
PASSTHROUGH_FILES = {
    "480p": {"width": 640, "height": 480, "bitrate": 1_000_000},
    "720p": {"width": 1280, "height": 720, "bitrate": 2_500_000},
}


def passthroughFile(name: str) -> Path:
    """An H264 file of the moving test pattern (10 s, 30 fps, a key frame every 2 s)."""
    from mediasoup_client.media.test_sources import writeTestFile

    spec = PASSTHROUGH_FILES[name]
    path = OUT / "media" / f"pattern-{name}-{spec['bitrate'] // 1000}k.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"  making {path.name}", file=sys.stderr)
        writeTestFile(
            str(path), width=spec["width"], height=spec["height"], seconds=10, gop=60,
            bitrate=spec["bitrate"],
        )  # fmt: skip
    return path


def runPassthrough(runner: Runner, settings: Settings) -> dict[str, Any]:
    """CPU of one producer sending a file's H264 as it is against one encoding the same
    pictures at the same bitrate, and the idle floor; one process each, ours only."""
    print("7. passthrough (pre-encoded H264) against encoding producers", file=sys.stderr)
    results: dict[str, Any] = {}

    def run(label: str, mode: str, name: str, codec: str = "h264") -> dict[str, Any]:
        spec = PASSTHROUGH_FILES[name]
        options = [
            "--mode", mode, "--file", str(passthroughFile(name)), "--codec", codec,
            "--max-bitrate", str(spec["bitrate"]), "--width", str(spec["width"]),
            "--height", str(spec["height"]), "--warmup", str(settings.passthroughWarmup),
            "--window", str(settings.videoWindow),
        ]  # fmt: skip
        return runner.run("ours", "passthrough", options, label=label)

    results["idle"] = run("passthrough-idle", "idle", "480p")
    for name in PASSTHROUGH_FILES:
        results[f"passthrough{name}"] = run(f"passthrough-{name}", "passthrough", name)
        results[f"h264{name}"] = run(f"encode-h264-{name}", "encode", name)
    results["vp8720p"] = run("encode-vp8-720p", "encode", "720p", codec="vp8")
    return results


FANOUT_KS = (1, 2, 4)


def runFanout(runner: Runner, settings: Settings) -> dict[str, Any]:
    """Section 8, encode once for many (ours only): the CPU of k VP8 producers of one source,
    each on its own transport (1, 2, 4 sharing one encoder; 4 with a copy of the source each,
    one encoder each, for contrast), and the Opus ramp of scenario 3 with one tone track
    for every producer."""
    print("8. encode once for many: one source, many producers", file=sys.stderr)
    spec = PASSTHROUGH_FILES["480p"]
    results: dict[str, Any] = {}

    def video(k: int, distinct: bool = False) -> dict[str, Any]:
        options = [
            "--k", str(k), "--file", str(passthroughFile("480p")),
            "--max-bitrate", str(spec["bitrate"]), "--warmup", str(settings.passthroughWarmup),
            "--window", str(settings.videoWindow),
        ] + (["--distinct"] if distinct else [])  # fmt: skip
        label = f"fanout-vp8-k{k}" + ("-distinct" if distinct else "")
        return runner.run("ours", "fanout", options, label=label)

    for k in FANOUT_KS:
        results[f"vp8k{k}"] = video(k)
    results[f"vp8k{FANOUT_KS[-1]}distinct"] = video(FANOUT_KS[-1], distinct=True)
    opusOptions = [
        "--steps", settings.fanoutSteps, "--warmup", str(settings.opusWarmup),
        "--window", str(settings.opusWindow), "--max-time", str(settings.opusMaxTime * 2),
        "--shared-source",
    ]  # fmt: skip
    results["opusShared"] = runner.run(
        "ours", "opus", opusOptions, label="fanout-opus", timeout=900
    )
    return results


PATHS = ("udp", "ice-tcp", "turn-udp", "turn-tcp", "turn-tls")


def runPaths(runner: Runner, settings: Settings) -> dict[str, Any]:
    """First RTP (as in 1, ours only) through each connectivity path: direct UDP, ICE over
    TCP (the router offering TCP only), and TURN over UDP, TCP and TLS with
    iceTransportPolicy 'relay' (coturn on 127.0.0.1, started here)."""
    print("7. first RTP per connectivity path (ours)", file=sys.stderr)
    reps = ["--reps", str(settings.reps)]
    results: dict[str, Any] = {}
    for path in ("udp", "ice-tcp"):
        options = [*reps, "--path", path] + (["--force-tcp"] if path == "ice-tcp" else [])
        results[path] = runner.run("ours", "first-rtp-path", options, label=f"path-{path}")
    try:
        turn = Coturn("127.0.0.1").start()
    except CoturnError as error:
        for path in PATHS[2:]:
            results[path] = {"error": f"coturn: {error}"}
        return results
    try:
        for transport in ("udp", "tcp", "tls"):
            path = f"turn-{transport}"
            options = [
                *reps, "--path", path, "--policy", "relay",
                "--ice-servers", json.dumps([turn.iceServer(transport)]),
            ]  # fmt: skip
            if transport == "tls":
                options += ["--ca-file", str(turn.caFile)]
            results[path] = runner.run("ours", "first-rtp-path", options, label=f"path-{path}")
    finally:
        turn.stop()
    return results


def pathRows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for path in PATHS:
        result = results.get(path, {"error": "not run"})
        pairs = result.get("selectedPairs") or []
        seen = "; ".join(
            "/".join(str(v) for v in (p.get("localCandidateType"), p.get("protocol"),
                                      p.get("relayProtocol")) if v)
            for p in pairs
        )  # fmt: skip
        rows.append(
            {
                "scenario": f"7 first RTP via {path}, new transport",
                "metric": "median ms",
                "ours": cell(result, result.get("coldMedianMs"), 1),
                "pymediasoup": "-",
                "ratio": "-",
                "target": "",
                "met": "-",
                "note": f"connected transport {fmt(result.get('warmMedianMs'), 1)} ms; "
                f"{len(result.get('coldMs', []))} reps; pair {seen or '?'}",
                "oursValue": result.get("coldMedianMs"),
                "theirValue": None,
                "ratioValue": None,
            }
        )
    return rows


def runDataScenarios(runner: Runner, settings: Settings) -> dict[str, Any]:
    results: dict[str, Any] = {}
    print("6. data channel throughput at a DataConsumer (default router)", file=sys.stderr)
    for key, sizes, count in (
        ("dataMixed", "mixed", settings.dataMixedCount),
        ("data64k", "64k", settings.data64kCount),
    ):
        options = ["--count", str(count), "--sizes", sizes]
        options += ["--producer-python", str(PYTHONS["ours"])]
        results[key] = {}
        for client in CLIENTS:
            runs = [
                runner.run(client, "data", options, label=f"data-{sizes}")
                for _ in range(settings.dataReps)
            ]
            results[key][client] = summariseData(runs)
    return results


def summariseData(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the repetitions that ran, with every run kept; losses summed."""
    done = [r for r in runs if "error" not in r]
    if not done:
        return runs[0]

    def middle(key: str) -> float | None:
        values = [r[key] for r in done if r.get(key) is not None]
        return statistics.median(values) if values else None

    return {
        "runs": runs,
        "reps": len(done),
        "sizes": done[0]["sizes"],
        "messages": done[0]["sent"],
        "messagesPerSecond": middle("messagesPerSecond"),
        "megabytesPerSecond": middle("megabytesPerSecond"),
        "cpuMicrosecondsPerMessage": middle("cpuMicrosecondsPerMessage"),
        "producerMegabytesPerSecond": statistics.median(
            r["sentBytes"] / r["producerSendSeconds"] / 1e6 for r in done
        ),
        "lost": sum(r["lost"] for r in done),
        "sent": sum(r["sent"] for r in done),
        "routerDropped": sum(r["routerDropped"] or 0 for r in done),
        "kernelDrops": sum(r["kernelDrops"] for r in done),
        "completeRuns": sum(1 for r in done if r["complete"] and r["inOrder"]),
        "maxSocketQueueBytes": max(r["maxSocketQueueBytes"] for r in done),
        "failedRuns": len(runs) - len(done),
    }


def runProfiles(runner: Runner, settings: Settings, results: dict[str, Any]) -> dict[str, Any]:
    """py-spy on our send path (VP8, simulcast, Opus) and, for contrast, pymediasoup's VP8."""
    print("profiles (py-spy)", file=sys.stderr)
    short = Settings(
        **{**settings.__dict__, "videoWarmup": 5, "videoWindow": settings.profileWindow}
    )
    vp8Bitrate = results["vp8k1"]["pymediasoup"].get("bitratePerStream") or 1_000_000
    top = results["single720"]["pymediasoup"].get("bitratePerStream") or 1_500_000
    runs = {
        "ours-vp8": ("ours", "video", videoOptions(short, maxBitrate=vp8Bitrate)),
        "ours-simulcast": (
            "ours",
            "video",
            videoOptions(short, width=1280, height=720, layers=3, maxBitrate=top),
        ),
        "ours-opus": (
            "ours",
            "opus",
            ["--steps", "30", "--warmup", "2", "--window", str(settings.profileWindow)],
        ),
        # Scenario 8: producers of one tone track, encoded once: what each one costs.
        "ours-opus-shared": (
            "ours",
            "opus",
            [
                "--steps", "100", "--warmup", "2", "--window", str(settings.profileWindow),
                "--shared-source",
            ],
        ),
        "pymediasoup-vp8": ("pymediasoup", "video", videoOptions(short)),
    }
    profiles: dict[str, Any] = {}
    for name, (client, scenario, options) in runs.items():
        raw = OUT / f"profile-{name}.txt"
        result = runner.run(client, scenario, options, label=f"profile-{name}", profileTo=raw)
        threadCpu = result.get("threadCpuPerSecond")
        if threadCpu is None and result.get("steps"):
            threadCpu = result["steps"][-1].get("threadCpuPerSecond")
        cpu = result.get("cpuPerSecond")
        if cpu is None and result.get("steps"):
            cpu = result["steps"][-1].get("cpuPerSecond")
        if not raw.exists():
            profiles[name] = {"error": result.get("error", "py-spy wrote no profile")}
            continue
        profiles[name] = {
            "cpuPerSecond": cpu,
            "threadCpuPerSecond": threadCpu,
            **summariseProfile(str(raw), threadCpu),
        }
    return profiles


# The table.
def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def delivered(result: dict[str, Any]) -> str:
    """Per stream (top layer): frames/s sent, router kbps, packets lost."""
    if "error" in result or "unsupported" in result:
        return ""
    return f"{result['framerate']:.1f} fps, {result['bitratePerStream'] / 1000:.0f} kbps" + (
        f", {result['lost']} lost" if result.get("lost") else ""
    )


def failedNote(pair: dict[str, dict[str, Any]]) -> str:
    """Failed attempts a worker retried (the table says so rather than hide them)."""
    notes = [
        f"{client}: {len(failed)} failed attempt(s) retried"
        for client, result in pair.items()
        if (failed := result.get("failedAttempts") or result.get("failedProduceAttempts"))
    ]
    return "; " + "; ".join(notes) if notes else ""


def layerRates(result: dict[str, Any]) -> str:
    """Per simulcast layer (lowest first): frames/s sent and router kbps."""
    if "producers" not in result:
        return ""
    return ", ".join(
        f"L{layer['layer']} {layer['framerate']:.0f} fps {layer['bitrate'] / 1000:.0f} kbps"
        for layer in result["producers"][0]["layers"]
    )


def cell(result: dict[str, Any], value: float | None, digits: int = 2) -> str:
    if "unsupported" in result:
        return "not possible"
    if "error" in result:
        return "error"
    return fmt(value, digits)


def buildRows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(
        scenario: str,
        metric: str,
        ours: dict[str, Any],
        theirs: dict[str, Any],
        oursValue: float | None,
        theirValue: float | None,
        *,
        target: str = "",
        met: bool | None = None,
        note: str = "",
        digits: int = 2,
        compare: bool = True,
    ) -> None:
        r = ratio(oursValue, theirValue) if compare else None
        rows.append(
            {
                "scenario": scenario,
                "metric": metric,
                "ours": cell(ours, oursValue, digits),
                "pymediasoup": cell(theirs, theirValue, digits),
                "ratio": fmt(r),
                "target": target,
                "met": "-" if met is None else ("yes" if met else "NO"),
                "note": note,
                "oursValue": oursValue,
                "theirValue": theirValue,
                "ratioValue": r,
            }
        )

    if "firstRtp" in results:
        mediaRows(add, results)
    for key, title in (
        ("dataMixed", "6 data: mixed 1 B-3 KB messages"),
        ("data64k", "6 data: 64 KiB messages"),
    ):
        pair = results.get(key)
        if not pair:
            continue
        ours, theirs = pair["ours"], pair["pymediasoup"]
        note = "; ".join(
            f"{name}: {r.get('lost', '?')} of {r.get('sent', '?')} lost "
            f"(router {r.get('routerDropped', '?')}, kernel {r.get('kernelDrops', '?')}), "
            f"{r.get('completeRuns', '?')}/{r.get('reps', '?')} runs complete"
            for name, r in (("ours", ours), ("theirs", theirs))
        )
        producer = ours.get("producerMegabytesPerSecond")
        add(
            f"{title}, {ours.get('messages', '?')} per run", "messages/s received", ours, theirs,
            ours.get("messagesPerSecond"), theirs.get("messagesPerSecond"), digits=0,
            note=f"{note}; producer (ours, own process) {fmt(producer, 1)} MB/s",
        )  # fmt: skip
        add(
            f"{title}", "MB/s received", ours, theirs,
            ours.get("megabytesPerSecond"), theirs.get("megabytesPerSecond"), digits=2,
        )  # fmt: skip
        add(
            f"{title}", "consumer CPU us/message", ours, theirs,
            ours.get("cpuMicrosecondsPerMessage"), theirs.get("cpuMicrosecondsPerMessage"),
            digits=0,
        )  # fmt: skip
    addPassthroughRows(results.get("passthrough"), add)
    addFanoutRows(results.get("fanout"), add)
    return rows


def mediaRows(add: Any, results: dict[str, Any]) -> None:
    first = results["firstRtp"]
    cold = [first[c].get("coldMedianMs") for c in ("ours", "pymediasoup")]
    r = ratio(*cold)
    add(
        "1 first RTP, new transport (VP8)", "median ms", first["ours"], first["pymediasoup"],
        *cold, target="<= 0.5x", met=None if r is None else r <= 0.5,
        note=f"{len(first['ours'].get('coldMs', []))} reps; ICE+DTLS included"
        + failedNote(first), digits=1,
    )  # fmt: skip
    warm = [first[c].get("warmMedianMs") for c in ("ours", "pymediasoup")]
    r = ratio(*warm)
    add(
        "1 first RTP, connected transport", "median ms", first["ours"], first["pymediasoup"],
        *warm, target="<= 0.5x", met=None if r is None else r <= 0.5, digits=1,
    )  # fmt: skip

    for k in (1, 4):
        pair = results[f"vp8k{k}"]
        ours, theirs = pair["ours"], pair["pymediasoup"]
        perStream = [p.get("cpuPerSecond") for p in (ours, theirs)]
        perStream = [None if v is None else v / k for v in perStream]
        r = ratio(*perStream)
        add(
            f"2 VP8 640x480@30, k={k}", "CPU s/s per stream", ours, theirs, *perStream,
            target="<= 0.7x", met=None if r is None else r <= 0.7,
            note=f"ours {delivered(ours)}; theirs {delivered(theirs)}", digits=3,
        )  # fmt: skip

    opus = results["opus"]
    counts = [opus[c].get("maxFullRateProducers") for c in ("ours", "pymediasoup")]
    add(
        "3 Opus producers, full rate, <= 1 core", "producers", opus["ours"], opus["pymediasoup"],
        *[None if v is None else float(v) for v in counts], target=">= 100 (ours)",
        met=None if counts[0] is None else counts[0] >= 100,
        note="largest ramp step with < 1 % missing and CPU <= 1.0", digits=0,
    )  # fmt: skip

    simulcast, single = results["simulcast720"], results["single720"]
    add(
        "4 VP8 1280x720 single layer", "CPU s/s", single["ours"], single["pymediasoup"],
        single["ours"].get("cpuPerSecond"), single["pymediasoup"].get("cpuPerSecond"),
        note=f"ours {delivered(single['ours'])}; theirs {delivered(single['pymediasoup'])}",
        digits=3,
    )  # fmt: skip
    add(
        "4 VP8 720p 3-layer simulcast", "CPU s/s", simulcast["ours"], simulcast["pymediasoup"],
        simulcast["ours"].get("cpuPerSecond"), None, note=f"ours {layerRates(simulcast['ours'])}",
        digits=3, compare=False,
    )  # fmt: skip
    shipped = simulcast.get("oursNoWorkaround", {"error": "not run"})
    add(
        "4 same, without videoGoogleStartBitrate", "CPU s/s", shipped, simulcast["pymediasoup"],
        shipped.get("cpuPerSecond"), None, digits=3, compare=False,
        note=f"ours {layerRates(shipped)} (no codecOptions; see RESULTS.md)",
    )  # fmt: skip
    oursRatio = ratio(simulcast["ours"].get("cpuPerSecond"), single["ours"].get("cpuPerSecond"))
    add(
        "4 simulcast / single 720p CPU", "ratio", simulcast["ours"], simulcast["pymediasoup"],
        oursRatio, None, target="<= 1.5 (ours)",
        met=None if oursRatio is None else oursRatio <= 1.5, compare=False,
    )  # fmt: skip

    memory = results["memory"]
    perTransport = [
        None
        if memory[c].get("bytesPerTransport") is None
        else memory[c]["bytesPerTransport"] / 1024
        for c in ("ours", "pymediasoup")
    ]
    add(
        "5 RSS per send transport + Opus producer", "KiB", memory["ours"], memory["pymediasoup"],
        *perTransport, digits=0,
        note=f"{memory['ours'].get('transports', '?')} transports; sending: ours "
        f"{memory['ours'].get('producersSending', '?')}, theirs "
        f"{memory['pymediasoup'].get('producersSending', '?')}; Opus pkt/s per producer / CPU "
        f"s/s: ours {fmt(memory['ours'].get('packetRatePerProducer'), 1)} / "
        f"{fmt(memory['ours'].get('cpuPerSecond'))}, theirs "
        f"{fmt(memory['pymediasoup'].get('packetRatePerProducer'), 1)} / "
        f"{fmt(memory['pymediasoup'].get('cpuPerSecond'))}" + failedNote(memory),
    )  # fmt: skip
    paused = results.get("memoryPaused")
    if paused:
        add(
            "5 same, producers paused (no media)", "KiB", paused["ours"], paused["pymediasoup"],
            *[None if paused[c].get("bytesPerTransport") is None
              else paused[c]["bytesPerTransport"] / 1024 for c in ("ours", "pymediasoup")],
            digits=0, compare=False, note="pymediasoup's aiortc handler cannot pause",
        )  # fmt: skip


def addPassthroughRows(section: dict[str, Any] | None, add: Any) -> None:
    """Section 7: passthrough and encoding side by side (ours only: pymediasoup cannot send
    pre-encoded media), the ratios against the 1/20 target, and the idle floor."""
    if not section:
        return
    none = {"unsupported": "pymediasoup cannot send pre-encoded media"}

    def cpu(key: str) -> float | None:
        value = section.get(key, {}).get("cpuPerSecondMean")
        return None if value is None else float(value)

    def sent(key: str) -> str:
        result = section.get(key, {})
        if "error" in result:
            return ""
        return (
            f"{result.get('framerate', 0):.1f} fps, "
            f"{result.get('bitratePerStream', 0) / 1000:.0f} kbps, "
            f"{result.get('encoderImplementation')}"
        )

    floor = cpu("idle")
    for name, size in (("480p", "640x480"), ("720p", "1280x720")):
        encoders = [("h264", "libx264")]
        if name == "720p":
            encoders.append(("vp8", "libvpx, the default codec"))
        passthrough = f"passthrough{name}"
        add(
            f"7 {size}@30 H264 file, passthrough", "mean CPU s/s", section.get(passthrough, {}),
            none, cpu(passthrough), None, digits=4, compare=False, note=sent(passthrough),
        )  # fmt: skip
        for codec, label in encoders:
            key = f"{codec}{name}"
            add(
                f"7 same pictures, encoding ({label})", "mean CPU s/s", section.get(key, {}), none,
                cpu(key), None, digits=4, compare=False, note=sent(key),
            )  # fmt: skip
            values = (cpu(passthrough), cpu(key), floor)
            r = ratio(values[0], values[1])
            net = (
                ratio(values[0] - values[2], values[1] - values[2])  # type: ignore[operator]
                if None not in values
                else None
            )
            add(
                f"7 passthrough / {codec.upper()} encoding, {size}", "ratio",
                section.get(key, {}), none, r, None, target="<= 0.05",
                met=None if r is None else r <= 0.05, compare=False,
                note=f"without the idle floor: {fmt(net, 3)}",
            )  # fmt: skip
    add(
        "7 idle floor (connected transport, producer never fed)", "mean CPU s/s",
        section.get("idle", {}), none, floor, None, digits=4, compare=False,
        note="ICE/DTLS keep-alives, RTCP, the benchmark's own stats requests",
    )  # fmt: skip


def addFanoutRows(section: dict[str, Any] | None, add: Any) -> None:
    """Section 8: the CPU each extra producer of one fanned-out source adds, against the
    first's (target 1/10), and full-rate Opus producers per core from one source (>= 500)."""
    if not section:
        return
    none = {"unsupported": "pymediasoup has no shared encoders"}

    def cpu(key: str) -> float | None:
        value = section.get(key, {}).get("cpuPerSecondMean")
        return None if value is None else float(value)

    def note(key: str) -> str:
        result = section.get(key, {})
        if "error" in result or "unsupported" in result:
            return ""
        return (
            f"{result.get('encodersOpened')} encoder(s) opened, "
            f"{result.get('framerate', 0):.1f} fps, "
            f"{result.get('bitratePerStream', 0) / 1000:.0f} kbps per stream, "
            f"lost {result.get('lost', 0)}"
        )

    for k in FANOUT_KS:
        key = f"vp8k{k}"
        add(
            f"8 VP8 640x480@30, {k} producer(s) of one source, {k} transport(s)",
            "mean CPU s/s", section.get(key, {}), none, cpu(key), None, digits=4,
            compare=False, note=note(key),
        )  # fmt: skip
    last = FANOUT_KS[-1]
    distinct = f"vp8k{last}distinct"
    add(
        f"8 same, {last} producers each with a copy of the source (no sharing)",
        "mean CPU s/s", section.get(distinct, {}), none, cpu(distinct), None, digits=4,
        compare=False, note=note(distinct),
    )  # fmt: skip
    first, many = cpu("vp8k1"), cpu(f"vp8k{last}")
    extra = (many - first) / (last - 1) if first is not None and many is not None else None
    r = ratio(extra, first)
    add(
        "8 CPU per extra producer of one source / the first's", "ratio",
        section.get(f"vp8k{last}", {}), none, r, None, target="<= 0.1",
        met=None if r is None else r <= 0.1, compare=False,
        note=f"extra {fmt(extra, 4)} s/s per producer, from k=1 and k={last}",
    )  # fmt: skip
    opus = section.get("opusShared", {})
    best = opus.get("maxFullRateProducers")
    add(
        "8 Opus producers of one source, full rate, <= 1 core", "producers", opus, none,
        best, None, target=">= 500", met=None if best is None else best >= 500,
        compare=False,
        note=f"tested up to {opus.get('testedUpTo')}; one transport, one tone track",
    )  # fmt: skip


def markdownTable(rows: list[dict[str, Any]]) -> str:
    header = "| scenario | metric | ours | pymediasoup | ours/theirs | target | met | notes |"
    lines = [header, "| --- | --- | ---: | ---: | ---: | --- | --- | --- |"]
    for row in rows:
        lines.append(
            f"| {row['scenario']} | {row['metric']} | {row['ours']} | {row['pymediasoup']} "
            f"| {row['ratio']} | {row['target']} | {row['met']} | {row['note']} |"
        )
    return "\n".join(lines)


def profileTable(profiles: dict[str, Any]) -> str:
    lines = []
    for name, profile in profiles.items():
        if "error" in profile:
            lines.append(f"{name}: {profile['error']}")
            continue
        cores = profile.get("coresByStage") or {}
        total = profile.get("cpuPerSecond")
        lines.append(
            f"{name}: {fmt(total, 3)} CPU s/s; threads {_fmtMap(profile.get('threadCpuPerSecond'))}"
        )
        for stage, share in profile["stages"].items():
            if share >= 0.01:
                lines.append(f"    {share * 100:5.1f} %  ~{cores.get(stage, 0):.3f} cores  {stage}")
    return "\n".join(lines)


def _fmtMap(values: dict[str, float] | None) -> str:
    if not values:
        return "-"
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items() if v >= 0.0005)


def chart(rows: list[dict[str, Any]], profiles: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Rows with both clients, as ours/theirs; and ours' simulcast/single ratio (a ratio too).
    compared = [
        r
        for r in rows
        if r["ratioValue"] is not None or (r["metric"] == "ratio" and r["oursValue"] is not None)
    ]
    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 6.5))
    labels = [f"{r['scenario']}\n({r['metric']})" for r in compared]
    positions = range(len(compared))
    oursBars = [
        r["ratioValue"] if r["ratioValue"] is not None else r["oursValue"] for r in compared
    ]
    theirBars = [1.0 if r["ratioValue"] is not None else 0.0 for r in compared]
    left.barh([p + 0.2 for p in positions], theirBars, height=0.4, label="pymediasoup 1.5.0 (= 1)")
    left.barh([p - 0.2 for p in positions], oursBars, height=0.4, label="ours")
    for p, r in zip(positions, compared, strict=True):
        text = f"{r['ours']} vs {r['pymediasoup']}"
        left.text(max(oursBars[p], theirBars[p]) + 0.02, p, text, va="center", fontsize=7)
    left.set_yticks(list(positions), labels, fontsize=7)
    left.invert_yaxis()
    left.set_xlabel(
        "ours / pymediasoup (lower is better, except Opus producers and data received/s); "
        "simulcast row: ours alone"
    )
    left.legend(loc="lower right", fontsize=8)
    left.set_title("Ours vs pymediasoup (medians)")

    names = [n for n, p in profiles.items() if "coresByStage" in p]
    stages = sorted({s for n in names for s in profiles[n]["coresByStage"]})
    bottom = [0.0] * len(names)
    for stage in stages:
        values = [profiles[n]["coresByStage"].get(stage, 0.0) for n in names]
        if max(values, default=0) < 0.005:
            continue
        right.bar(names, values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    right.set_ylabel("cores (py-spy share x measured thread CPU)")
    right.set_title("Where the send path's CPU goes")
    right.legend(fontsize=7, loc="upper left")
    right.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        memKb = int(meminfo.readline().split()[1])

    def version(python: Path, code: str) -> str:
        try:
            return subprocess.run(
                [str(python), "-c", code], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    node = shutil.which("node")

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    return {
        # The package is installed in editable mode: what runs is the work tree, which may
        # differ from the commit (say so).
        "commit": git("rev-parse", "--short", "HEAD"),
        "srcModified": bool(git("status", "--porcelain", "--", "src")),
        "nproc": os.cpu_count(),
        "cpuModel": model,
        "memoryGiB": round(memKb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if node
        else "?",
        "mediasoup": "3.8.4",
        "ours": version(
            PYTHONS["ours"],
            "import mediasoup_client as m, aiortc, av; "
            "print(m.__version__, 'aiortc', aiortc.__version__, 'av', av.__version__)",
        ),
        "pymediasoup": version(
            PYTHONS["pymediasoup"],
            "import importlib.metadata as m, aiortc; "
            "print(m.version('pymediasoup'), 'aiortc', aiortc.__version__)",
        ),
        "loadAverageAtStart": [round(v, 2) for v in os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, for development")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument(
        "--only",
        choices=["media", "data", "paths", "passthrough", "fanout"],
        help="run only the media scenarios, the data one, the connectivity paths, passthrough "
        "with encode once for many (the issue-16 figures), or encode once for many alone",
    )
    parser.add_argument(
        "--skip-browser",
        action="store_true",
        help="leave out the layer-quality scenario (needs Chromium)",
    )
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    oursOnly = ("paths", "passthrough", "fanout")
    needed = [PYTHONS["ours"]] if args.only in oursOnly else list(PYTHONS.values())
    for python in needed:
        if not python.exists():
            print(f"bench: {python} is missing: run bench/run", file=sys.stderr)
            return 1
    OUT.mkdir(parents=True, exist_ok=True)
    logDir = OUT / "logs"
    shutil.rmtree(logDir, ignore_errors=True)
    logDir.mkdir()
    started = time.monotonic()
    info = machine()
    with LocalSfu() as sfu:
        runner = Runner(sfu, logDir)
        if args.only == "paths":
            results = {"paths": runPaths(runner, settings)}
            profiles: dict[str, Any] = {}
        elif args.only in ("passthrough", "fanout"):
            # The issue-16 figures side by side: passthrough (7) and encode once for many (8).
            results = {"fanout": runFanout(runner, settings)}
            if args.only == "passthrough":
                results["passthrough"] = runPassthrough(runner, settings)
            profiles = {}
        else:
            results = {} if args.only == "data" else runScenarios(runner, settings)
            if args.only != "media":
                results.update(runDataScenarios(runner, settings))
            if args.only is None:
                results["paths"] = runPaths(runner, settings)
                results["passthrough"] = runPassthrough(runner, settings)
                results["fanout"] = runFanout(runner, settings)
            if not args.skip_browser and args.only != "data":
                results["layerQuality"] = runLayerQuality(runner, settings)
            skipProfile = args.skip_profile or args.only == "data"
            profiles = {} if skipProfile else runProfiles(runner, settings, results)
    rows = [] if args.only == "paths" else buildRows(results)
    if "paths" in results:
        rows += pathRows(results["paths"])
    report = {
        "mode": "quick" if args.quick else "full",
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "durationSeconds": round(time.monotonic() - started),
        "machine": {**info, "loadAverageAtEnd": [round(v, 2) for v in os.getloadavg()]},
        "settings": settings.__dict__,
        "table": rows,
        "profiles": profiles,
        "results": results,
    }
    (OUT / "results.json").write_text(json.dumps(report, indent=2))
    if args.only != "paths":
        chart(rows, profiles, OUT / "results.png")
    print()
    print(
        f"mediasoup-client (ours) vs pymediasoup {info['pymediasoup']} — {report['mode']} run, "
        f"{info['nproc']} x {info['cpuModel']}, {report['durationSeconds']} s"
    )
    print(markdownTable(rows))
    for encodings, quality in results.get("layerQuality", {}).items():
        if "layers" in quality:
            print(
                f"\n6. Per layer, ours beside Chromium {quality.get('chromium')}, "
                f"{quality['width']}x{quality['height']}, {encodings} encodings:"
            )
            print(layerTable(quality))
    if profiles:
        print()
        print("Where our send path's CPU goes (py-spy):")
        print(profileTable(profiles))
    chartNote = "" if args.only == "paths" else f", {OUT / 'results.png'}"
    print(f"\nwritten: {OUT / 'results.json'}{chartNote}, logs in {logDir}")
    failed = [
        f"{name}/{client}"
        for name, pair in results.items()
        for client, result in pair.items()
        if "error" in result
    ]
    if failed:
        print(f"bench: failed runs: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
