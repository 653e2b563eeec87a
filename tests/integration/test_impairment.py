"""The impairment relay does what it says, seen from the other end: a UDP echo peer, and the
real router's own counters for producers and consumers sent through it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from mediasoup_client import Producer
from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack
from mediasoup_client.netem import ImpairmentRelay, RelayProcess, transportInfoHook
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.integration.router import routerStreams, waitFor

# ---------------------------------------------------------------- a UDP echo peer


class _Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.sources: set[tuple[str, int]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sources.add(addr)
        self.transport.sendto(data, addr)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: dict[int, float] = {}
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received[int.from_bytes(data[1:5], "big")] = time.monotonic()
        self.arrived.set()


@pytest.fixture
async def echo() -> AsyncIterator[tuple[_Echo, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    yield protocol, transport.get_extra_info("sockname")[1]
    transport.close()


async def _pings(
    address: tuple[str, int], count: int, interval: float, size: int = 200
) -> tuple[dict[int, float], dict[int, float], asyncio.DatagramTransport]:
    """Send ``count`` numbered datagrams; (sent times, echo arrival times, the socket)."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(_Client, local_addr=("127.0.0.1", 0))
    sent: dict[int, float] = {}
    started = time.monotonic()
    for number in range(count):
        sent[number] = time.monotonic()
        # 0xff first: a datagram of no WebRTC kind (RFC 7983).
        transport.sendto(b"\xff" + number.to_bytes(4, "big") + bytes(size - 5), address)
        await asyncio.sleep(max(0.0, started + (number + 1) * interval - time.monotonic()))
    # Whatever is still in flight (a delayed echo) arrives within this.
    deadline = time.monotonic() + 1.0
    while len(client.received) < len(sent) and time.monotonic() < deadline:
        client.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.arrived.wait(), deadline - time.monotonic())
    return sent, client.received, transport


@pytest.mark.parametrize("kind", ["in-process", "process"])
async def test_relay_delays_drops_and_counts_both_ways(echo: tuple[_Echo, int], kind: str) -> None:
    protocol, port = echo
    spec = "up:delay=30ms,loss=10%;down:delay=20ms,jitter=5ms"
    relay: ImpairmentRelay | RelayProcess = (
        ImpairmentRelay(spec, seed=3) if kind == "in-process" else RelayProcess(spec, seed=3)
    )
    async with relay:
        address = await relay.addTarget("127.0.0.1", port)
        sent, received, socket_ = await _pings(address, 300, 0.005)
        socket_.close()
        stats = await relay.stats()
    rtts = [received[n] - sent[n] for n in received]
    # 30 ms up, 20 +- 5 ms down, plus the relay's own lateness (measured below).
    assert min(rtts) >= 0.045 and statistics.median(rtts) < 0.060, sorted(rtts)[::30]
    assert len(received) / len(sent) == pytest.approx(0.9, abs=0.06)
    up, down = stats["up"], stats["down"]
    assert up["packetsIn"] == 300 and up["dropped"]["loss"] == 300 - len(received)
    assert down["packetsIn"] == down["packetsDelivered"] == len(received)
    assert up["tags"]["other"]["packetsIn"] == 300  # not RTP/RTCP/STUN/DTLS
    assert up["lateness"]["packets"] == len(received)
    assert up["lateness"]["p50"] <= 0.005
    # One client address, one flow; the echo peer saw the relay's socket, not the client.
    [target] = stats["targets"]
    assert len(target["flows"]) == 1 and len(protocol.sources) == 1


