"""One benchmark scenario with one client, in its own process; prints one ``RESULT {json}`` line.

    python bench/worker.py --client ours|pymediasoup --url WS_URL SCENARIO [options]

Runs under ``.venv`` (ours) or ``bench/.venv-pymediasoup`` (pymediasoup, which also has our
package installed for the shared signaling, sources and measuring code). ``driver.py`` starts
it; it can also be run by hand against a running local SFU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import itertools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from clients import BenchClient, ProducerInfo, SendTransport, makeClient
from data_producer import message as producerMessage
from measure import (
    UdpQueueMonitor,
    WireCounter,
    cpuSeconds,
    median,
    rssBytes,
    sampleSeconds,
    summarise,
    waitFirstPacket,
)

from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack

log = logging.getLogger("bench.worker")
BENCH = Path(__file__).resolve().parent


# 1. Time from produce() to the router's first packet.
async def firstRtp(client: BenchClient, args: argparse.Namespace) -> dict[str, Any]:
    """Per repetition: a new send transport; ``cold`` = produce() of a VP8 640x480 producer on
    it (ICE + DTLS included, as in any first produce), then ``warm`` = a second one on the
    now connected transport. One unmeasured repetition first (imports, first encoders)."""
    cold: list[float] = []
    warm: list[float] = []
    answered: list[float] = []  # produce() call to its return (signaling included)
    failures: list[str] = []
    pairs: list[Any] = []
    for repetition in range(args.reps + 1):
        while True:
            try:
                times = await _firstRtpRepetition(client, pairs if args.path else None)
                break
            except Exception as error:
                # A failed attempt (seen with pymediasoup: an aiortc offer without a usable
                # ICE section) is recorded and the repetition run again, a few times at most.
                failures.append(f"{type(error).__name__}: {error}")
                log.warning("first-rtp: repetition %d failed: %s", repetition, error)
                if len(failures) > 3:
                    raise
        if repetition > 0:
            cold.append(times[0])
            warm.append(times[1])
            answered.append(times[2])
    return {
        "coldMs": cold,
        "warmMs": warm,
        "produceReturnMs": answered,
        "coldMedianMs": median(cold),
        "warmMedianMs": median(warm),
        "produceReturnMedianMs": median(answered),
        "failedAttempts": failures,
        **({"path": args.path, "selectedPairs": _distinct(pairs)} if args.path else {}),
    }


def _distinct(pairs: list[Any]) -> list[dict[str, Any]]:
    """The kinds of selected pair seen (types and protocols, without addresses)."""
    kinds = {
        json.dumps({k: v for k, v in (p or {}).items() if k.endswith(("Type", "rotocol"))})
        for p in pairs
    }
    return [json.loads(k) for k in sorted(kinds)]


# 1b. The same through each connectivity path: TURN over UDP/TCP/TLS, ICE over TCP.
async def firstRtpPath(client: BenchClient, args: argparse.Namespace) -> dict[str, Any]:
    """``first-rtp`` with the transports' ICE options (ours only: pymediasoup's aiortc
    handler pairs UDP only)."""
    from clients import OurClient

    if not isinstance(client, OurClient):
        return {"unsupported": f"{client.name}: connectivity paths are measured for ours only"}
    if args.ca_file:
        # turns: verifies against the default trust store; the bench's coturn is self-signed.
        os.environ["SSL_CERT_FILE"] = args.ca_file
    client.iceServers = json.loads(args.ice_servers) if args.ice_servers else None
    client.iceTransportPolicy = args.policy
    client.forceTcp = args.force_tcp
    return await firstRtp(client, args)


async def _firstRtpRepetition(
    client: BenchClient, pairs: list[Any] | None = None
) -> tuple[float, float, float]:
    """(cold ms, warm ms, cold produce() return ms) on a new send transport (its selected
    candidate pair appended to ``pairs`` when given)."""
    transport = await client.createSendTransport()
    tracks = [PatternVideoTrack(640, 480, 30, seed=1), PatternVideoTrack(640, 480, 30, seed=2)]
    firstRtp: list[float] = []
    returnedAfter = 0.0
    try:
        for track in tracks:
            started = time.perf_counter()
            producer = await transport.produce(track)
            returned = time.perf_counter()
            first = await waitFirstPacket(client, producer.id)
            if first is None:
                raise RuntimeError(f"no RTP at the router after 15 s ({client.name})")
            firstRtp.append((first - started) * 1000)
            if not returnedAfter:
                returnedAfter = (returned - started) * 1000
        if pairs is not None:
            pairs.append(await transport.selectedPair())  # type: ignore[attr-defined]
    finally:
        await transport.close()
        for track in tracks:
            track.stop()
    await asyncio.sleep(0.2)  # let the closed transport's tasks wind down
    return firstRtp[0], firstRtp[1], returnedAfter


# 2 and 4. Video producers: CPU per second beside what the router receives.
async def video(client: BenchClient, args: argparse.Namespace) -> dict[str, Any]:
    """``k`` producers of one moving source (through aiortc's MediaRelay, unbuffered: a
    sender that falls behind skips frames instead of queueing them), each with
    ``--layers`` encodings (1: one encoding capped at ``--max-bitrate``; 3: simulcast with
    scaleResolutionDownBy 4/2/1). CPU and rates are medians of 1 s intervals after warm-up."""
    from aiortc.contrib.media import MediaRelay

    if args.layers > 1 and not client.honoursEncodings:
        return {"unsupported": f"{client.name} cannot send {args.layers} simulcast encodings"}
    wire = WireCounter()
    wire.install()
    source = PatternVideoTrack(args.width, args.height, 30)
    relay = MediaRelay()
    encodings: list[dict[str, Any]] | None = None
    if args.layers > 1:
        top = args.max_bitrate or 1_500_000
        encodings = [
            {
                "maxBitrate": int(top / 4 ** (args.layers - 1 - i)) or 30_000,
                "scaleResolutionDownBy": float(2 ** (args.layers - 1 - i)),
            }
            for i in range(args.layers)
        ]
    elif args.max_bitrate:
        encodings = [{"maxBitrate": args.max_bitrate}]
    codecOptions = {"videoGoogleStartBitrate": args.start_bitrate} if args.start_bitrate else None
    transport = await client.createSendTransport()
    producers: list[ProducerInfo] = []
    try:
        for _ in range(args.k):
            track = relay.subscribe(source, buffered=False)
            producers.append(
                await transport.produce(track, encodings=encodings, codecOptions=codecOptions)
            )
        await asyncio.sleep(args.warmup)
        window = await sampleSeconds(client, producers, wire, args.window)
    finally:
        await transport.close()
        source.stop()
    result = summarise(window, producers)
    streams = [layer for p in result["producers"] for layer in p["layers"]]
    result.update(
        k=args.k,
        layers=args.layers,
        encodings=encodings,
        codecOptions=codecOptions,
        totalBitrate=sum(layer["bitrate"] or 0 for layer in streams),
        # Per producer: its top layer's figures (the single layer without simulcast).
        bitratePerStream=median([p["layers"][-1]["bitrate"] or 0 for p in result["producers"]]),
        framerate=median([p["layers"][-1]["framerate"] or 0 for p in result["producers"]]),
        packetRate=median([p["layers"][-1]["packetRate"] or 0 for p in result["producers"]]),
        lost=sum(layer["lost"] for layer in streams),
        sourceFrames=source.framesGenerated,
    )
    return result


# 3. How many Opus producers at full packet rate within one core.
async def opusCapacity(client: BenchClient, args: argparse.Namespace) -> dict[str, Any]:
    """Ramp Opus producers (one 440 Hz tone track each, 20 ms frames: 50 packets/s) on one
    send transport. At each step: warm-up, then a window of 1 s intervals; a step passes when
    the router received at least 99 % of 50 packets/s for the producers as a whole and the
    process used at most one core (median). A failing step is measured once more before it
    counts (the machine is shared); the ramp stops at the first failure or at the time
    limit. ``--shared-source``: one tone track for every producer (scenario 8: encoded once,
    fanned out)."""
    wire = WireCounter()
    wire.install()
    steps = [int(s) for s in args.steps.split(",")]
    transport = await client.createSendTransport()
    producers: list[ProducerInfo] = []
    tracks: list[ToneAudioTrack] = []
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    best = 0
    try:
        for count in steps:
            if time.monotonic() - started > args.max_time:
                log.warning("opus ramp: time limit reached before %d producers", count)
                break
            addStarted = time.monotonic()
            while len(producers) < count:
                if args.shared_source and tracks:
                    track = tracks[0]  # one source for all: encoded once (scenario 8)
                else:
                    track = ToneAudioTrack(440 + len(tracks))
                    tracks.append(track)
                producers.append(await transport.produce(track))
            addSeconds = time.monotonic() - addStarted
            step: dict[str, Any] = {}
            for attempt in range(2):
                await asyncio.sleep(args.warmup)
                wireBefore, wireStarted = sum(wire.packets.values()), time.monotonic()
                window = await sampleSeconds(client, producers, wire, args.window)
                wireRate = (sum(wire.packets.values()) - wireBefore) / (
                    (time.monotonic() - wireStarted) * count
                )
                intervals = window.intervals
                rates = [sum(s.packetRate for s in i.streams.values()) / count for i in intervals]
                packetRate = median(rates) or 0.0
                cpu = median([i.cpuPerSecond for i in intervals]) or 0.0
                missing = max(0.0, 1 - packetRate / 50)
                step = {
                    "producers": count,
                    "packetRatePerProducer": packetRate,
                    "sentPacketRatePerProducer": wireRate,  # our side: does the router miss any?
                    "missing": missing,
                    "cpuPerSecond": cpu,
                    "threadCpuPerSecond": window.threadCpu,
                    "addSeconds": addSeconds,
                    "attempt": attempt + 1,
                    "passed": missing < 0.01 and cpu <= 1.0,
                }
                log.info("opus ramp: %s", step)
                if step["passed"]:
                    break
            results.append(step)
            if not step["passed"]:
                break
            best = count
    finally:
        await transport.close()
        for track in tracks:
            track.stop()
    return {
        "maxFullRateProducers": best,
        "testedUpTo": max((s["producers"] for s in results), default=0),
        "limitReached": bool(results) and not results[-1]["passed"],
        "steps": results,
    }


# 5. Memory per send transport.
async def memory(client: BenchClient, args: argparse.Namespace) -> dict[str, Any]:
    """``--transports`` send transports with one Opus producer each, in this process. RSS
    after (once all are sending and a few seconds passed) minus RSS before, per transport.
    ``--paused``: each producer is paused right after produce(), so the figure is the
    transport and producer alone, without media in flight."""
    if args.paused and not client.canPause:
        return {"unsupported": f"{client.name} cannot pause a producer"}
    # Warm the process first (one transport + producer, then closed) so that imports, codec
    # tables and thread pools are in "before" for both clients, not counted per transport.
    warmTransport = await client.createSendTransport()
    warmTrack = ToneAudioTrack(300)
    await warmTransport.produce(warmTrack)
    await asyncio.sleep(1)
    await warmTransport.close()
    warmTrack.stop()
    await asyncio.sleep(1)
    before = rssBytes()
    transports: list[SendTransport] = []
    producers: list[ProducerInfo] = []
    tracks: list[ToneAudioTrack] = []
    failures: list[str] = []
    started = time.monotonic()
    try:
        while len(producers) < args.transports:
            transport = await client.createSendTransport()
            transports.append(transport)
            track = ToneAudioTrack(300 + len(tracks))
            tracks.append(track)
            try:
                producer = await transport.produce(track)
                if args.paused:
                    producer.handle.pause()
                producers.append(producer)
            except Exception as error:
                # Seen with pymediasoup now and then ("no active media section found": an
                # aiortc offer without a usable ICE section): count it, try again.
                failures.append(f"{type(error).__name__}: {error}")
                log.warning("memory: produce #%d failed: %s", len(producers) + 1, error)
                if len(failures) > 5:
                    raise
        createSeconds = time.monotonic() - started
        created = rssBytes()
        await asyncio.sleep(args.warmup)
        after = rssBytes()
        # Whether the process keeps up with 100 Opus streams: when it does not, queued audio
        # frames grow the RSS too (ours queues up to 1 s per producer), so say so.
        window = await sampleSeconds(client, producers, WireCounter(), 3)
        sending = len(
            {ssrc for i in window.intervals for ssrc, s in i.streams.items() if s.packetRate > 0}
        )
        packetRate = median(
            [
                sum(s.packetRate for s in i.streams.values()) / len(producers)
                for i in window.intervals
            ]
        )
        cpu = median([i.cpuPerSecond for i in window.intervals])
    finally:
        for transport in transports:
            with contextlib.suppress(Exception):
                await transport.close()
        for track in tracks:
            track.stop()
    return {
        "transports": args.transports,
        "rssBeforeBytes": before,
        "rssAfterBytes": after,
        "rssRightAfterCreatingBytes": created,
        "bytesPerTransportRightAfterCreating": (created - before) / len(transports),
        "packetRatePerProducer": packetRate,
        "cpuPerSecond": cpu,
        # Per transport alive at "after" (failed attempts included: they stay open).
        "transportsOpen": len(transports),
        "bytesPerTransport": (after - before) / len(transports),
        "producersSending": sending,
        "createSeconds": createSeconds,
        "failedProduceAttempts": failures,
    }


# 7. A pre-encoded (passthrough) video producer against an encoding one.
async def passthrough(client: BenchClient, args: argparse.Namespace) -> dict[str, Any]:
    """One video producer of ``--file`` (ours only): ``--mode passthrough`` sends the file's
    H264 access units as they are (EncodedVideoSource, looping); ``encode`` sends the same
    pictures (the file's first 2 s, decoded once before measuring and replayed at 30 fps, so
    the source costs nothing) through our ``--codec`` encoder at ``--max-bitrate``; ``idle``
    has a connected transport and a producer that is never fed (the process's floor: ICE,
    RTCP, these stats requests). CPU and rates are medians of 1 s intervals after warm-up."""
    if client.name != "ours":
        return {"unsupported": f"{client.name} cannot send pre-encoded media"}
    from mediasoup_client.media import EncodedVideoSource, VideoSource

    wire = WireCounter()
    wire.install()
    transport = await client.createSendTransport()
    track: Any
    if args.mode == "passthrough":
        track = EncodedVideoSource(args.file, loop=True)
    elif args.mode == "encode":
        track = _ReplayedFrames(args.file, seconds=2.0)
    else:
        track = VideoSource(args.width, args.height)
    encodings = [{"maxBitrate": args.max_bitrate}] if args.mode == "encode" else None
    codecOptions = (
        {"videoGoogleStartBitrate": args.max_bitrate // 1000} if args.mode == "encode" else None
    )
    try:
        producer = await _produceH264(transport, track, encodings, codecOptions, args.codec)
        await asyncio.sleep(args.warmup)
        before = await _outbound(producer)
        started = time.monotonic()
        window = await sampleSeconds(client, [producer], wire, args.window)
        after = await _outbound(producer)
        elapsed = time.monotonic() - started
    finally:
        await transport.close()
        track.stop()
    result = summarise(window, [producer])
    layer = result["producers"][0]["layers"][0]
    seconds = sum(i.seconds for i in window.intervals)
    result.update(
        # The mean over the window: a 1 s interval's figure has the kernel's 10 ms tick as
        # resolution, too coarse for a producer that uses 1-3 % of a core.
        cpuPerSecondMean=sum(i.cpuPerSecond * i.seconds for i in window.intervals) / seconds,
        mode=args.mode,
        file=args.file,
        codec=producer.handle.rtpParameters["codecs"][0]["mimeType"],
        encoderImplementation=after.get("encoderImplementation"),
        bitratePerStream=layer["bitrate"] or 0,
        # Frames sent, from the producer's own counters.
        framerate=(after.get("framesSent", 0) - before.get("framesSent", 0)) / elapsed,
        packetRate=layer["packetRate"] or 0,
        lost=layer["lost"],
    )
    return result


async def _outbound(producer: ProducerInfo) -> dict[str, Any]:
    stats = await producer.handle.getStats()
    entries = [s for s in stats.values() if s["type"] == "outbound-rtp"]
    return dict(entries[0]) if entries else {}


class _ReplayedFrames(MediaStreamTrack):
    """The first ``seconds`` of a file's pictures, decoded once, replayed forever at the file's
    frame rate with increasing timestamps."""

    kind = "video"

    def __init__(self, path: str, *, seconds: float) -> None:
        import av

        super().__init__()
        with av.open(path) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 30)
            self._frames = []
            for frame in container.decode(stream):
                self._frames.append(frame)
                if len(self._frames) >= seconds * rate:
                    break
        self._interval = 1 / rate
        self._index = 0
        self._started: float | None = None

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._started is None:
            self._started = now
        await asyncio.sleep(max(0.0, self._started + self._index * self._interval - now))
        frame = self._frames[self._index % len(self._frames)]
        frame.pts = round(self._index * self._interval * 90000)
        frame.time_base = fractions.Fraction(1, 90000)
        self._index += 1
        return frame


async def _produceH264(
    transport: SendTransport,
    track: Any,
    encodings: list[dict[str, Any]] | None,
    codecOptions: dict[str, Any] | None,
    codec: str,
) -> ProducerInfo:
    """Our transport's produce(): the encoder gets ``codec`` (h264: constrained baseline, or
    vp8); a pre-encoded source picks its own."""
    ours: Any = transport._transport  # type: ignore[attr-defined]
    options: dict[str, Any] = {"track": track}
    if encodings:
        options["encodings"] = encodings
    if codecOptions:
        options["codecOptions"] = codecOptions
    if not hasattr(track, "encodedStream") and codec == "h264":
        options["codec"] = {
            "kind": "video",
            "mimeType": "video/H264",
            "clockRate": 90000,
            "parameters": {"packetization-mode": 1, "profile-level-id": "42e01f"},
        }
    elif not hasattr(track, "encodedStream"):
        options["codec"] = {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000}
    producer = await ours.produce(**options)
    return ProducerInfo(
        id=producer.id,
        kind=producer.kind,
        ssrcs=[int(e["ssrc"]) for e in producer.rtpParameters["encodings"]],
        payloadType=int(producer.rtpParameters["codecs"][0]["payloadType"]),
        handle=producer,
    )
# 8. Encode once for many: one source, several producers on several transports.
async def fanout(client: BenchClient, args: argparse.Namespace) -> dict[str, Any]:
    """``--k`` VP8 producers of one video source (the file's first 2 s replayed at 30 fps, as
    in scenario 7, so the source costs nothing), each on its own send transport, at
    ``--max-bitrate`` with the start bitrate the same (the transports' budgets agree, so they
    share one encoder); ``--distinct``: each producer its own copy of the source (one encoder
    each, as before encode-once). CPU is the mean over the window; encoders opened are
    counted in this process."""
    if client.name != "ours":
        return {"unsupported": f"{client.name} has no shared encoders"}
    from mediasoup_client.handlers.aiortc.send import encoders

    opened: set[int] = set()
    original = encoders.VideoEncoder._open

    def counting(self: Any, *a: Any, **kw: Any) -> None:
        opened.add(id(self))
        original(self, *a, **kw)

    encoders.VideoEncoder._open = counting  # type: ignore[method-assign]
    wire = WireCounter()
    wire.install()
    shared = _ReplayedFrames(args.file, seconds=2.0)
    tracks = [shared] + [
        _ReplayedFrames(args.file, seconds=2.0) if args.distinct else shared
        for _ in range(args.k - 1)
    ]
    encodings = [{"maxBitrate": args.max_bitrate}]
    codecOptions = {"videoGoogleStartBitrate": args.max_bitrate // 1000}
    transports = [await client.createSendTransport() for _ in range(args.k)]
    producers: list[ProducerInfo] = []
    try:
        for transport, track in zip(transports, tracks, strict=True):
            producers.append(
                await _produceH264(transport, track, encodings, codecOptions, "vp8")
            )
        await asyncio.sleep(args.warmup)
        window = await sampleSeconds(client, producers, wire, args.window)
        outbound = [await _outbound(p) for p in producers]
    finally:
        for transport in transports:
            await transport.close()
        for track in {id(t): t for t in tracks}.values():
            track.stop()
    result = summarise(window, producers)
    seconds = sum(i.seconds for i in window.intervals)
    layers = [p["layers"][0] for p in result["producers"]]
    result.update(
        k=args.k,
        distinct=args.distinct,
        cpuPerSecondMean=sum(i.cpuPerSecond * i.seconds for i in window.intervals) / seconds,
        encodersOpened=len(opened),
        encoderShared=[o.get("encoderShared") for o in outbound],
        bitratePerStream=median([layer["bitrate"] or 0 for layer in layers]),
        framerate=median([layer["framerate"] or 0 for layer in layers]),
        lost=sum(layer["lost"] for layer in layers),
    )
    return result


# 6. Data channel throughput: what a DataConsumer receives from a bursting DataProducer.
async def dataThroughput(client: BenchClient, args: argparse.Namespace) -> dict[str, Any]:
    """One DataConsumer (this client) of one DataProducer in the same room: always our client,
    in its own process (``data_producer.py``), sending ``--count`` ordered messages as fast as
    its ``bufferedAmount`` allows. Received messages/s and MB/s from the first message to the
    last, whether they all arrived in order, what the router dropped toward this consumer
    (``sctpsendbufferfull``), what the kernel dropped at our socket, and our CPU per message."""
    arrivals: list[float] = []
    sizes: list[int] = []
    firstBad: list[int] = []

    def onMessage(message: Any) -> None:
        index = len(arrivals)
        arrivals.append(time.monotonic())
        sizes.append(len(message))
        if not firstBad and message != producerMessage(index, args.sizes):
            firstBad.append(index)

    receiver = await client.createDataReceiver(onMessage)
    url = args.url.replace(f"peerId={args.client}", f"peerId={args.client}-producer")
    producer = await asyncio.create_subprocess_exec(
        args.producer_python, str(BENCH / "data_producer.py"), "--url", url,
        "--count", str(args.count), "--sizes", args.sizes,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert producer.stdin is not None and producer.stdout is not None

    async def line(prefix: str, timeout: float) -> str:
        assert producer.stdout is not None
        while True:
            text = (await asyncio.wait_for(producer.stdout.readline(), timeout)).decode()
            if not text:
                raise RuntimeError(f"the data producer exited before {prefix}")
            if text.startswith(prefix):
                return text[len(prefix) :].strip()

    monitor = UdpQueueMonitor()
    try:
        await line("READY", 30)
        await asyncio.wait_for(receiver.ready.wait(), 10)
        await asyncio.sleep(0.5)  # the router's side of the new stream
        monitor.start()
        cpuStarted = cpuSeconds()
        producer.stdin.write(b"GO\n")
        sent = json.loads(await line("SENT ", 600))
        # Done when all arrived, or nothing came for 5 s (what the router dropped never will).
        while len(arrivals) < args.count:
            last = arrivals[-1] if arrivals else time.monotonic()
            if time.monotonic() - last > 5:
                break
            await asyncio.sleep(0.05)
        cpu = cpuSeconds() - cpuStarted
        kernelDrops = monitor.stop()
        producer.stdin.write(b"STATS\n")
        routerReceived = json.loads(await line("STATS ", 30)).get("routerReceived")
        info = await client.request(
            "getDataConsumerInfo", {"dataConsumerId": receiver.dataConsumerId}
        )
        [stats] = await client.request(
            "getDataConsumerStats", {"dataConsumerId": receiver.dataConsumerId}
        )
    finally:
        monitor.stop()
        with contextlib.suppress(Exception):
            producer.stdin.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.wait(), 10)
        if producer.returncode is None:
            producer.kill()  # only the producer this scenario started
    received = len(arrivals)
    seconds = arrivals[-1] - arrivals[0] if received > 1 else None
    receivedBytes = sum(sizes)
    return {
        "sizes": args.sizes,
        "sent": sent["sent"],
        "sentBytes": sent["sentBytes"],
        "producerSendSeconds": sent["sendSeconds"],
        "producerCpuSeconds": sent["cpuSeconds"],
        "routerReceived": routerReceived,
        "routerSent": stats.get("messagesSent"),
        "routerDropped": info["sctpSendBufferFull"],
        "received": received,
        "lost": args.count - received,
        "complete": received == args.count,
        "inOrder": not firstBad,
        "firstOutOfOrder": firstBad[0] if firstBad else None,
        "seconds": seconds,
        "messagesPerSecond": received / seconds if seconds else None,
        "megabytesPerSecond": receivedBytes / seconds / 1e6 if seconds else None,
        "receivedBytes": receivedBytes,
        "cpuSeconds": cpu,
        "cpuMicrosecondsPerMessage": cpu / received * 1e6 if received else None,
        "kernelDrops": kernelDrops,
        "maxSocketQueueBytes": monitor.maxQueuedBytes,
        # The longest the consumer went without a message while the burst lasted.
        "longestGapMs": max((b - a for a, b in itertools.pairwise(arrivals)), default=0) * 1000,
    }


SCENARIOS = {
    "first-rtp": firstRtp,
    "first-rtp-path": firstRtpPath,
    "video": video,
    "opus": opusCapacity,
    "memory": memory,
    "passthrough": passthrough,
    "fanout": fanout,
    "data": dataThroughput,
}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    client = makeClient(args.client)
    await client.join(args.url)
    try:
        result = await SCENARIOS[args.scenario](client, args)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 5)
    # The machine is shared: how busy it was over the last minute, beside every result.
    result.update(
        client=args.client,
        scenario=args.scenario,
        loadAverage1m=round(os.getloadavg()[0], 2),
    )
    return result


def parseArgs(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--client", required=True, choices=["ours", "pymediasoup"])
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/?roomId=..&peerId=..")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--k", type=int, default=1, help="video producers")
    parser.add_argument("--layers", type=int, default=1, help="simulcast encodings")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--max-bitrate", type=int, default=0, help="bps per (top) encoding")
    parser.add_argument(
        "--start-bitrate",
        type=int,
        default=0,
        help="codecOptions.videoGoogleStartBitrate in kbps (0: not given)",
    )
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring")
    parser.add_argument("--window", type=int, default=10, help="seconds measured")
    parser.add_argument("--steps", default="10,20,40,60,80,100,120,150,200,250")
    parser.add_argument("--max-time", type=float, default=150.0, help="opus ramp time limit")
    parser.add_argument("--transports", type=int, default=100)
    parser.add_argument("--paused", action="store_true", help="memory: pause every producer")
    parser.add_argument("--path", default="", help="first-rtp-path: the path's name")
    parser.add_argument("--ice-servers", default="", help="first-rtp-path: iceServers JSON")
    parser.add_argument("--policy", default=None, help="first-rtp-path: iceTransportPolicy")
    parser.add_argument("--force-tcp", action="store_true", help="first-rtp-path: TCP only")
    parser.add_argument("--ca-file", default="", help="first-rtp-path: trust for turns:")
    parser.add_argument(
        "--mode", choices=("passthrough", "encode", "idle"), default="passthrough",
        help="passthrough: the file as it is; encode: its pictures through our encoder",
    )  # fmt: skip
    parser.add_argument("--file", help="passthrough: an H264 file (bench/driver.py makes one)")
    parser.add_argument(
        "--codec", choices=("h264", "vp8"), default="h264", help="passthrough --mode encode"
    )
    parser.add_argument(
        "--distinct", action="store_true", help="fanout: a copy of the source per producer"
    )
    parser.add_argument(
        "--shared-source", action="store_true", help="opus: one tone track for every producer"
    )
    parser.add_argument("--count", type=int, default=10_000, help="data: messages")
    parser.add_argument("--sizes", choices=["mixed", "64k"], default="mixed", help="data")
    parser.add_argument(
        "--producer-python", default=sys.executable, help="data: the producer's interpreter"
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parseArgs(sys.argv[1:])
    logging.basicConfig(
        level=logging.INFO if os.environ.get("BENCH_DEBUG") else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    result = asyncio.run(run(args))
    print("RESULT " + json.dumps(result), flush=True)
    sys.stderr.flush()
    # Leftover aiortc tasks and executor threads of up to 100 transports can take long to
    # wind down; the result is out, so leave at once.
    os._exit(0)


if __name__ == "__main__":
    main()
