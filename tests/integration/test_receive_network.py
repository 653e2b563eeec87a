"""The receive path against the real router when the network hurts, without a relay: packets
are lost, held back or rate-limited at our own port by a test hook on the transport's RTP
entry point (the place a real network's effects show up), and the router's own numbers say
what it made of our NACKs, key-frame requests, receiver reports and transport-cc feedback."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import av
import pytest

from mediasoup_client import Consumer
from mediasoup_client.handlers.aiortc import compat
from mediasoup_client.media.test_sources import PatternVideoTrack, readFrameNumber
from mediasoup_client.signaling.room_client import RoomClient
from tests.integration.router import consumerOf, waitFor

# Issue 14's producer: three layers of 640x480, about 2 Mbit/s in all; on a 400 kbit/s
# downlink only the lowest fits.
# One temporal layer each (simulcast otherwise defaults to L1T3): the router must pick the
# spatial layer that fits, not a lower frame rate of a larger one.
SIMULCAST = [
    {"maxBitrate": 150_000, "scaleResolutionDownBy": 4, "scalabilityMode": "L1T1"},
    {"maxBitrate": 500_000, "scaleResolutionDownBy": 2, "scalabilityMode": "L1T1"},
    {"maxBitrate": 1_500_000, "scalabilityMode": "L1T1"},
]

Decide = Callable[[Any, float], bool]  # (RTP packet, now) -> drop it


class PortHook:
    """Stands between aiortc's RTP router and our receivers (every consumer and the bandwidth
    probes of the transport): drops what ``drop`` says, and with ``rate`` set, passes the rest
    through a token bucket with a tail-drop queue of ``queueSeconds``: a downlink bottleneck at
    our port. A packet's arrival time is when it leaves the bottleneck (computed, as a kernel
    timestamp would be, not when the event loop gets round to it)."""

    def __init__(self) -> None:
        self.drop: Decide = lambda packet, now: False
        self.rate: float | None = None  # bits per second
        self.queueSeconds = 0.1
        self.dropped = 0
        self.delivered = 0
        self._busyUntil = 0.0

    def handle(self, recipient: Any, packet: Any) -> None:
        now = time.monotonic()
        if self.drop(packet, now):
            self.dropped += 1
            return
        if self.rate is None:
            self._deliver(recipient, packet, now)
            return
        size = len(packet.payload) + packet.padding_size + 40  # headers, SRTP tag, UDP/IP
        start = max(now, self._busyUntil)
        if start - now > self.queueSeconds:
            self.dropped += 1
            return
        departure = start + size * 8 / self.rate
        self._busyUntil = departure
        asyncio.get_running_loop().call_at(departure, self._deliver, recipient, packet, departure)

    def _deliver(self, recipient: Any, packet: Any, arrival: float) -> None:
        self.delivered += 1
        recipient._listener.onRtp(packet, arrival)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> PortHook:
    port_hook = PortHook()

    async def handle(recipient: Any, packet: Any, arrival_time_ms: int) -> None:
        port_hook.handle(recipient, packet)

    monkeypatch.setattr(compat._RtpRecipient, "_handle_rtp_packet", handle)
    return port_hook


class FrameLog:
    """Reads the consumer's track all the time, noting when each frame came and its number."""

    def __init__(self, consumer: Consumer) -> None:
        self.frames: list[tuple[float, int, int, int]] = []  # (time, width, height, number)
        self._task = asyncio.ensure_future(self._read(consumer))

    async def _read(self, consumer: Consumer) -> None:
        while True:
            frame = await consumer.track.recv()
            assert isinstance(frame, av.VideoFrame)
            number = readFrameNumber(frame)
            self.frames.append((time.monotonic(), frame.width, frame.height, number))

    def since(self, start: float) -> list[tuple[float, int, int, int]]:
        return [f for f in self.frames if f[0] >= start]

    def longestGap(self, start: float, end: float) -> float:
        times = [start] + [f[0] for f in self.frames if start <= f[0] <= end] + [end]
        return max(b - a for a, b in itertools.pairwise(times))

    def stop(self) -> None:
        self._task.cancel()


async def inbound(consumer: Consumer) -> dict[str, Any]:
    entries = [s for s in (await consumer.getStats()).values() if s["type"] == "inbound-rtp"]
    assert len(entries) == 1, entries
    return entries[0]


async def routerOutbound(subscriber: RoomClient, consumer: Consumer) -> dict[str, Any]:
    stats = await subscriber.consumerRouterStats(consumer)
    return next(s for s in stats if s["type"] == "outbound-rtp")


