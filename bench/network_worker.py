"""One network scenario (issues 14 and 15) in its own process; prints one ``RESULT {json}`` line.

    python bench/network_worker.py SCENARIO --url WS_URL_OF_A_ROOM [--seed N] [--quick]
        [--healthy-seconds S]

Our client only (``.venv``), against the local SFU, with the impairment relay
(``mediasoup_client.netem.RelayProcess``, a process of its own) between the impaired peer and
the router. ``network.py`` starts it once per run; it can be run by hand against a running
local SFU. Every figure is measured at the far end of what it describes: the router's own
counters (``getProducerStats``, ``getConsumerStats``, ``getTransportStats``), the relay's
counters (what the network dropped, per SSRC: SRTP headers are in the clear), the plaintext
RTP our receive transport got (a tap on aiortc's ``RTCDtlsTransport._handle_rtp_data``, for
lost-and-repaired sequence numbers), and the frames the consumer's track delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av

from mediasoup_client import Consumer, Producer
from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack, readFrameNumber
from mediasoup_client.netem import RelayProcess, transportInfoHook
from mediasoup_client.signaling.room_client import RoomClient

log = logging.getLogger("bench.network")

# 3 layers of 640x480 (issue 14) and of 1280x720 (issue 15): ~2 Mbit/s in all.
SIMULCAST: list[dict[str, Any]] = [
    {"maxBitrate": 150_000, "scaleResolutionDownBy": 4.0},
    {"maxBitrate": 500_000, "scaleResolutionDownBy": 2.0},
    {"maxBitrate": 1_500_000},
]


# ---------------------------------------------------------------- measuring tools


class TimedPattern(PatternVideoTrack):
    """The test pattern, remembering when each numbered frame was generated."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height, 30)
        self.generatedAt: dict[int, float] = {}

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        self.generatedAt[self.framesGenerated - 1] = time.monotonic()
        return frame


@dataclass
class Frame:
    time: float  # monotonic, when the track delivered it
    width: int
    height: int
    number: int | None  # the pattern's frame number (when asked for)


class FrameLog:
    """Reads a consumer's track continuously (nothing queues) and records every frame."""

    def __init__(self, consumer: Consumer, *, numbers: bool = False) -> None:
        self.frames: list[Frame] = []
        self._numbers = numbers
        self._task = asyncio.ensure_future(self._read(consumer))

    async def _read(self, consumer: Consumer) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await consumer.track.recv()  # type: ignore[attr-defined]
                if not isinstance(frame, av.VideoFrame):
                    continue
                number = readFrameNumber(frame) if self._numbers else None
                self.frames.append(Frame(time.monotonic(), frame.width, frame.height, number))

    def between(self, start: float, end: float) -> list[Frame]:
        return [f for f in self.frames if start <= f.time < end]

    def stop(self) -> None:
        self._task.cancel()


def fps(frames: list[Frame], seconds: float) -> float:
    return len(frames) / seconds if seconds > 0 else 0.0


def longestGap(frames: list[Frame], start: float, end: float) -> float:
    """The longest time without a frame in [start, end] (edges included)."""
    times = [start] + [f.time for f in frames if start <= f.time <= end] + [end]
    return max(b - a for a, b in itertools.pairwise(times))


class RtpTap:
    """Plaintext RTP as our receive transport got it: per media sequence number, whether it
    came directly or only through RTX (the original sequence number in the RTX payload)."""

    def __init__(self) -> None:
        self.media: dict[int, dict[int, float]] = {}  # ssrc -> extended seq -> first arrival
        self.repaired: dict[int, dict[int, float]] = {}  # rtx ssrc -> extended osn -> arrival
        self.rtxPackets: dict[int, int] = {}
        self._highest: dict[int, int] = {}

    def install(self) -> bool:
        try:
            from aiortc.rtcdtlstransport import RTCDtlsTransport

            original = RTCDtlsTransport._handle_rtp_data
        except (ImportError, AttributeError):
            return False
        tap = self

        async def tapped(transport: Any, data: bytes, arrival_time_ms: int) -> None:
            tap.packet(data)
            await original(transport, data, arrival_time_ms=arrival_time_ms)

        RTCDtlsTransport._handle_rtp_data = tapped  # type: ignore[method-assign,assignment]
        return True

    def watch(self, mediaSsrc: int, rtxSsrc: int | None) -> None:
        self.media.setdefault(mediaSsrc, {})
        if rtxSsrc is not None:
            self.repaired.setdefault(rtxSsrc, {})
            self._rtxOf = getattr(self, "_rtxOf", {})
            self._rtxOf[rtxSsrc] = mediaSsrc

    def _extend(self, ssrc: int, seq: int) -> int:
        highest = self._highest.get(ssrc)
        if highest is None:
            self._highest[ssrc] = seq
            return seq
        # The extended number nearest to the highest seen (16-bit wrap).
        candidate = (highest & ~0xFFFF) | seq
        if candidate - highest > 0x8000:
            candidate -= 0x10000
        elif highest - candidate > 0x8000:
            candidate += 0x10000
        if candidate > highest:
            self._highest[ssrc] = candidate
        return candidate

    def packet(self, data: bytes) -> None:
        if len(data) < 12:
            return
        ssrc = int.from_bytes(data[8:12], "big")
        now = time.monotonic()
        if ssrc in self.media:
            seq = self._extend(ssrc, int.from_bytes(data[2:4], "big"))
            self.media[ssrc].setdefault(seq, now)
        elif ssrc in self.repaired:
            offset = 12 + 4 * (data[0] & 0x0F)
            if data[0] & 0x10 and len(data) >= offset + 4:
                offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
            if len(data) < offset + 2:
                return  # padding-only RTX (probing)
            self.rtxPackets[ssrc] = self.rtxPackets.get(ssrc, 0) + 1
            media = self._rtxOf[ssrc]
            osn = self._extend(media, int.from_bytes(data[offset : offset + 2], "big"))
            self.repaired[ssrc].setdefault(osn, now)

    def repairs(self, mediaSsrc: int, rtxSsrc: int, start: float, end: float) -> dict[str, Any]:
        """Sequence numbers between the first and last that came directly in [start, end):
        those that never came directly (lost), and of those the ones RTX brought."""
        direct = self.media.get(mediaSsrc, {})
        inWindow = [seq for seq, at in direct.items() if start <= at < end]
        if not inWindow:
            return {"expected": 0, "lost": 0, "repaired": 0, "repairedShare": None}
        first, last = min(inWindow), max(inWindow)
        lost = [seq for seq in range(first, last + 1) if seq not in direct]
        viaRtx = self.repaired.get(rtxSsrc, {})
        repaired = [seq for seq in lost if seq in viaRtx]
        delays = sorted(viaRtx[seq] for seq in repaired)
        return {
            "expected": last - first + 1,
            "lost": len(lost),
            "repaired": len(repaired),
            "repairedShare": len(repaired) / len(lost) if lost else None,
            "rtxPackets": self.rtxPackets.get(rtxSsrc, 0),
            "lastRepairAt": delays[-1] if delays else None,
        }


