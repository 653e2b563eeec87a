"""The network suite (issues 14 and 15): our client through the impairment relay against the
local SFU, every scenario ``--runs`` times, each run in its own process; every run reported,
and the median per figure beside the issues' targets.

    bench/run --network [--runs N] [--quick] [--only downlink-cap,outage,...] [--healthy-seconds S]
    .venv/bin/python bench/network.py ...   (the same, once .venv exists)

Writes ``bench/out/network.json`` (every run's whole result) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driver import PYTHONS, Runner, machine

from mediasoup_client.signaling.local_sfu import LocalSfu

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
WORKER = BENCH / "network_worker.py"


@dataclass(frozen=True)
class Figure:
    scenario: str
    key: str  # in the run's "metrics"
    label: str
    unit: str = ""
    target: str = ""
    # Whether one run's value meets the target (None: no target).
    meets: Callable[[Any], bool] | None = None
    scale: float = 1.0
    digits: int = 2
    # Whether the target must hold in every run (issue 15's "in every run"), not the median.
    everyRun: bool = False


def _under(limit: float) -> Callable[[Any], bool]:
    return lambda v: v is not None and v < limit


def _atMost(limit: float) -> Callable[[Any], bool]:
    return lambda v: v is not None and v <= limit


def _atLeast(limit: float) -> Callable[[Any], bool]:
    return lambda v: v is not None and v >= limit


FIGURES = [
    # (a) issue 14: downlink cap.
    Figure("downlink-cap", "layerAt5s", "spatial layer forwarded at 5 s", digits=0),
    Figure(
        "downlink-cap", "fittingLayerAfter", "time until the router forwards a layer that fits",
        "s", "<= 5 s", _atMost(5),
    ),
    Figure("downlink-cap", "lossAfter5s", "our video loss after 5 s", "%", "< 2 %", _under(0.02),
           scale=100),
    Figure("downlink-cap", "fpsAfter5s", "decoded fps after 5 s", "fps", ">= 25", _atLeast(25),
           digits=1),
    Figure("downlink-cap", "fittingLayerFps", "decoded fps of a layer that fits", "fps", ">= 25",
           _atLeast(25), digits=1),
    Figure("downlink-cap", "retransmissionsPerMediaPacket", "router retransmissions per media "
           "packet", digits=2),
    Figure("downlink-cap", "plisSent", "PLIs the router got from us (capped phase)", digits=0),
    Figure("downlink-cap", "routerAvailableOutgoingBitrate", "router's estimate for us", "kbit/s",
           scale=0.001, digits=0),
    Figure(
        "downlink-cap", "topLayerBackAfterRaise", "cap raised to 3M: top layer forwarded after",
        "s", "<= 10 s", _atMost(10),
    ),
    Figure("downlink-cap", "topFrameAfterRaise", "cap raised: first 640x480 frame after", "s"),
    # (b) issue 14: outage.
    Figure("outage", "firstFrameAfterReturn", "3 s outage (worse of 2 a run): first frame after "
           "the return", "s", "<= 0.5 s", _atMost(0.5), digits=3),
    Figure("outage", "firstFreshFrameAfterReturn", "first frame generated after the return", "s",
           digits=3),
    Figure("outage", "longestGapAfterReturn", "longest freeze after the return", "s",
           "<= 0.5 s", _atMost(0.5), digits=3),
    Figure("outage", "freezesOver500ms", "outages (of 2) followed by a freeze > 0.5 s", "",
           "0 every run", lambda v: v == 0, digits=0, everyRun=True),
    Figure("outage", "fpsAfterReturn", "decoded fps from 1 s after the return", "fps", digits=1),
    # (c) issue 14: loss kept repaired.
    Figure("random-loss", "repairedShare", "5 % loss, 40 ms RTT: lost video packets repaired",
           "%", ">= 90 %", _atLeast(0.9), scale=100, digits=1),
    Figure("random-loss", "fps", "decoded fps", "fps", ">= 29", _atLeast(29), digits=1),
    Figure("random-loss", "longestFreeze", "longest gap between frames", "s", digits=3),
    Figure("random-loss", "relayVideoLoss", "video packets the relay dropped", "%", scale=100,
           digits=1),
    Figure("random-loss", "routerRtt", "router's RTT to us", "ms", digits=0),
    Figure("burst-loss", "repairedShare", "2 % burst loss: lost video packets repaired", "%",
           ">= 90 %", _atLeast(0.9), scale=100, digits=1),
    Figure("burst-loss", "fps", "decoded fps", "fps", ">= 29", _atLeast(29), digits=1),
    Figure("burst-loss", "longestFreeze", "longest gap between frames", "s", digits=3),
    Figure("burst-loss", "relayVideoLoss", "video packets the relay dropped", "%", scale=100,
           digits=1),
    # (d) issue 15: uplink cap.
    Figure("uplink-cap", "routerLoss", "600k uplink: router-side loss, last 10 s", "%", "< 2 % "
           "every run", _under(0.02), scale=100, digits=1, everyRun=True),
    Figure("uplink-cap", "routerBitrate", "router-received bitrate (all layers)", "kbit/s",
           scale=0.001, digits=0),
    Figure("uplink-cap", "deliveredVsCap", "delivered through the cap / cap", "", "<= 1",
           _atMost(1.0), digits=2),
    Figure("uplink-cap", "retransmissionShare", "retransmitted / media bytes sent", "%", "< 10 %",
           _under(0.10), scale=100, digits=0),
    Figure("uplink-cap", "fittingLayersMinFps", "fps of the layers that fit (lowest)", "fps",
           ">= 25", _atLeast(25), digits=1),
    Figure("uplink-cap", "encodedFpsMin", "encoder fps, lowest active layer (CPU check)", "fps",
           digits=1),
    # (e) issue 15: cap drop.
    Figure("cap-drop", "lossUnder2After", "3M -> 600k: loss under 2 % (for good) after", "s",
           "<= 3 s", _atMost(3), digits=1),
    Figure("cap-drop", "cappedLoss", "median loss per second while capped", "%", scale=100,
           digits=1),
    Figure("cap-drop", "topLayerBackAfterRaise", "600k -> 3M: top layer back after", "s",
           "<= 10 s", _atMost(10), digits=1),
    # (f) issue 15: audio beside video.
    Figure("shared-cap", "audioPacketsLost", "1M shared: audio packets lost", "", "0",
           lambda v: v == 0, digits=0, everyRun=True),
    Figure("shared-cap", "audioLossShare", "audio loss", "%", scale=100, digits=1),
    Figure("shared-cap", "videoLossShare", "video loss", "%", scale=100, digits=1),
    # (g) issue 14: connection states.
    Figure("states-healthy", "audioStateChanges", "healthy link: audio-only state changes", "",
           "0", lambda v: v == 0, digits=0, everyRun=True),
    Figure("states-healthy", "videoStateChanges", "video-only state changes", "", "0",
           lambda v: v == 0, digits=0, everyRun=True),
    Figure("states-healthy", "dataStateChanges", "data-only state changes", "", "0",
           lambda v: v == 0, digits=0, everyRun=True),
    Figure("states-outage", "disconnectedAfter", "40 s outage: 'disconnected' after", "s",
           "<= 6 s", _atMost(6), digits=1),
    Figure("states-outage", "failedAfter", "'failed' after", "s", "<= 35 s", _atMost(35),
           digits=1),
    Figure("states-outage", "changesAfterFailed", "state changes after 'failed'", "", "0",
           lambda v: v == 0, digits=0),
    Figure("states-outage", "mediaBackAfterReturn", "media at the router after the return", "s",
           "<= 3 s", _atMost(3), digits=1),
    # The relay itself.
    Figure("relay-overhead", "relayCpuPerSecond", "relay CPU (its own process)", "s/s",
           digits=3),
    Figure("relay-overhead", "packetsPerSecond", "packets relayed per second (both ways)",
           digits=0),
    Figure("relay-overhead", "latenessP99Ms", "packets sent late by (p99)", "ms", digits=1),
    Figure("relay-overhead", "addedRttMedianMs", "round trip the relay adds (median)", "ms",
           digits=2),
    Figure("relay-overhead", "addedRttP95Ms", "round trip the relay adds (p95)", "ms", digits=2),
    Figure("relay-overhead", "kernelDropped", "datagrams the kernel dropped (relay too slow)",
           digits=0),
]  # fmt: skip

SCENARIO_ORDER = list(dict.fromkeys(f.scenario for f in FIGURES))
QUICK_RUNS = 2


class NetworkRunner(Runner):
    """bench's Runner (a process per run, its log, its RESULT line), on our network worker."""

    def command(self, client: str, scenario: str, options: list[str]) -> list[str]:
        url = self.sfu.url_for(f"net-{uuid.uuid4().hex[:8]}", "driver")
        return [str(PYTHONS["ours"]), str(WORKER), scenario, "--url", url, *options]