def mediaSsrc(consumer: Consumer) -> int:
    return int(consumer.rtpParameters["encodings"][0]["ssrc"])


def rtxSsrc(consumer: Consumer) -> int:
    return int(consumer.rtpParameters["encodings"][0]["rtx"]["ssrc"])


async def test_stats_describe_the_media_ssrc_while_retransmissions_repair_losses(
    peers: tuple[RoomClient, RoomClient], hook: PortHook
) -> None:
    publisher, subscriber = peers
    producer = await publisher.produce(PatternVideoTrack(320, 240, 30))
    consumer = await consumerOf(subscriber, producer.id)
    frames = FrameLog(consumer)
    await waitFor(lambda: asyncio.sleep(0, bool(frames.frames)), 10, "the first frame")
    media = mediaSsrc(consumer)
    counter = {"n": 0}

    def everyTwentiethMediaPacket(packet: Any, now: float) -> bool:
        if packet.ssrc != media:
            return False
        counter["n"] += 1
        return counter["n"] % 20 == 0

    hook.drop = everyTwentiethMediaPacket
    await asyncio.sleep(1)
    first, router_first = await inbound(consumer), await routerOutbound(subscriber, consumer)
    started = time.monotonic()
    await asyncio.sleep(4)
    last, router_last = await inbound(consumer), await routerOutbound(subscriber, consumer)
    elapsed = time.monotonic() - started
    frames.stop()
    # One entry, the media SSRC's, whose counters keep moving with the router's.
    assert last["ssrc"] == media and last["rtxSsrc"] == rtxSsrc(consumer)
    received = last["packetsReceived"] - first["packetsReceived"]
    sent = router_last["packetCount"] - router_first["packetCount"]
    assert received > 200
    assert 0.9 * sent <= received <= 1.1 * sent, (received, sent)
    repaired = last["retransmittedPacketsReceived"] - first["retransmittedPacketsReceived"]
    assert repaired >= 0.8 * received / 20, (repaired, received)
    assert last["retransmittedBytesReceived"] > first["retransmittedBytesReceived"]
    # Lost counts what did not arrive on the media SSRC (as the receiver reports tell the
    # router): the 5 % dropped; nearly all of them came back over RTX.
    lost = last["packetsLost"] - first["packetsLost"]
    assert 0.03 * received <= lost <= 0.07 * received, (lost, received)
    assert lost - repaired <= 0.01 * received, (lost, repaired)
    assert last["nackCount"] > first["nackCount"]
    assert router_last["nackCount"] > router_first["nackCount"]
    decoded = last["framesDecoded"] - first["framesDecoded"]
    assert decoded / elapsed >= 25, decoded / elapsed
    assert last["jitter"] < 0.05 and last["bytesReceived"] > first["bytesReceived"]
    # Repairs came in time: no key frame was needed for them.
    assert last["pliCount"] - first["pliCount"] <= 1


async def test_a_packet_lost_for_good_costs_one_short_freeze(
    peers: tuple[RoomClient, RoomClient], hook: PortHook
) -> None:
    publisher, subscriber = peers
    producer = await publisher.produce(PatternVideoTrack(320, 240, 30))
    consumer = await consumerOf(subscriber, producer.id)
    frames = FrameLog(consumer)
    await asyncio.sleep(2)
    media, rtx = mediaSsrc(consumer), rtxSsrc(consumer)
    doomed: set[int] = set()

    def losePacketForGood(packet: Any, now: float) -> bool:
        if packet.ssrc == media and not doomed:
            doomed.add(packet.sequence_number)
            return True
        if packet.ssrc == rtx and len(packet.payload) >= 2:
            return int.from_bytes(packet.payload[:2], "big") in doomed
        return packet.ssrc == media and packet.sequence_number in doomed

    before = await inbound(consumer)
    started = time.monotonic()
    hook.drop = losePacketForGood
    await asyncio.sleep(3)
    after = await inbound(consumer)
    frames.stop()
    # Asked for again (NACK), given up on, one key frame asked for: decoding stopped for
    # well under half a second and went on.
    assert doomed and after["nackCount"] > before["nackCount"]
    assert after["pliCount"] - before["pliCount"] in (1, 2)
    assert after["framesDropped"] > before["framesDropped"]
    assert frames.longestGap(started, time.monotonic()) < 0.5
    assert len(frames.since(time.monotonic() - 1)) >= 20


