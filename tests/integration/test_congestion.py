"""Send-side congestion control against the real router (mediasoup 3.8.4): it negotiates
transport-cc and sends transport feedback for our packets; through the impairment relay's
uplink cap the sender settles below the cap without loss, by the router's own counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack
from mediasoup_client.netem import RelayProcess, transportInfoHook
from mediasoup_client.rtp_extensions import URI_TRANSPORT_WIDE_CC
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.integration.router import routerStreams, waitFor

LAYERS = [
    {"maxBitrate": 100_000, "scaleResolutionDownBy": 4},
    {"maxBitrate": 300_000, "scaleResolutionDownBy": 2},
    {"maxBitrate": 900_000},
]


def _congestion(stats: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in stats.values() if e.get("type") == "congestion-control")


async def test_the_router_sends_transport_feedback_and_the_estimate_runs_on_it(
    sfu: LocalSfu,
) -> None:
    client = await RoomClient.join(sfu.url_for(None, "publisher"), consume=False)
    try:
        audio = await client.produce(ToneAudioTrack())
        video = await client.produce(PatternVideoTrack(640, 360, 30), encodings=LAYERS)
        for producer in (audio, video):
            uris = {e["uri"] for e in producer.rtpParameters["headerExtensions"]}
            assert URI_TRANSPORT_WIDE_CC in uris
            feedback = {fb["type"] for fb in producer.rtpParameters["codecs"][0]["rtcpFeedback"]}
            assert "transport-cc" in feedback and "goog-remb" not in feedback

        async def fed() -> bool:
            cc = _congestion(await video.getStats())
            return bool(cc.get("transportFeedbackReceived", 0) >= 20)

        await waitFor(fed, 10, "transport feedback from the router")
        await asyncio.sleep(2)
        cc = _congestion(await video.getStats())
        transport = await client.sendTransport.getStats()
        router = await client.transportRouterStats(client.sendTransport)
    finally:
        await client.close()
    assert cc["mode"] == "transport-cc"
    # Every packet the transport sent was reported on, almost none lost on loopback.
    assert cc["transportPacketsReported"] > 200
    assert cc["transportPacketsLost"] <= 0.01 * cc["transportPacketsReported"]
    # The estimate grew from the router's start bitrate to what the three layers can use.
    assert cc["availableOutgoingBitrate"] >= 1_000_000
    assert transport["candidate-pair"]["availableOutgoingBitrate"] > 0
    # The router side agrees it runs transport-cc for us: its feedback server reports loss.
    assert "rtpPacketLossReceived" in router[0]


@pytest.fixture
async def relay() -> AsyncIterator[RelayProcess]:
    async with RelayProcess(seed=5) as relay:
        yield relay


async def test_through_an_uplink_cap_the_router_sees_no_loss_and_the_top_layer_waits(
    sfu: LocalSfu, relay: RelayProcess
) -> None:
    cap = 450_000
    await relay.configure(f"up:rate={cap // 1000}k,queue=100ms")
    client = await RoomClient.join(
        sfu.url_for(None, "publisher"),
        consume=False,
        transportInfoHook=transportInfoHook(send=relay),
    )
    try:
        video = await client.produce(PatternVideoTrack(640, 360, 30), encodings=LAYERS)
        await asyncio.sleep(8)
        before = await routerStreams(client, video)
        started = time.monotonic()
        await asyncio.sleep(6)
        after = await routerStreams(client, video)
        elapsed = time.monotonic() - started
        local = await video.getStats()
    finally:
        await client.close()
    lost = sum(after[k]["packetsLost"] - before[k]["packetsLost"] for k in after if k in before)
    received = sum(after[k]["packetCount"] - before[k]["packetCount"] for k in after if k in before)
    bitrate = (
        sum(after[k]["byteCount"] - before[k]["byteCount"] for k in after if k in before)
        * 8
        / elapsed
    )
    assert received > 200
    assert lost <= 0.02 * (lost + received), (lost, received)
    assert 0.5 * cap < bitrate <= cap
    cc = _congestion(local)
    # What the feedback's arrival times measured is the cap. The estimate may sit above it
    # while the suspended layer leaves the sender application-limited (a CI run saw 615k),
    # but never past 1.5x what the link acknowledged (+10 kbps, libwebrtc's AIMD ceiling).
    assert 0.5 * cap < cc["acknowledgedBitrate"] <= 1.1 * cap, cc
    assert cc["availableOutgoingBitrate"] <= 1.5 * cap + 10_000, cc
    outbound = sorted(
        (e for e in local.values() if e.get("type") == "outbound-rtp"), key=lambda e: e["rid"]
    )
    # 100k + 300k leave less than the 640x360 layer's minimum: it is suspended.
    assert [e["active"] for e in outbound] == [True, True, False]
    retransmitted = sum(e["retransmittedBytesSent"] for e in outbound)
    assert retransmitted < 0.1 * sum(e["bytesSent"] for e in outbound)