async def test_relay_rate_cap_and_outage_on_the_wire(echo: tuple[_Echo, int]) -> None:
    _, port = echo
    # 200 kbit/s with 50 ms of queue; 1000-byte datagrams every 10 ms = ~830 kbit/s offered.
    async with RelayProcess("up:rate=200k,queue=50ms", seed=1) as relay:
        address = await relay.addTarget("127.0.0.1", port)
        _, received, socket_ = await _pings(address, 200, 0.010, size=1000)
        socket_.close()
        stats = await relay.stats()
        times = sorted(received.values())
        seconds = times[-1] - times[0]
        delivered = (len(received) - 1) * (1000 + 28) * 8 / seconds
        assert delivered == pytest.approx(200_000, rel=0.1)
        assert stats["up"]["dropped"]["queue"] == 200 - len(received)
        assert stats["up"]["queueDelayMax"] <= 0.050 + 1e-6
        # An outage now: nothing through for its duration, then traffic again.
        await relay.configure("outage for 1s")
        _, receivedDuring, socket_ = await _pings(address, 20, 0.02)
        socket_.close()
        assert not receivedDuring
        await asyncio.sleep(0.7)
        _, receivedAfter, socket_ = await _pings(address, 20, 0.02)
        socket_.close()
        assert len(receivedAfter) == 20
        stats = await relay.stats()
    assert [p["config"] for p in stats["up"]["phases"]][-2:] == ["outage", ""]
    phases = stats["up"]["phases"]
    assert phases[-1]["time"] - phases[-2]["time"] == pytest.approx(1.0)


# ---------------------------------------------------------------- through the router


@pytest.fixture
async def relay() -> AsyncIterator[RelayProcess]:
    async with RelayProcess(seed=11) as relay:
        yield relay


async def _publisher(sfu: LocalSfu, relay: RelayProcess, room: str | None = None) -> RoomClient:
    return await RoomClient.join(
        sfu.url_for(room, "publisher"),
        consume=False,
        transportInfoHook=transportInfoHook(send=relay),
    )


def _ssrcs(producer: Producer) -> tuple[int, int]:
    [encoding] = producer.rtpParameters["encodings"]
    return int(encoding["ssrc"]), int(encoding["rtx"]["ssrc"])


async def _stream(client: RoomClient, producer: Producer) -> dict[str, Any]:
    [stream] = (await routerStreams(client, producer)).values()
    return stream


async def test_uplink_loss_shows_at_the_router_and_rtx_repairs_it(
    sfu: LocalSfu, relay: RelayProcess
) -> None:
    await relay.configure("up:loss=5%")
    client = await _publisher(sfu, relay)
    try:
        producer = await client.produce(
            PatternVideoTrack(640, 480, 30), encodings=[{"maxBitrate": 600_000}]
        )
        await asyncio.sleep(8)
        stream = await _stream(client, producer)
        stats = await relay.stats()
    finally:
        await client.close()
    media, _ = _ssrcs(producer)
    dropped = stats["up"]["tags"][str(media)]["packetsDropped"]
    offered = stats["up"]["tags"][str(media)]["packetsIn"]
    assert dropped / offered == pytest.approx(0.05, abs=0.02)
    # The router counts the same holes (its count lags by up to one RTCP interval)...
    received = stream["packetCount"] - stream["packetsRepaired"]
    lost = stream["packetsLost"]
    assert lost / (lost + received) == pytest.approx(dropped / offered, abs=0.015)
    # ...asks for them, and RTX brings them back (RTX itself loses 5 % too).
    assert stream["nackPacketCount"] >= 0.8 * lost
    assert stream["packetsRepaired"] >= 0.8 * lost


async def test_uplink_rate_cap_limits_what_the_router_receives(
    sfu: LocalSfu, relay: RelayProcess
) -> None:
    await relay.configure("up:rate=300k,queue=100ms")
    client = await _publisher(sfu, relay)
    try:
        producer = await client.produce(
            PatternVideoTrack(640, 480, 30), encodings=[{"maxBitrate": 900_000}]
        )
        await asyncio.sleep(3)
        before = await _stream(client, producer)
        started = time.monotonic()
        await asyncio.sleep(5)
        after = await _stream(client, producer)
        elapsed = time.monotonic() - started
        stats = await relay.stats()
    finally:
        await client.close()
    bitrate = (after["byteCount"] - before["byteCount"]) * 8 / elapsed
    # The router counts RTP bytes; the cap also carries the SRTP tag and IP/UDP headers.
    assert 0.5 * 300_000 < bitrate <= 300_000 * 1.02
    assert stats["up"]["queueDelayMax"] <= 0.100 + 1e-6


