"""Measuring a client process: its CPU time and memory, what it puts on the wire, and what the
router counts for its producers. Used by ``worker.py`` in both clients' processes."""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from clients import BenchClient, ProducerInfo


def cpuSeconds() -> float:
    """User + system CPU seconds of this process, all threads included."""
    times = os.times()
    return times.user + times.system


def rssBytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


_TICKS = os.sysconf("SC_CLK_TCK")


def threadGroup(name: str) -> str:
    """Threads grouped by role: their names carry a per-thread suffix."""
    if name == "MainThread":
        return "event loop"
    if name.startswith("msc-video-encode"):
        return "video encoder pool"
    if name.startswith("msc-audio-encode"):
        return "audio encoder pool"
    if name.startswith(("asyncio_", "ThreadPoolExecutor")):
        return "default executor (aiortc encoders)"
    return "other threads"


def threadCpuSeconds() -> dict[str, float]:
    """CPU seconds per thread group, from /proc/self/task (Python's threads by native id)."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    groups: dict[str, float] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        # utime and stime are fields 14 and 15 of stat(5); index 11, 12 after the name.
        seconds = (int(fields[11]) + int(fields[12])) / _TICKS
        group = threadGroup(names.get(int(task), "native"))
        groups[group] = groups.get(group, 0.0) + seconds
    return groups


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


class WireCounter:
    """RTP packets and frames (marker bits) sent per SSRC, counted where each client hands
    its RTP to SRTP: aiortc's ``RTCDtlsTransport._send_rtp`` (pymediasoup, and our awaited
    sends) and our send path's ``compat.sendRtpNow`` (the paced path). The router reports
    packets and bytes but no frames; on loopback what is sent is what arrives (the router's
    packetsLost says so), so frames sent per second is the delivered frame rate."""

    def __init__(self) -> None:
        self.packets: Counter[int] = Counter()
        self.frames: Counter[int] = Counter()

    def install(self) -> None:
        from aiortc.rtcdtlstransport import RTCDtlsTransport

        original: Callable[[Any, bytes], Coroutine[Any, Any, None]] = RTCDtlsTransport._send_rtp
        count = self._count

        async def countingSendRtp(transport: Any, data: bytes) -> None:
            count(data)
            await original(transport, data)

        RTCDtlsTransport._send_rtp = countingSendRtp  # type: ignore[method-assign,assignment]
        try:
            from mediasoup_client.handlers.aiortc import compat
        except ImportError:
            return  # pymediasoup's process: aiortc's path is the only one
        sendNow: Callable[[Any, bytes], None] = compat.sendRtpNow

        def countingSendRtpNow(transport: Any, data: bytes) -> None:
            count(data)
            sendNow(transport, data)

        compat.sendRtpNow = countingSendRtpNow  # type: ignore[assignment]
        sendBatch: Callable[[Any, Any], None] | None = getattr(compat, "sendRtpBatchNow", None)
        if sendBatch is None:
            return  # a version before batched sends (measured side by side with this one)

        def countingSendRtpBatchNow(transport: Any, packets: Any) -> None:
            for data in packets:
                count(data)
            assert sendBatch is not None
            sendBatch(transport, packets)

        compat.sendRtpBatchNow = countingSendRtpBatchNow  # type: ignore[assignment]

    def _count(self, data: bytes) -> None:
        # RTCP shares these paths (types 192..223 in the second byte): not counted.
        if len(data) >= 12 and not 192 <= data[1] <= 223:
            ssrc = int.from_bytes(data[8:12], "big")
            self.packets[ssrc] += 1
            if data[1] & 0x80:
                self.frames[ssrc] += 1


@dataclass
class StreamSample:
    """The router's counters for one RTP stream (one simulcast layer) at one instant."""

    routerTimeMs: float
    packetCount: int
    byteCount: int
    packetsLost: int


@dataclass
class Snapshot:
    wallTime: float
    cpu: float
    streams: dict[int, StreamSample]  # by SSRC
    wireFrames: dict[int, int]
    wirePackets: dict[int, int]


async def routerStreams(
    client: BenchClient, producers: Sequence[ProducerInfo]
) -> dict[int, StreamSample]:
    answers = await asyncio.gather(*(client.routerStats(p.id) for p in producers))
    streams: dict[int, StreamSample] = {}
    for stats in answers:
        for entry in stats:
            if entry.get("type") != "inbound-rtp" or "ssrc" not in entry:
                continue
            streams[int(entry["ssrc"])] = StreamSample(
                routerTimeMs=float(entry.get("timestamp", time.monotonic() * 1000)),
                packetCount=int(entry.get("packetCount", 0)),
                byteCount=int(entry.get("byteCount", 0)),
                packetsLost=int(entry.get("packetsLost", 0)),
            )
    return streams


async def snapshot(
    client: BenchClient, producers: Sequence[ProducerInfo], wire: WireCounter
) -> Snapshot:
    cpu = cpuSeconds()
    wall = time.monotonic()
    streams = await routerStreams(client, producers)
    return Snapshot(
        wallTime=wall,
        cpu=cpu,
        streams=streams,
        wireFrames=dict(wire.frames),
        wirePackets=dict(wire.packets),
    )


@dataclass
class StreamRates:
    """Per-second figures of one stream over one interval."""

    bitrate: float  # bps at the router (RTP packets, headers included)
    packetRate: float  # packets/s at the router
    framerate: float  # frames/s sent (marker bits on the wire)
    lost: int  # packets the router counted as lost in the interval