class Poller:
    """Calls named async probes every ``interval`` seconds, keeping (time, values) samples."""

    def __init__(
        self, probes: dict[str, Callable[[], Awaitable[Any]]], interval: float = 1.0
    ) -> None:
        self.samples: list[tuple[float, dict[str, Any]]] = []
        self._probes = probes
        self._interval = interval
        self._task = asyncio.ensure_future(self._run())

    async def sample(self) -> tuple[float, dict[str, Any]]:
        values: dict[str, Any] = {}
        for name, probe in self._probes.items():
            try:
                values[name] = await probe()
            except Exception as error:  # a probe of a closed object: keep the others
                values[name] = {"error": f"{type(error).__name__}: {error}"}
        entry = (time.monotonic(), values)
        self.samples.append(entry)
        return entry

    async def _run(self) -> None:
        deadline = time.monotonic()
        while True:
            await self.sample()
            deadline += self._interval
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    def at(self, when: float) -> dict[str, Any]:
        """The sample nearest to ``when``."""
        return min(self.samples, key=lambda s: abs(s[0] - when))[1]

    def stop(self) -> None:
        self._task.cancel()


def tagDelta(before: dict[str, Any], after: dict[str, Any], tag: int | str, key: str) -> int:
    """The change of a relay per-SSRC counter between two relay snapshots of one side."""
    a = after["tags"].get(str(tag), {}).get(key, 0)
    b = before["tags"].get(str(tag), {}).get(key, 0)
    return int(a - b)


def lossShare(before: dict[str, Any], after: dict[str, Any], tags: list[int]) -> float | None:
    offered = sum(tagDelta(before, after, t, "packetsIn") for t in tags)
    dropped = sum(tagDelta(before, after, t, "packetsDropped") for t in tags)
    return dropped / offered if offered else None