async def test_after_an_outage_a_fresh_frame_decodes_at_once(
    peers: tuple[RoomClient, RoomClient], hook: PortHook
) -> None:
    publisher, subscriber = peers
    source = PatternVideoTrack(320, 240, 30)
    producer = await publisher.produce(source)
    consumer = await consumerOf(subscriber, producer.id)
    frames = FrameLog(consumer)
    await asyncio.sleep(2)
    outage_end = time.monotonic() + 3
    hook.drop = lambda packet, now: now < outage_end
    await asyncio.sleep(3)
    generated_at_return = source.framesGenerated
    await asyncio.sleep(2)
    frames.stop()
    fresh = [f for f in frames.since(outage_end) if f[3] >= generated_at_return]
    assert fresh, "no frame generated after the outage was decoded"
    # The stale frames of the outage are not waited for: the first fresh one is at once.
    assert fresh[0][0] - outage_end < 0.5, fresh[0][0] - outage_end
    assert len(frames.since(outage_end + 1)) >= 25


async def test_transport_feedback_makes_the_router_fit_the_layer_to_a_capped_downlink(
    peers: tuple[RoomClient, RoomClient], hook: PortHook
) -> None:
    publisher, subscriber = peers
    source = PatternVideoTrack(640, 480, 30)
    producer = await publisher.produce(source, encodings=SIMULCAST)
    consumer = await consumerOf(subscriber, producer.id)
    frames = FrameLog(consumer)

    async def estimate() -> int | None:
        [stats] = await subscriber.transportRouterStats(subscriber.recvTransport)
        value = stats.get("availableOutgoingBitrate")
        return int(value) if value is not None else None

    async def rates() -> dict[str, int]:
        return {str(s.get("rid")): s["bitrate"] for s in await publisher.routerStats(producer)}

    async def topLayerFlowing() -> bool:
        current = await rates()
        decoded = frames.frames[-1][1] if frames.frames else 0
        return len(current) == 3 and current["r2"] > 600_000 and decoded == 640

    await waitFor(topLayerFlowing, 15, "the top layer at full rate, decoded")
    # Uncapped, the router has an estimate for us (before transport-cc it had none).
    assert (await estimate() or 0) > 600_000

    hook.rate = 400_000
    capped = time.monotonic()
    layerRates = await rates()
    fitting = {i for i, rid in enumerate(sorted(layerRates)) if layerRates[rid] <= 0.85 * 400_000}
    assert fitting == {0}, layerRates

    async def layer() -> int | None:
        info = await subscriber.request("getConsumerInfo", {"consumerId": consumer.id})
        current = info.get("currentSpatialLayer")
        return int(current) if current is not None else None

    timeline: list[tuple[float, int | None, int | None]] = []  # (since the cap, estimate, layer)

    async def fits() -> bool:
        current = await layer()
        timeline.append((round(time.monotonic() - capped, 2), await estimate(), current))
        return current in fitting

    await waitFor(fits, 10, "the router to forward a layer that fits 400 kbit/s", interval=0.25)
    fitted = time.monotonic()
    assert fitted - capped < 5, f"(since the cap s, router estimate, layer): {timeline}"
    # From 5 s after the cap: the layer holds, decodes at full rate, and little is lost.
    await asyncio.sleep(max(0.0, capped + 5 - time.monotonic()))
    first, started = await inbound(consumer), time.monotonic()
    generatedAtStart = source.framesGenerated
    layers = []
    for _ in range(10):
        await asyncio.sleep(0.5)
        layers.append(await layer())
    last, ended = await inbound(consumer), time.monotonic()
    frames.stop()
    assert all(current in fitting for current in layers), layers
    assert (await estimate() or 10**9) < 600_000
    window = [f for f in frames.since(started) if f[0] <= ended]
    # Every frame made while the router holds the layer is of that layer (a frame of the old
    # layer that completes late, after its repairs through the cap, is not about the hold).
    sizes = {(w, h) for _, w, h, number in window if number >= generatedAtStart}
    assert sizes == {(160, 120)}, sizes
    assert len(window) >= 25 * (ended - started), len(window) / (ended - started)
    # Our loss (what the bottleneck dropped) stays under 2 % once the layer fits.
    lost = last["packetsLost"] - first["packetsLost"]
    repaired = last["retransmittedPacketsReceived"] - first["retransmittedPacketsReceived"]
    originals = last["packetsReceived"] - first["packetsReceived"] - repaired
    assert lost <= 0.02 * (originals + lost), (lost, originals)