def fmt(value: Any, figure: Figure) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool | str):
        return str(value)
    scaled = value * figure.scale
    return f"{scaled:.{figure.digits}f}"


def table(results: dict[str, list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]]:
    lines = [
        "| scenario | figure | runs | median | target | met |",
        "| --- | --- | --- | ---: | --- | --- |",
    ]
    rows = []
    for figure in FIGURES:
        runs = results.get(figure.scenario)
        if not runs:
            continue
        values = [r.get("metrics", {}).get(figure.key) if "error" not in r else None for r in runs]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        # The median run; a run without a value (it never happened: no switch, no recovery)
        # sorts last, as the worst. Text values ("never left") do not count.
        counted = [v for v in values if not isinstance(v, str)]
        middle: Any = statistics.median(numbers) if numbers else None
        if None in counted:
            ordered = sorted(counted, key=lambda v: (v is None, v if v is not None else 0))
            middle = ordered[(len(ordered) - 1) // 2]
        if figure.meets is None:
            met = "-"
        elif values and not counted:
            met = "n/a"  # e.g. "never left": nothing to come back from
        elif figure.everyRun:
            met = "yes" if all(figure.meets(v) for v in values) else "NO"
        else:
            met = "yes" if figure.meets(middle) else "NO"
        unit = f" ({figure.unit})" if figure.unit else ""
        shown = ", ".join(
            "err" if "error" in r else fmt(v, figure) for r, v in zip(runs, values, strict=True)
        )
        lines.append(
            f"| {figure.scenario} | {figure.label}{unit} | {shown} | {fmt(middle, figure)} "
            f"| {figure.target} | {met} |"
        )
        rows.append(
            {"scenario": figure.scenario, "key": figure.key, "values": values, "median": middle,
             "target": figure.target, "met": met}
        )  # fmt: skip
    return "\n".join(lines), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario (default 5)")
    parser.add_argument("--quick", action="store_true", help="short runs (2 unless --runs)")
    parser.add_argument(
        "--only", default="", help="comma-separated scenarios: " + ", ".join(SCENARIO_ORDER)
    )
    parser.add_argument(
        "--healthy-seconds", type=float, default=None,
        help="states-healthy: seconds on the healthy link (default 45; the issue's 10 min: 600)",
    )  # fmt: skip
    parser.add_argument("--out", default=str(OUT / "network.json"))
    args = parser.parse_args()
    runs = args.runs or (QUICK_RUNS if args.quick else 5)
    chosen = [s for s in args.only.split(",") if s] or SCENARIO_ORDER
    unknown = [s for s in chosen if s not in SCENARIO_ORDER]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if not PYTHONS["ours"].exists():
        print(f"bench: {PYTHONS['ours']} is missing: run bench/run --network", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    logDir = OUT / "network-logs"
    shutil.rmtree(logDir, ignore_errors=True)
    logDir.mkdir()
    info = machine()
    started = time.monotonic()
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in chosen}
    options = ["--quick"] if args.quick else []
    if args.healthy_seconds:
        options += ["--healthy-seconds", str(args.healthy_seconds)]
    with LocalSfu() as sfu:
        runner = NetworkRunner(sfu, logDir)
        # Runs interleaved (1 of each scenario, then 2...): a busy spell of the shared
        # machine then spreads over the scenarios instead of spoiling one.
        for index in range(runs):
            print(f"run {index + 1} of {runs}", file=sys.stderr)
            for scenario in chosen:
                result = runner.run(
                    "ours", scenario, [*options, "--seed", str(index + 1)],
                    label=f"{scenario}-{index + 1}",
                    timeout=max(240, (args.healthy_seconds or 0) + 120),
                )  # fmt: skip
                results[scenario].append(result)
    text, rows = table(results)
    # The relay's priority decides whether CPU contention can delay it (netem/process.py).
    scheduling = sorted({str(r.get("relayScheduling")) for rs in results.values() for r in rs})
    loads = [r["loadAverage1m"] for rs in results.values() for r in rs if "loadAverage1m" in r]
    report = {
        "mode": "quick" if args.quick else "full",
        "runs": runs,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "durationSeconds": round(time.monotonic() - started),
        "machine": {**info, "loadAverageAtEnd": [round(v, 2) for v in os.getloadavg()]},
        "relayScheduling": scheduling,
        "loadAverage1mPerRun": {"min": min(loads, default=None), "max": max(loads, default=None)},
        "table": rows,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    print()
    print(
        f"network suite — {report['mode']}, {runs} run(s) per scenario, "
        f"{info['nproc']} x {info['cpuModel']}, commit {info['commit']}"
        f"{' (src modified)' if info['srcModified'] else ''}, {report['durationSeconds']} s"
    )
    print(
        f"relay scheduling: {', '.join(scheduling)}; load average (1 min) at the end of the runs: "
        f"{min(loads, default=0):.2f}-{max(loads, default=0):.2f}"
    )
    print(text)
    print(f"\nwritten: {args.out}, logs in {logDir}")
    failed = [
        f"{s} #{i + 1}" for s, rs in results.items() for i, r in enumerate(rs) if "error" in r
    ]
    if failed:
        print(f"bench: failed runs: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