@dataclass
class Interval:
    seconds: float
    cpuPerSecond: float  # CPU seconds of the process per wall-clock second
    streams: dict[int, StreamRates] = field(default_factory=dict)


def interval(before: Snapshot, after: Snapshot) -> Interval:
    seconds = max(1e-6, after.wallTime - before.wallTime)
    result = Interval(seconds=seconds, cpuPerSecond=(after.cpu - before.cpu) / seconds)
    for ssrc, end in after.streams.items():
        start = before.streams.get(ssrc)
        if start is None:
            continue
        routerSeconds = max(1e-3, (end.routerTimeMs - start.routerTimeMs) / 1000)
        frames = after.wireFrames.get(ssrc, 0) - before.wireFrames.get(ssrc, 0)
        result.streams[ssrc] = StreamRates(
            bitrate=(end.byteCount - start.byteCount) * 8 / routerSeconds,
            packetRate=(end.packetCount - start.packetCount) / routerSeconds,
            framerate=frames / seconds,
            lost=end.packetsLost - start.packetsLost,
        )
    return result


@dataclass
class Window:
    intervals: list[Interval]
    # CPU seconds per wall-clock second of each thread group over the whole window.
    threadCpu: dict[str, float]


async def sampleSeconds(
    client: BenchClient,
    producers: Sequence[ProducerInfo],
    wire: WireCounter,
    seconds: int,
    step: float = 1.0,
) -> Window:
    """``seconds`` consecutive intervals of ``step`` seconds (the CPU figure of each one is
    the process's, stats requests included: they are a few small messages per second)."""
    intervals: list[Interval] = []
    threadsBefore = threadCpuSeconds()
    first = previous = await snapshot(client, producers, wire)
    deadline = previous.wallTime
    for _ in range(seconds):
        deadline += step
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        current = await snapshot(client, producers, wire)
        intervals.append(interval(previous, current))
        previous = current
    threadsAfter = threadCpuSeconds()
    elapsed = max(1e-6, previous.wallTime - first.wallTime)
    threadCpu = {
        group: (seconds_ - threadsBefore.get(group, 0.0)) / elapsed
        for group, seconds_ in sorted(threadsAfter.items())
    }
    return Window(intervals=intervals, threadCpu=threadCpu)


def summarise(window: Window, producers: Sequence[ProducerInfo]) -> dict[str, Any]:
    """Medians over the intervals: CPU per second, and per stream (grouped by producer and
    layer) bitrate, packet rate and frame rate."""
    intervals = window.intervals
    perProducer: list[dict[str, Any]] = []
    for producer in producers:
        layers = []
        for index, ssrc in enumerate(producer.ssrcs):
            rates = [i.streams[ssrc] for i in intervals if ssrc in i.streams]
            layers.append(
                {
                    "layer": index,
                    "ssrc": ssrc,
                    "bitrate": median([r.bitrate for r in rates]),
                    "packetRate": median([r.packetRate for r in rates]),
                    "framerate": median([r.framerate for r in rates]),
                    "lost": sum(r.lost for r in rates),
                }
            )
        perProducer.append({"id": producer.id, "kind": producer.kind, "layers": layers})
    cpu = [i.cpuPerSecond for i in intervals]
    return {
        "cpuPerSecond": median(cpu),
        "cpuPerSecondSamples": cpu,
        "threadCpuPerSecond": window.threadCpu,
        # The router's total bitrate per interval: shows whether the window was steady.
        "bitrateSamples": [sum(s.bitrate for s in i.streams.values()) for i in intervals],
        "producers": perProducer,
    }


async def waitFirstPacket(
    client: BenchClient, producerId: str, *, poll: float = 0.005, timeout: float = 15.0
) -> float | None:
    """``time.perf_counter()`` at which the router was first seen counting a packet of the
    producer (the send time of the stats request that showed it: the packet arrived before
    the router answered; the resolution is the poll interval plus a loopback round trip)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        asked = time.perf_counter()
        stats = await client.routerStats(producerId)
        if any(int(entry.get("packetCount", 0)) > 0 for entry in stats):
            return asked
        await asyncio.sleep(poll)
    return None


def ownUdpSockets() -> dict[int, tuple[int, int]]:
    """This process's UDP sockets, by inode: (bytes queued to be read, datagrams the kernel
    dropped because the queue was full), from /proc/net/udp{,6}."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    sockets: dict[int, tuple[int, int]] = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    inode = int(fields[9])
                    if inode in inodes:
                        queued = int(fields[4].split(":")[1], 16)
                        sockets[inode] = (queued, int(fields[-1]))
        except OSError:
            continue
    return sockets


class UdpQueueMonitor:
    """Samples this process's UDP sockets from a thread (the event loop may be too busy to do
    it on time): the largest receive queue seen and the datagrams dropped since ``start``."""

    def __init__(self, interval: float = 0.02) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dropsAtStart: dict[int, int] = {}
        self.maxQueuedBytes = 0

    def start(self) -> None:
        self._dropsAtStart = {inode: drops for inode, (_, drops) in ownUdpSockets().items()}
        self._thread = threading.Thread(target=self._run, name="udp-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            queued = max((q for q, _ in ownUdpSockets().values()), default=0)
            self.maxQueuedBytes = max(self.maxQueuedBytes, queued)

    def stop(self) -> int:
        """Datagrams dropped since start (sockets opened since included)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return sum(
            drops - self._dropsAtStart.get(inode, 0)
            for inode, (_, drops) in ownUdpSockets().items()
        )
