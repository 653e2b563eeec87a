"""A long call (10 minutes by default) against the local SFU: does the transport keep its
media and keep sending ICE consent checks the whole time, through an ICE restart halfway?

mediasoup 3.13+ closes a transport after 30 s without a consent check (the bundled 3.8.4 does
not check), so the run counts the binding requests that reach the router through a counting
UDP relay in front of its candidate (tests/support/udp_proxy.py), and samples the router's
producer stats every 10 s. Prints a summary and writes bench/out/long_call.json.

    .venv/bin/python bench/long_call.py [--minutes 10] [--restart-at 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack  # noqa: E402
from mediasoup_client.signaling.local_sfu import LocalSfu  # noqa: E402
from tests.integration.connectivity import openSender  # noqa: E402
from tests.support.udp_proxy import UdpRelay, longestGap  # noqa: E402

SAMPLE_SECONDS = 10.0


async def call(sfu: LocalSfu, minutes: float, restartAt: float) -> dict[str, Any]:
    relay = await UdpRelay().start()

    def throughRelay(candidates: list[Any]) -> list[Any]:
        [udp] = [c for c in candidates if c["protocol"] == "udp"]
        relay.router = (udp["ip"], udp["port"])
        return [{**udp, "ip": relay.address[0], "port": relay.address[1]}]

    sender = await openSender(sfu, rewrite=throughRelay)
    samples: list[dict[str, Any]] = []
    restartedAt: float | None = None
    try:
        audio = await sender.transport.produce(track=ToneAudioTrack(440))
        video = await sender.transport.produce(track=PatternVideoTrack(320, 240, 15))
        started = time.monotonic()
        end = started + minutes * 60
        previous = {"audio": 0, "video": 0}
        nextSample = started + SAMPLE_SECONDS
        while time.monotonic() < end:
            await asyncio.sleep(max(0.0, nextSample - time.monotonic()))
            nextSample += SAMPLE_SECONDS
            now = time.monotonic()
            if restartedAt is None and now - started >= restartAt * minutes * 60:
                parameters = await sender.signaling.request(
                    "restartIce", {"transportId": sender.info["id"]}
                )
                await sender.transport.restartIce(iceParameters=parameters)
                restartedAt = now
            packets = {
                "audio": await sender.routerPackets(audio.id),
                "video": await sender.routerPackets(video.id),
            }
            sample = {
                "t": round(now - started, 1),
                "audioPackets": packets["audio"] - previous["audio"],
                "videoPackets": packets["video"] - previous["video"],
                "consentRequests": len(relay.counts.requests),
                "state": sender.transport.connectionState,
            }
            previous = packets
            samples.append(sample)
            print(json.dumps(sample), file=sys.stderr, flush=True)
        ended = time.monotonic()
        counts = relay.counts
        window = [t for t in counts.requests if t >= started]
        afterRestart = [t for t in counts.requests if restartedAt and t > restartedAt]
        return {
            "minutes": minutes,
            "bindingRequests": len(window),
            "bindingRequestsPerMinute": len(window) / minutes,
            "longestGapSeconds": round(longestGap(counts.requests, started, ended), 2),
            "answered": len([t for t in counts.successes if t >= started]),
            "errorAnswers": len(counts.errors),
            "restartAtSeconds": round(restartedAt - started, 1) if restartedAt else None,
            "requestsAfterRestart": len(afterRestart),
            "longestGapAfterRestart": (
                round(longestGap(counts.requests, restartedAt, ended), 2) if restartedAt else None
            ),
            "samplesWithoutAudio": sum(1 for s in samples if s["audioPackets"] == 0),
            "samplesWithoutVideo": sum(1 for s in samples if s["videoPackets"] == 0),
            "minAudioPacketsPerSample": min(s["audioPackets"] for s in samples),
            "states": sender.states,
            "finalState": sender.transport.connectionState,
            "samples": samples,
        }
    finally:
        await sender.close()
        relay.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--restart-at", type=float, default=0.5, help="fraction of the run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with LocalSfu() as sfu:
        result = asyncio.run(call(sfu, args.minutes, args.restart_at))
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    (out / "long_call.json").write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    healthy = (
        result["finalState"] == "connected"
        and result["longestGapSeconds"] < 30
        and result["samplesWithoutAudio"] == 0
        and result["samplesWithoutVideo"] == 0
        and result["errorAnswers"] == 0
    )
    print("long call:", "kept its media and consent" if healthy else "FAILED", file=sys.stderr)
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