def byRid(stats: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The router's inbound streams of a producer, by encoding index (from rid r0/r1/r2)."""
    streams: dict[int, dict[str, Any]] = {}
    for index, entry in enumerate(sorted(stats, key=lambda s: str(s.get("rid") or s["ssrc"]))):
        streams[index] = entry
    return streams


def phaseSpan(phases: list[dict[str, Any]], starts: str) -> tuple[float, float | None]:
    """(start, end) of the last relay phase whose config starts with ``starts``."""
    for index in range(len(phases) - 1, -1, -1):
        if phases[index]["config"].startswith(starts):
            end = phases[index + 1]["time"] if index + 1 < len(phases) else None
            return phases[index]["time"], end
    raise RuntimeError(f"no relay phase {starts!r} in {phases}")


def routerLoss(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float | int | None]:
    """Over an interval, for one router inbound stream: packets lost before repair (the
    router's packetsLost counts holes in what came directly), repaired, and the loss share."""
    lost = after["packetsLost"] - before["packetsLost"]
    repaired = after["packetsRepaired"] - before["packetsRepaired"]
    direct = (after["packetCount"] - after["packetsRepaired"]) - (
        before["packetCount"] - before["packetsRepaired"]
    )
    return {
        "lost": lost,
        "repaired": repaired,
        "received": direct,
        "loss": lost / (lost + direct) if lost + direct > 0 else None,
    }


# ---------------------------------------------------------------- one run


@dataclass
class Run:
    url: str  # a room URL (its peerId is replaced per peer)
    seed: int
    quick: bool
    healthySeconds: float | None = None  # states-healthy's length (issue 14 asks for 600)
    relay: RelayProcess = field(init=False)
    clients: list[RoomClient] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def since(self, when: float | None) -> float | None:
        return None if when is None else round(when - self.t0, 3)

    def peerUrl(self, peerId: str) -> str:
        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        query["peerId"] = f"{peerId}-{self.seed}"
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def join(
        self, peerId: str, *, send: bool = False, recv: bool = False, **options: Any
    ) -> RoomClient:
        hook = transportInfoHook(
            send=self.relay if send else None, recv=self.relay if recv else None
        )
        client = await RoomClient.join(self.peerUrl(peerId), transportInfoHook=hook, **options)
        self.clients.append(client)
        return client

    async def sleepUntil(self, seconds: float) -> None:
        """Until ``seconds`` after t0."""
        await asyncio.sleep(max(0.0, self.t0 + seconds - time.monotonic()))

    async def close(self) -> None:
        for client in reversed(self.clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 5)


async def waitFor(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic()


async def publish(
    run: Run, *, width: int, height: int, send: bool = False, audio: bool = False,
    scalabilityMode: str | None = None,
) -> tuple[RoomClient, Producer, TimedPattern, Producer | None]:
    """A 3-layer video producer (and audio), its uplink through the relay if ``send``, each
    layer in ``scalabilityMode`` if given (else the default, L1T3); returns once the router
    scores all three layers (a consumer can switch to them)."""
    client = await run.join("publisher", send=send, consume=False)
    source = TimedPattern(width, height)
    encodings = [dict(e) for e in SIMULCAST]
    if scalabilityMode:
        for encoding in encodings:
            encoding["scalabilityMode"] = scalabilityMode
    producer = await client.produce(source, encodings=encodings)
    audioProducer = await client.produce(ToneAudioTrack()) if audio else None

    async def scored() -> bool:
        streams = await client.routerStats(producer)
        return len(streams) == 3 and all(s["score"] >= 7 for s in streams)

    await waitFor(scored, 15, "three scored layers at the router")
    return client, producer, source, audioProducer


async def subscribe(run: Run, producer: Producer) -> tuple[RoomClient, Consumer, list[Any]]:
    """A subscriber whose receive transport goes through the relay; t0 = its consumer.
    Also returns the consumer's layer changes as the router notified them."""
    layers: list[Any] = []
    arrived = asyncio.Event()

    def onNotification(method: str, data: dict[str, Any]) -> None:
        if method == "consumerLayersChanged":
            layers.append((time.monotonic(), data.get("spatialLayer"), data.get("temporalLayer")))

    client = await run.join("subscriber", recv=True, produce=False)
    client.on("notification", onNotification)
    client.on("newconsumer", lambda consumer: arrived.set())

    async def present() -> bool:
        return any(c.producerId == producer.id for c in client.consumers.values())

    await waitFor(present, 10, "the consumer")
    consumer = next(c for c in client.consumers.values() if c.producerId == producer.id)
    return client, consumer, layers


def consumerSsrcs(consumer: Consumer) -> tuple[int, int]:
    [encoding] = consumer.rtpParameters["encodings"]
    return int(encoding["ssrc"]), int(encoding["rtx"]["ssrc"])


def producerSsrcs(producer: Producer) -> list[tuple[int, int | None]]:
    return [
        (int(e["ssrc"]), int(e["rtx"]["ssrc"]) if e.get("rtx") else None)
        for e in producer.rtpParameters["encodings"]
    ]


def outboundOf(stats: list[dict[str, Any]]) -> dict[str, Any]:
    return next((s for s in stats if s.get("type") == "outbound-rtp"), {})


def layerSizes(width: int, height: int) -> dict[tuple[int, int], int]:
    return {(width // 4, height // 4): 0, (width // 2, height // 2): 1, (width, height): 2}


# ---------------------------------------------------------------- scenarios


async def downlinkCap(run: Run) -> dict[str, Any]:
    """(a) The consumer's downlink capped at 400 kbit/s under a 3-layer 640x480 producer,
    then raised to 3 Mbit/s."""
    capped, raised = (10.0, 10.0) if run.quick else (20.0, 15.0)
    cap = 400_000
    # One temporal layer per encoding, as in the integration test: with L1T3 mediasoup
    # prefers layer 1 at its lowest temporal layer (7.5 fps of 320x240, measured) to layer 0
    # at 30 fps, and the question here is whether the router fits the spatial layer.
    publisher, producer, _, _ = await publish(run, width=640, height=480, scalabilityMode="L1T1")
    layerRates = {i: s["bitrate"] for i, s in byRid(await publisher.routerStats(producer)).items()}
    await run.relay.configure(f"down:rate={cap // 1000}k,queue=100ms")
    subscriber, consumer, layers = await subscribe(run, producer)
    run.t0 = time.monotonic()
    frames = FrameLog(consumer)
    media, rtx = consumerSsrcs(consumer)
    poller = Poller(
        {
            "relay": lambda: run.relay.stats(),
            "consumer": lambda: subscriber.consumerRouterStats(consumer),
            "transport": lambda: subscriber.transportRouterStats(subscriber.recvTransport),
            "producer": lambda: publisher.routerStats(producer),
        }
    )
    await run.sleepUntil(5)
    at5 = await poller.sample()
    await run.sleepUntil(capped)
    beforeRaise = await poller.sample()
    await run.relay.configure("down:rate=3M,queue=100ms")
    raisedAt = time.monotonic()
    await run.sleepUntil(capped + raised)
    end = await poller.sample()
    poller.stop()
    frames.stop()

    # Layers measured while capped (the producer's side is not capped).
    rates = {
        i: s.get("bitrate", 0) for i, s in byRid(beforeRaise[1]["producer"]).items()
    } or layerRates
    fitting = {i for i, rate in rates.items() if rate <= 0.85 * cap}
    sizes = layerSizes(640, 480)
    layerTimeline = [(run.since(t), s, tl) for t, s, tl in layers]

    def layerAt(when: float) -> int | None:
        current = None
        for t, spatial, _ in layers:
            if t <= when:
                current = spatial
        return current

    # The start of the last streak of fitting layers before the raise.
    fitAt: float | None = None
    for t, spatial, _ in layers:
        if t >= raisedAt:
            break
        fitAt = (t if fitAt is None else fitAt) if spatial in fitting else None
    if fitAt is not None:
        fitAt = max(fitAt, run.t0)
    window = frames.between(at5[0], raisedAt)
    windowSeconds = raisedAt - at5[0]
    fittingFrames = [f for f in window if sizes.get((f.width, f.height)) in fitting]
    relay5, relayRaise = at5[1]["relay"]["down"], beforeRaise[1]["relay"]["down"]
    out5, outRaise = outboundOf(at5[1]["consumer"]), outboundOf(beforeRaise[1]["consumer"])
    topSwitch = next((t for t, s, _ in layers if t >= raisedAt and s == 2), None)
    topFrame = next((f.time for f in frames.frames if f.time >= raisedAt and f.width == 640), None)
    everLeftTop = any(s != 2 for t, s, _ in layers if t < raisedAt)
    transportStats = beforeRaise[1]["transport"]
    available = transportStats[0].get("availableOutgoingBitrate") if transportStats else None
    return {
        "metrics": {
            "layerAt5s": layerAt(at5[0]),
            "fittingLayerAfter": run.since(fitAt),
            "lossAfter5s": lossShare(relay5, relayRaise, [media, rtx]),
            "fpsAfter5s": fps(window, windowSeconds),
            "fittingLayerFps": fps(fittingFrames, windowSeconds),
            # Not applicable when the router never left the top layer (today's behaviour).
            "topLayerBackAfterRaise": "never left"
            if not everLeftTop
            else (None if topSwitch is None else round(topSwitch - raisedAt, 3)),
            "topFrameAfterRaise": None if topFrame is None else round(topFrame - raisedAt, 3),
            "retransmissionsPerMediaPacket": _ratio(
                outRaise.get("packetsRetransmitted", 0) - out5.get("packetsRetransmitted", 0),
                tagDelta(relay5, relayRaise, media, "packetsIn"),
            ),
            "plisSent": outRaise.get("pliCount", 0) - out5.get("pliCount", 0),
            "routerAvailableOutgoingBitrate": available,
        },
        "cap": cap,
        "layerBitrates": rates,
        "fittingLayers": sorted(fitting),
        "everLeftTopLayer": everLeftTop,
        "layerTimeline": layerTimeline,
        "raisedAt": run.since(raisedAt),
        "framesPerSecondTimeline": _fpsSeries(frames, run.t0, capped + raised),
        "frameSizes": _sizeCounts(window),
        "relayDown": _relaySummary(end[1]["relay"]["down"]),
    }


async def outage(run: Run) -> dict[str, Any]:
    """(b) 3 s outages on the consumer's path (both directions): two per run, 4 s and 13 s
    after the consumer started (in trials the recovery depended on when an outage came:
    3 of 4 outages at 4 s froze for 1-3.4 s after the return, 5 of 5 at 6 s did not); the
    figures are the worse outage of the run."""
    after = 5.0 if run.quick else 6.0
    starts = [4.0, 4.0 + 3 + after]
    _, producer, source, _ = await publish(run, width=640, height=480)
    subscriber, consumer, _ = await subscribe(run, producer)
    run.t0 = time.monotonic()
    frames = FrameLog(consumer, numbers=True)
    outages = []
    for start in starts:
        await run.sleepUntil(start)
        outboundBefore = outboundOf(await subscriber.consumerRouterStats(consumer))
        await run.relay.configure("outage for 3s")
        await run.sleepUntil(start + 3 + after)
        outboundAfter = outboundOf(await subscriber.consumerRouterStats(consumer))
        stats = await run.relay.stats()
        began, end = phaseSpan(stats["down"]["phases"], "outage")
        assert end is not None
        ended = end
        first = next((f for f in frames.frames if f.time >= ended), None)
        # A fresh frame: one the source generated after the network came back.
        fresh = next(
            (
                f
                for f in frames.frames
                if f.time >= ended
                and f.number is not None
                and source.generatedAt.get(f.number, 0) >= ended
            ),
            None,
        )
        outages.append(
            {
                "outage": [run.since(began), run.since(ended)],
                "firstFrameAfterReturn": None if first is None else round(first.time - ended, 3),
                "firstFreshFrameAfterReturn": None
                if fresh is None
                else round(fresh.time - ended, 3),
                "longestGapAfterReturn": round(longestGap(frames.frames, ended, ended + after), 3),
                "fpsAfterReturn": fps(frames.between(ended + 1, ended + after), after - 1),
                "retransmitted": outboundAfter.get("packetsRetransmitted", 0)
                - outboundBefore.get("packetsRetransmitted", 0),
                "plisSent": outboundAfter.get("pliCount", 0) - outboundBefore.get("pliCount", 0),
            }
        )
    frames.stop()

    def worst(key: str, *, lowest: bool = False) -> Any:
        values = [o[key] for o in outages]
        if any(v is None for v in values):
            return None  # never happened: the worst
        return min(values) if lowest else max(values)

    return {
        "metrics": {
            "firstFrameAfterReturn": worst("firstFrameAfterReturn"),
            "firstFreshFrameAfterReturn": worst("firstFreshFrameAfterReturn"),
            "longestGapAfterReturn": worst("longestGapAfterReturn"),
            "fpsAfterReturn": worst("fpsAfterReturn", lowest=True),
            # Outages of this run after which the video froze for more than 500 ms.
            "freezesOver500ms": sum(1 for o in outages if o["longestGapAfterReturn"] > 0.5),
            "retransmitted": sum(o["retransmitted"] for o in outages),
            "plisSent": sum(o["plisSent"] for o in outages),
        },
        "outages": outages,
        "framesPerSecondTimeline": _fpsSeries(frames, run.t0, starts[-1] + 3 + after),
        "relayDown": _relaySummary(stats["down"]),
    }


async def _lossy(run: Run, spec: str) -> dict[str, Any]:
    """(c) Loss on the consumer's path at 40 ms RTT: lost video packets repaired, fps."""
    warmup, window = (3.0, 8.0) if run.quick else (3.0, 20.0)
    tap = RtpTap()
    tapped = tap.install()
    _, producer, _, _ = await publish(run, width=640, height=480)
    await run.relay.configure(spec)
    subscriber, consumer, _ = await subscribe(run, producer)
    run.t0 = time.monotonic()
    media, rtx = consumerSsrcs(consumer)
    tap.watch(media, rtx)
    frames = FrameLog(consumer)
    await run.sleepUntil(warmup)
    before = await run.relay.stats()
    start = time.monotonic()
    await run.sleepUntil(warmup + window)
    end = time.monotonic()
    after = await run.relay.stats()
    await asyncio.sleep(1.0)  # repairs of the window's last losses
    router = await subscriber.consumerRouterStats(consumer)
    frames.stop()
    repairs = tap.repairs(media, rtx, start, end) if tapped else {"repairedShare": None}
    inWindow = frames.between(start, end)
    outbound = outboundOf(router)
    return {
        "metrics": {
            "repairedShare": repairs["repairedShare"],
            "fps": fps(inWindow, end - start),
            "longestFreeze": round(longestGap(frames.frames, start, end), 3),
            "relayVideoLoss": lossShare(before["down"], after["down"], [media]),
            "routerRtt": outbound.get("roundTripTime"),
        },
        "spec": spec,
        "repairs": repairs,
        "tapInstalled": tapped,
        "relayDroppedMedia": tagDelta(before["down"], after["down"], media, "packetsDropped"),
        "frameSizes": _sizeCounts(inWindow),
        "relayDown": _relaySummary(after["down"]),
    }


async def randomLoss(run: Run) -> dict[str, Any]:
    return await _lossy(run, "down:loss=5%,delay=20ms;up:delay=20ms")


async def burstLoss(run: Run) -> dict[str, Any]:
    return await _lossy(run, "down:burst=2%,burstlen=3,delay=20ms;up:delay=20ms")


async def uplinkCap(run: Run) -> dict[str, Any]:
    """(d) The uplink capped at 600 kbit/s (queue 100 ms) under a 3-layer 720p producer."""
    total, last = (15.0, 6.0) if run.quick else (30.0, 10.0)
    cap = 600_000
    await run.relay.configure(f"up:rate={cap // 1000}k,queue=100ms")
    client = await run.join("publisher", send=True, consume=False)
    source = TimedPattern(1280, 720)
    producer = await client.produce(source, encodings=[dict(e) for e in SIMULCAST])
    run.t0 = time.monotonic()
    await run.sleepUntil(total - last)
    before = await _uplinkSample(run, client, producer)
    await run.sleepUntil(total)
    after = await _uplinkSample(run, client, producer)
    return _uplinkFigures(producer, before, after, cap)


async def _uplinkSample(run: Run, client: RoomClient, producer: Producer) -> dict[str, Any]:
    return {
        "time": time.monotonic(),
        "relay": await run.relay.stats(),
        "router": byRid(await client.routerStats(producer)),
        "local": await producer.getStats(),
        "transport": await client.sendTransport.getStats(),
    }


def _uplinkFigures(
    producer: Producer, before: dict[str, Any], after: dict[str, Any], cap: int
) -> dict[str, Any]:
    seconds = after["time"] - before["time"]
    up0, up1 = before["relay"]["up"], after["relay"]["up"]
    layers = []
    mediaBytes = rtxBytes = 0
    for index, (media, rtx) in enumerate(producerSsrcs(producer)):
        r0, r1 = before["router"].get(index), after["router"].get(index)
        loss = routerLoss(r0, r1) if r0 and r1 else {"loss": None}
        mediaBytes += tagDelta(up0, up1, media, "bytesIn")
        rtxBytes += tagDelta(up0, up1, rtx, "bytesIn") if rtx else 0
        layers.append(
            {
                "layer": index,
                "routerLoss": loss["loss"],
                "routerBitrate": (r1["byteCount"] - r0["byteCount"]) * 8 / seconds
                if r0 and r1
                else 0,
                "fps": tagDelta(up0, up1, media, "markersDelivered") / seconds,
                "offeredBitrate": tagDelta(up0, up1, media, "bytesIn") * 8 / seconds,
                "relayLoss": lossShare(up0, up1, [media]),
            }
        )
    lost = sum(
        routerLoss(before["router"][i], after["router"][i])["lost"] or 0
        for i in range(len(layers))
        if i in before["router"] and i in after["router"]
    )
    received = sum(
        routerLoss(before["router"][i], after["router"][i])["received"] or 0
        for i in range(len(layers))
        if i in before["router"] and i in after["router"]
    )
    fitting = [layer for layer in layers if (layer["routerLoss"] or 0) < 0.02 and layer["fps"] > 0]
    local = [
        {k: s.get(k) for k in ("rid", "targetBitrate", "framesPerSecond", "active")}
        for s in after["local"].values()
        if s.get("type") == "outbound-rtp"
    ]
    estimates = [
        s.get("availableOutgoingBitrate")
        for s in after["transport"].values()
        if s.get("availableOutgoingBitrate") is not None
    ]
    return {
        "metrics": {
            "routerLoss": lost / (lost + received) if lost + received else None,
            "routerBitrate": sum(layer["routerBitrate"] for layer in layers),
            "deliveredVsCap": (up1["bytesDelivered"] - up0["bytesDelivered"]) * 8 / seconds / cap,
            "retransmissionShare": rtxBytes / mediaBytes if mediaBytes else None,
            "fittingLayersMinFps": min((layer["fps"] for layer in fitting), default=None),
            # What the encoders made of the source (a busy machine shows here, not as loss).
            "encodedFpsMin": min(
                (e["framesPerSecond"] or 0 for e in local if e.get("active")), default=None
            ),
        },
        "cap": cap,
        "window": seconds,
        "layers": layers,
        "fittingLayers": [layer["layer"] for layer in fitting],
        "offeredBitrate": (up1["bytesIn"] - up0["bytesIn"]) * 8 / seconds,
        "local": local,
        "availableOutgoingBitrate": estimates[0] if estimates else None,
        "relayUp": _relaySummary(up1),
    }


async def capDrop(run: Run) -> dict[str, Any]:
    """(e) The uplink cap dropping from 3 Mbit/s to 600 kbit/s mid-run, then raised again."""
    high, low, again = (6.0, 8.0, 8.0) if run.quick else (10.0, 15.0, 15.0)
    await run.relay.configure("up:rate=3M,queue=100ms")
    client = await run.join("publisher", send=True, consume=False)
    producer = await client.produce(TimedPattern(1280, 720), encodings=[dict(e) for e in SIMULCAST])
    await asyncio.sleep(2)
    await run.relay.configure(
        f"up:rate=3M,queue=100ms for {high:g}s then rate=600k for {low:g}s then rate=3M"
    )
    run.t0 = time.monotonic()
    ssrcs = producerSsrcs(producer)
    poller = Poller({"relay": lambda: run.relay.stats()}, interval=0.5)
    await run.sleepUntil(high + low + again)
    poller.stop()
    dropAt, raised = phaseSpan((await run.relay.stats())["up"]["phases"], "rate=600k")
    assert raised is not None
    raiseAt = raised
    rtpTags = [t for pair in ssrcs for t in pair if t is not None]
    top, _ = ssrcs[-1]
    windows: list[dict[str, Any]] = []
    samples = poller.samples
    # 1-s windows from consecutive samples two apart (0.5 s apart each).
    for (t0, a), (t1, b) in zip(samples, samples[2:], strict=False):
        up0, up1 = a["relay"]["up"], b["relay"]["up"]
        windows.append(
            {
                "start": t0,
                "end": t1,
                "loss": lossShare(up0, up1, rtpTags),
                "topFps": tagDelta(up0, up1, top, "markersDelivered") / (t1 - t0),
                "topLoss": lossShare(up0, up1, [top]),
                "topOffered": tagDelta(up0, up1, top, "packetsIn") / (t1 - t0),
            }
        )
    capped = [w for w in windows if dropAt <= w["start"] and w["end"] <= raiseAt]
    # Back under 2 %: from the first window after which every capped window stays under.
    underAt: float | None = None
    for w in capped:
        underAt = (w["start"] if underAt is None else underAt) if (w["loss"] or 0) < 0.02 else None
    before = [w for w in windows if w["end"] <= dropAt]
    topRate = _median([w["topOffered"] for w in before]) or 0
    suspended = any(w["topOffered"] < 0.1 * topRate for w in capped) if topRate else None
    back = next(
        (
            w["end"]
            for w in windows
            if w["start"] >= raiseAt and w["topFps"] >= 20 and (w["topLoss"] or 0) < 0.02
        ),
        None,
    )
    return {
        "metrics": {
            "lossUnder2After": None if underAt is None else round(underAt - dropAt, 3),
            "cappedLoss": _median([w["loss"] for w in capped if w["loss"] is not None]),
            "topLayerBackAfterRaise": None if back is None else round(back - raiseAt, 3),
        },
        "topLayerSuspendedWhileCapped": suspended,
        "drop": run.since(dropAt),
        "raise": run.since(raiseAt),
        "windows": [
            {
                "t": run.since(w["start"]),
                "loss": None if w["loss"] is None else round(w["loss"], 4),
                "topFps": round(w["topFps"], 1),
            }
            for w in windows
        ],
    }


async def sharedCap(run: Run) -> dict[str, Any]:
    """(f) Video and audio sharing a 1 Mbit/s uplink cap: the audio packets lost."""
    total, warmup = (10.0, 2.0) if run.quick else (20.0, 2.0)
    await run.relay.configure("up:rate=1M,queue=100ms")
    client = await run.join("publisher", send=True, consume=False)
    video = await client.produce(TimedPattern(1280, 720), encodings=[dict(e) for e in SIMULCAST])
    audio = await client.produce(ToneAudioTrack())
    run.t0 = time.monotonic()
    await run.sleepUntil(warmup)
    relay0 = (await run.relay.stats())["up"]
    [audio0] = await client.routerStats(audio)
    await run.sleepUntil(total)
    relay1 = (await run.relay.stats())["up"]
    [audio1] = await client.routerStats(audio)
    [(audioSsrc, _)] = producerSsrcs(audio)
    videoTags = [t for pair in producerSsrcs(video) for t in pair if t is not None]
    return {
        "metrics": {
            "audioPacketsLost": tagDelta(relay0, relay1, audioSsrc, "packetsDropped"),
            "audioLossShare": lossShare(relay0, relay1, [audioSsrc]),
            "routerAudioPacketsLost": audio1["packetsLost"] - audio0["packetsLost"],
            "videoLossShare": lossShare(relay0, relay1, videoTags),
        },
        "audioPacketsOffered": tagDelta(relay0, relay1, audioSsrc, "packetsIn"),
        "relayUp": _relaySummary(relay1),
    }


async def statesHealthy(run: Run) -> dict[str, Any]:
    """(g) Connection states of audio-only, video-only and data-only send transports over a
    healthy link (through the relay, clean)."""
    total = run.healthySeconds or (15.0 if run.quick else 45.0)
    changes: dict[str, list[tuple[float, str]]] = {}

    def record(name: str, client: RoomClient) -> None:
        changes[name] = []
        client.sendTransport.on(
            "connectionstatechange",
            lambda state: changes[name].append((time.monotonic(), state)),
        )

    audioClient = await run.join("audio-only", send=True, consume=False)
    record("audio", audioClient)
    videoClient = await run.join("video-only", send=True, consume=False)
    record("video", videoClient)
    dataClient = await run.join("data-only", send=True, consume=False)
    record("data", dataClient)
    run.t0 = time.monotonic()
    await audioClient.produce(ToneAudioTrack())
    await videoClient.produce(PatternVideoTrack(320, 240, 30), encodings=[{"maxBitrate": 300_000}])
    channel = await dataClient.produceData(label="chat")

    async def chatter() -> None:
        while True:
            if channel.readyState == "open":
                channel.send(f"hello {time.monotonic()}")
            await asyncio.sleep(1.0)

    task = asyncio.ensure_future(chatter())
    await run.sleepUntil(total)
    task.cancel()
    afterConnected = {
        name: [
            (run.since(t), s)
            for t, s in events[
                next((i for i, e in enumerate(events) if e[1] == "connected"), 0) + 1 :
            ]
        ]
        for name, events in changes.items()
    }
    return {
        "metrics": {f"{name}StateChanges": len(events) for name, events in afterConnected.items()},
        "seconds": total,
        "changes": {n: [(run.since(t), s) for t, s in e] for n, e in changes.items()},
        "changesAfterConnected": afterConnected,
    }


async def statesOutage(run: Run) -> dict[str, Any]:
    """(g) Connection states through a 40 s outage of a send transport with audio and video,
    and when media reaches the router again after it."""
    steady, length, after = (4.0, 10.0, 8.0) if run.quick else (5.0, 40.0, 12.0)
    client = await run.join("publisher", send=True, consume=False)
    changes: list[tuple[float, str]] = []
    client.sendTransport.on(
        "connectionstatechange", lambda state: changes.append((time.monotonic(), state))
    )
    # RoomClient's own events about the connection (those it has; the recovery of issue 14
    # adds reconnecting/reconnected), beside the transport's states.
    roomEvents: list[tuple[float, str]] = []
    for name in ("disconnected", "reconnecting", "reconnected"):
        client.on(name, lambda *_, name=name: roomEvents.append((time.monotonic(), name)))
    await client.produce(PatternVideoTrack(320, 240, 30), encodings=[{"maxBitrate": 300_000}])
    await client.produce(ToneAudioTrack())
    run.t0 = time.monotonic()
    await run.sleepUntil(steady)
    await run.relay.configure(f"outage for {length:g}s")
    await run.sleepUntil(steady + length + 0.05)
    began, end = phaseSpan((await run.relay.stats())["up"]["phases"], "outage")
    assert end is not None
    ended = end

    async def routerCounts() -> int:
        # Whatever producers the client has now (a recovery may have made new ones).
        total = 0
        for producer in list(client.producers.values()):
            with contextlib.suppress(Exception):
                total += sum(s["packetCount"] for s in await client.routerStats(producer))
        return total

    baseline = await routerCounts()
    mediaBack: float | None = None
    while time.monotonic() < run.t0 + steady + length + after:
        if mediaBack is None and await routerCounts() > baseline + 10:
            mediaBack = time.monotonic()
        await asyncio.sleep(0.25)
    relative = [(round(t - began, 3), s) for t, s in changes]
    firstOf = {
        state: next((t for t, s in changes if s == state and t >= began), None)
        for state in ("disconnected", "failed")
    }
    failedAt = firstOf["failed"]
    return {
        "metrics": {
            "disconnectedAfter": None
            if firstOf["disconnected"] is None
            else round(firstOf["disconnected"] - began, 3),
            "failedAfter": None if failedAt is None else round(failedAt - began, 3),
            "changesAfterFailed": None
            if failedAt is None
            else sum(1 for t, _ in changes if t > failedAt),
            "mediaBackAfterReturn": None if mediaBack is None else round(mediaBack - ended, 3),
        },
        "outageSeconds": length,
        "returnedAt": round(ended - began, 3),
        "changesSinceOutage": relative,
        "roomClientEvents": [(round(t - began, 3), name) for t, name in roomEvents],
        # The state of the transport the client has at the end (a recovery may replace it).
        "finalState": client.sendTransport.connectionState,
    }


async def relayOverhead(run: Run) -> dict[str, Any]:
    """The relay's own cost on a clean setting: a 3-layer 720p producer through it and a
    consumer of it through it (both directions loaded), CPU of the relay process, how late
    it sent packets, and the round trip it adds (UDP pings through it vs direct)."""
    window = 8.0 if run.quick else 20.0
    _publisher, producer, _, _ = await publish(run, width=1280, height=720, send=True)
    _subscriber, consumer, _ = await subscribe(run, producer)
    frames = FrameLog(consumer)
    run.t0 = time.monotonic()
    await asyncio.sleep(2)
    before = await run.relay.stats()
    started = time.monotonic()
    pings = await _pingComparison(run, window)
    after = await run.relay.stats()
    seconds = time.monotonic() - started
    frames.stop()
    remote = [s for s in (await producer.getStats()).values() if s["type"] == "remote-inbound-rtp"]
    figures: dict[str, Any] = {
        "cpu": (after["processCpuSeconds"] - before["processCpuSeconds"]) / seconds,
        "busy": (after["busySeconds"] - before["busySeconds"]) / seconds,
    }
    for side in ("up", "down"):
        a, b = before[side], after[side]
        figures[f"{side}PacketRate"] = (b["packetsIn"] - a["packetsIn"]) / seconds
        figures[f"{side}Bitrate"] = (b["bytesIn"] - a["bytesIn"]) * 8 / seconds
        figures[f"{side}Lateness"] = {k: b["lateness"][k] for k in ("p50", "p99", "max")}
        figures[f"{side}KernelDropped"] = b["kernelDropped"]
    return {
        "metrics": {
            "relayCpuPerSecond": figures["cpu"],
            "packetsPerSecond": figures["upPacketRate"] + figures["downPacketRate"],
            "latenessP99Ms": 1000
            * max(figures["upLateness"]["p99"], figures["downLateness"]["p99"]),
            "addedRttMedianMs": pings["addedMedianMs"],
            "addedRttP95Ms": pings["addedP95Ms"],
            "kernelDropped": figures["upKernelDropped"] + figures["downKernelDropped"],
        },
        "relay": figures,
        "pings": pings,
        "producerRtt": remote[0].get("roundTripTime") if remote else None,
        "consumerFps": fps(frames.between(started, started + seconds), seconds),
    }


async def _pingComparison(run: Run, seconds: float) -> dict[str, Any]:
    """``netping.py`` in a process (and session) of its own: pings through the relay and
    directly, alternately; the difference of the round trips is what the relay adds."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("netping.py")), "--seconds", str(seconds),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        port = int((await process.stdout.readline()).split()[1])
        host, relayed = await run.relay.addTarget("127.0.0.1", port)
        process.stdin.write(f"RELAY {host} {relayed}\n".encode())
        await process.stdin.drain()
        while line := await process.stdout.readline():
            if line.startswith(b"RESULT "):
                result: dict[str, Any] = json.loads(line[len(b"RESULT ") :])
                return result
        return {"addedMedianMs": None, "addedP95Ms": None, "error": "no result"}
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


# ---------------------------------------------------------------- helpers


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def _fpsSeries(frames: FrameLog, t0: float, seconds: float) -> list[int]:
    """Decoded frames in each second after t0."""
    counts = [0] * int(seconds + 1)
    for frame in frames.frames:
        second = int(frame.time - t0)
        if 0 <= second < len(counts):
            counts[second] += 1
    return counts


def _sizeCounts(frames: list[Frame]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for frame in frames:
        key = f"{frame.width}x{frame.height}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _relaySummary(side: dict[str, Any]) -> dict[str, Any]:
    return {
        k: side[k]
        for k in (
            "config",
            "packetsIn",
            "packetsDelivered",
            "dropped",
            "queueDelayMax",
            "kernelDropped",
        )
    } | {"lateness": {k: side["lateness"][k] for k in ("p50", "p99", "max")}}


SCENARIOS: dict[str, Callable[[Run], Awaitable[dict[str, Any]]]] = {
    "downlink-cap": downlinkCap,
    "outage": outage,
    "random-loss": randomLoss,
    "burst-loss": burstLoss,
    "uplink-cap": uplinkCap,
    "cap-drop": capDrop,
    "shared-cap": sharedCap,
    "states-healthy": statesHealthy,
    "states-outage": statesOutage,
    "relay-overhead": relayOverhead,
}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    run = Run(url=args.url, seed=args.seed, quick=args.quick, healthySeconds=args.healthy_seconds)
    started = time.monotonic()
    async with RelayProcess(seed=args.seed) as relay:
        run.relay = relay
        relayPid = relay.pid
        try:
            result = await SCENARIOS[args.scenario](run)
        finally:
            await run.close()
        relayStats = await relay.stats()
    result.update(
        scenario=args.scenario,
        seed=args.seed,
        quick=args.quick,
        seconds=round(time.monotonic() - started, 1),
        relayPid=relayPid,
        relayCpuSeconds=relayStats["processCpuSeconds"],
        relayScheduling=relayStats["scheduling"],
        loadAverage1m=round(os.getloadavg()[0], 2),
    )
    return result


def parseArgs(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/?roomId=R")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--healthy-seconds", type=float, default=None, help="states-healthy length")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parseArgs(sys.argv[1:])
    logging.basicConfig(
        level=logging.INFO if os.environ.get("BENCH_DEBUG") else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    outcome = asyncio.run(main(arguments))
    print("RESULT " + json.dumps(outcome, default=str), flush=True)
    sys.stderr.flush()
    os._exit(0)
