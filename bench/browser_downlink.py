"""Issue 14's capped downlink with our consumer and with a real Chromium consumer, side by side.

    .venv/bin/python bench/browser_downlink.py [--runs 3] [--seconds 18] [--sides ours,chromium]

Per run: a new room and a new relay (``RelayProcess``), our 3-layer 640x480 L1T1 producer
(``network_worker.publish``, uplink clean), the relay's downlink capped at 400 kbit/s (queue
100 ms) before the subscriber joins, then the subscriber's receive transport through it: ours
(``network_worker.subscribe``) or Chromium's (``BrowserPeer.join(transportInfoHook=...)``, the
same relay rewrite). Every 0.5 s: the router's consumer stats and dump (score, layers,
fractionLost), its transport stats (availableOutgoingBitrate), the relay's counters (drops
per SSRC, RTCP datagrams from the receiver by type) and the receiver's own inbound-rtp.
Writes ``bench/out/browser-downlink.json`` and prints one line per run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from network_worker import FrameLog, Run, publish, subscribe  # noqa: E402

from mediasoup_client.netem import RelayProcess, transportInfoHook  # noqa: E402
from mediasoup_client.signaling.local_sfu import LocalSfu  # noqa: E402
from tests.browser.peer import BrowserPeer, Chromium  # noqa: E402

CAP = "down:rate=400k,queue=100ms"
INTERVAL = 0.5


def outbound(stats: list[dict[str, Any]]) -> dict[str, Any]:
    return next((s for s in stats if s.get("type") == "outbound-rtp"), {})


async def measure(
    side: str, seed: int, seconds: float, sfu: LocalSfu, chromium: Chromium | None
) -> dict[str, Any]:
    roomId = f"dl-{side}-{seed}-{uuid.uuid4().hex[:4]}"
    run = Run(url=sfu.url_for(roomId), seed=seed, quick=False)
    async with RelayProcess(seed=seed) as relay:
        run.relay = relay
        try:
            return await _measure(side, run, relay, seconds, sfu, chromium, roomId)
        finally:
            await run.close()


async def _measure(
    side: str,
    run: Run,
    relay: RelayProcess,
    seconds: float,
    sfu: LocalSfu,
    chromium: Chromium | None,
    roomId: str,
) -> dict[str, Any]:
    publisher, producer, _, _ = await publish(run, width=640, height=480, scalabilityMode="L1T1")
    await relay.configure(CAP)
    layers: list[tuple[float, Any]] = []  # (monotonic, spatial layer)
    peer: BrowserPeer | None = None
    frames: FrameLog | None = None
    if side == "ours":
        subscriber, consumer, notes = await subscribe(run, producer)
        t0 = time.monotonic()
        frames = FrameLog(consumer)
        consumerId, request = consumer.id, subscriber.request
        transportId = subscriber.recvTransport.id

        async def inbound() -> dict[str, Any]:
            entries = [s for s in (await consumer.getStats()).values()]
            return next((s for s in entries if s["type"] == "inbound-rtp"), {})
    else:
        assert chromium is not None
        peer = await BrowserPeer.join(
            chromium,
            sfu.port,
            roomId,
            produce=False,
            transportInfoHook=transportInfoHook(recv=relay),
        )
        info = await peer.consumerOf(producer.id)
        t0 = time.monotonic()
        consumerId, request = info["id"], peer.request
        transportId = str((await peer.transportIds())["recv"])
        before = time.monotonic()
        pageNow = await peer.now()
        offset = (before + time.monotonic()) / 2 - pageNow / 1000  # monotonic - page seconds
        browserPeer = peer

        async def inbound() -> dict[str, Any]:
            entries = await browserPeer.stats(consumerId)
            return next((s for s in entries if s.get("type") == "inbound-rtp"), {})

    samples: list[dict[str, Any]] = []
    deadline = t0
    while time.monotonic() < t0 + seconds:
        stats = await request("getConsumerStats", {"consumerId": consumerId})
        dump = await request("getConsumerInfo", {"consumerId": consumerId})
        transport = await request("getTransportStats", {"transportId": transportId})
        relayStats = await relay.stats()
        out = outbound(stats)
        samples.append(
            {
                "t": round(time.monotonic() - t0, 2),
                "score": out.get("score"),
                "fractionLost": out.get("fractionLost"),
                "routerPacketsLost": out.get("packetsLost"),
                "ssrc": out.get("ssrc"),
                "rtxSsrc": out.get("rtxSsrc"),
                "currentSpatialLayer": dump.get("currentSpatialLayer"),
                "targetSpatialLayer": dump.get("targetSpatialLayer"),
                "available": (transport[0] if transport else {}).get("availableOutgoingBitrate"),
                "sendBitrate": (transport[0] if transport else {}).get("sendBitrate"),
                "down": {
                    k: v
                    for k, v in relayStats["down"]["tags"].items()
                    if k in (str(out.get("ssrc")), str(out.get("rtxSsrc")), "1234")
                },
                "upRtcp": relayStats["up"]["rtcpTypes"],
                "inbound": {
                    k: v
                    for k, v in (await inbound()).items()
                    if k
                    in (
                        "packetsLost",
                        "packetsReceived",
                        "framesDecoded",
                        "frameWidth",
                        "nackCount",
                    )
                },
            }
        )
        deadline += INTERVAL
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    if peer is not None:
        for note in await peer.notifications():
            if note["method"] == "consumerLayersChanged":
                spatial = (note["data"] or {}).get("spatialLayer")
                layers.append((note["at"] / 1000 + offset, spatial))
        await peer.close()
    else:
        layers = [(t, s) for t, s, _ in notes]
    if frames is not None:
        frames.stop()
    await publisher.close()
    return summarize(side, t0, seconds, samples, [(round(t - t0, 2), s) for t, s in layers])


def summarize(
    side: str, t0: float, seconds: float, samples: list[dict[str, Any]], layers: list[Any]
) -> dict[str, Any]:
    firstZero = next((t for t, s in layers if s == 0), None)
    excursions: list[list[float | None]] = []
    if firstZero is not None:
        for t, s in layers:
            if t <= firstZero:
                continue
            if s is not None and s > 0 and (not excursions or excursions[-1][1] is not None):
                excursions.append([t, None])
            elif s == 0 and excursions and excursions[-1][1] is None:
                excursions[-1][1] = t
    at5 = min(samples, key=lambda x: abs(x["t"] - 5))
    last = samples[-1]

    def dropped(sample: dict[str, Any]) -> tuple[int, int]:
        ssrcs = (str(last["ssrc"]), str(last["rtxSsrc"]))
        tags = [sample["down"].get(k, {}) for k in ssrcs]
        return sum(t.get("packetsIn", 0) for t in tags), sum(
            t.get("packetsDropped", 0) for t in tags
        )

    def mediaDropped(sample: dict[str, Any]) -> tuple[int, int]:
        tag = sample["down"].get(str(last["ssrc"]), {})
        return tag.get("packetsIn", 0), tag.get("packetsDropped", 0)

    (in5, drop5), (inEnd, dropEnd) = dropped(at5), dropped(last)
    (mIn5, mDrop5), (mInEnd, mDropEnd) = mediaDropped(at5), mediaDropped(last)
    span = last["t"] - at5["t"]
    rtcpRates = {
        kind: round((n["packets"] - at5["upRtcp"].get(kind, {}).get("packets", 0)) / span, 1)
        for kind, n in last["upRtcp"].items()
    }
    lossyRr = sum(1 for s in samples if (s["fractionLost"] or 0) > 0)
    avail = [s["available"] for s in samples if s["t"] >= 5 and s["available"] is not None]
    decoded = last["inbound"].get("framesDecoded", 0) - at5["inbound"].get("framesDecoded", 0)
    return {
        "side": side,
        "firstLayer0": firstZero,
        "excursions": excursions,
        "lossAfter5s": round(100 * (dropEnd - drop5) / max(1, inEnd - in5), 2),
        # Media SSRC only: the RTX retransmission storm a NACK burst causes is left out.
        "mediaLossAfter5s": round(100 * (mDropEnd - mDrop5) / max(1, mInEnd - mIn5), 2),
        "availableMax5s": max(avail) if avail else None,
        "availableEnd": last["available"],
        "rtcpPerSecondAfter5s": rtcpRates,
        "samplesWithFractionLost": lossyRr,
        "fpsAfter5s": round(decoded / span, 1),
        "inboundPacketsLostEnd": last["inbound"].get("packetsLost"),
        "layers": layers,
        "samples": samples,
    }


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    sides = args.sides.split(",")
    results: list[dict[str, Any]] = []
    with LocalSfu() as sfu, Chromium() as chromium:
        for index in range(args.runs):
            for side in sides:
                result = await measure(side, index + 1, args.seconds, sfu, chromium)
                result["run"] = index + 1
                results.append(result)
                brief = {k: v for k, v in result.items() if k not in ("samples",)}
                print(json.dumps(brief), flush=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=18.0)
    parser.add_argument("--sides", default="ours,chromium")
    parser.add_argument("--out", default=str(BENCH / "out" / "browser-downlink.json"))
    arguments = parser.parse_args()
    outcome = asyncio.run(main(arguments))
    Path(arguments.out).parent.mkdir(parents=True, exist_ok=True)
    Path(arguments.out).write_text(json.dumps(outcome, indent=1, default=str))