async def test_an_outage_stops_the_router_counts_and_they_resume(
    sfu: LocalSfu, relay: RelayProcess
) -> None:
    client = await _publisher(sfu, relay)
    try:
        producer = await client.produce(
            PatternVideoTrack(320, 240, 30), encodings=[{"maxBitrate": 300_000}]
        )
        audio = await client.produce(ToneAudioTrack())

        async def flowing() -> bool:
            streams = [*(await routerStreams(client, producer)).values()]
            audioStreams = await routerStreams(client, audio)
            return bool(streams and streams[0]["packetCount"] > 30 and audioStreams)

        await waitFor(flowing, 10, "video at the router")
        await relay.configure("for 0.5s then outage for 3s")
        await asyncio.sleep(1.0)
        early = (await _stream(client, producer))["packetCount"]
        earlyAudio = (await _stream(client, audio))["packetCount"]
        await asyncio.sleep(2.0)
        late = (await _stream(client, producer))["packetCount"]
        lateAudio = (await _stream(client, audio))["packetCount"]
        assert (late, lateAudio) == (early, earlyAudio)  # nothing got through

        async def resumed() -> bool:
            stream, audioStream = await _stream(client, producer), await _stream(client, audio)
            return bool(
                stream["packetCount"] > late + 30 and audioStream["packetCount"] > lateAudio
            )

        await waitFor(resumed, 5, "media at the router after the outage")
        stats = await relay.stats()
    finally:
        await client.close()
    phases = stats["up"]["phases"]
    assert [p["config"] for p in phases[-3:]] == ["", "outage", ""]
    assert stats["up"]["dropped"]["outage"] > 100 and stats["down"]["dropped"]["outage"] > 0


async def test_delay_shows_in_both_round_trip_times(sfu: LocalSfu) -> None:
    room = uuid.uuid4().hex[:8]
    # 25 ms each way: 50 ms of round trip on the publisher's and the subscriber's path.
    async with (
        RelayProcess("delay=25ms", seed=1) as uplinkRelay,
        RelayProcess("delay=25ms", seed=2) as downlinkRelay,
    ):
        publisher = await _publisher(sfu, uplinkRelay, room)
        subscriber = await RoomClient.join(
            sfu.url_for(room, "subscriber"),
            produce=False,
            transportInfoHook=transportInfoHook(recv=downlinkRelay),
        )
        try:
            producer = await publisher.produce(
                PatternVideoTrack(320, 240, 30), encodings=[{"maxBitrate": 300_000}]
            )

            async def measured() -> bool:
                stats = await producer.getStats()
                remote = [s for s in stats.values() if s["type"] == "remote-inbound-rtp"]
                consumers = list(subscriber.consumers.values())
                if not remote or "roundTripTime" not in remote[0] or not consumers:
                    return False
                router = await subscriber.consumerRouterStats(consumers[0])
                return any(s.get("roundTripTime") for s in router)

            await waitFor(measured, 15, "round trip times on both paths")
            stats = await producer.getStats()
            [remote] = [s for s in stats.values() if s["type"] == "remote-inbound-rtp"]
            [consumer] = subscriber.consumers.values()
            router = await subscriber.consumerRouterStats(consumer)
            [outbound] = [s for s in router if s.get("roundTripTime")]
        finally:
            await subscriber.close()
            await publisher.close()
    # Our producer's RTT, from the router's receiver reports (seconds)...
    assert 0.045 <= remote["roundTripTime"] <= 0.090
    # ...and the router's RTT to our consumer, from our receiver reports (milliseconds).
    assert 45 <= outbound["roundTripTime"] <= 90


# ---------------------------------------------------------------- the command


def test_cli_produce_through_an_uplink_cap(sfu: LocalSfu) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mediasoup_client.cli", "produce", sfu.url_for("cli-impair"),
         "--impair", "up:rate=300k,queue=100ms;down:delay=10ms", "--no-audio",
         "--max-bitrate", "900k", "--duration", "6", "--json"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ticks = [json.loads(line) for line in result.stdout.splitlines() if '"stats"' in line]
    last = ticks[-1]
    up, down = last["impairment"]["up"], last["impairment"]["down"]
    assert up["config"] == "rate=300k,queue=100ms" and down["config"] == "delay=10ms"
    assert up["packetsIn"] > 100 and down["packetsIn"] > 0
    # The router got what fits through the cap, no more.
    [video] = last["producers"]
    assert 0 < video["layers"][0]["router"]["bitrate"] <= 300_000
