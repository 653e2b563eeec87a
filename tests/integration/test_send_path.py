"""The Producer features on the wire, each checked by the real router's own numbers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mediasoup_client import Device
from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.protoo import ProtooPeer
from mediasoup_client.signaling.room_client import RoomClient
from tests.integration.router import measure, packetCounts, routerStreams, waitFor

SIMULCAST = [
    {"maxBitrate": 100_000, "scaleResolutionDownBy": 4},
    {"maxBitrate": 300_000, "scaleResolutionDownBy": 2},
    {"maxBitrate": 900_000},
]


@pytest.fixture
async def client(sfu: LocalSfu) -> AsyncIterator[RoomClient]:
    client = await RoomClient.join(sfu.url_for(), consume=False)
    yield client
    await client.close()


def sendCodec(device: Device, mimeType: str) -> Any:
    return next(
        c for c in device.sendRtpCapabilities["codecs"] if c["mimeType"].lower() == mimeType
    )


async def test_transport_connects_once(client: RoomClient) -> None:
    states: list[str] = []
    client.sendTransport.on("connectionstatechange", states.append)
    connects: list[Any] = []
    client.sendTransport.on("connect", lambda dtlsParameters: connects.append(dtlsParameters))
    await client.produce(ToneAudioTrack())
    await client.produce(ToneAudioTrack(660))

    async def connected() -> bool:
        [stats] = await client.transportRouterStats(client.sendTransport)
        return bool(stats["dtlsState"] == "connected")

    await waitFor(connected, 5, "the router's DTLS to connect")
    assert states[-1] == "connected" and "connecting" in states
    assert len(connects) == 1
    assert client.sendTransport.iceGatheringState == "complete"
    stats = await client.sendTransport.getStats()
    assert any(s["type"] == "transport" and s["dtlsState"] == "connected" for s in stats.values())


@pytest.mark.parametrize("mimeType", ["audio/opus", "video/vp8", "video/h264"])
async def test_producers_arrive_with_a_high_score(client: RoomClient, mimeType: str) -> None:
    track = ToneAudioTrack() if mimeType.startswith("audio") else PatternVideoTrack(640, 480, 30)
    producer = await client.produce(track, codec=sendCodec(client.device, mimeType))
    assert producer.rtpParameters["codecs"][0]["mimeType"].lower() == mimeType

    async def scored() -> bool:
        streams = await routerStreams(client, producer)
        return bool(streams) and all(s["score"] >= 9 for s in streams.values())

    await waitFor(scored, 10, f"a {mimeType} score >= 9")
    [stream] = (await routerStreams(client, producer)).values()
    assert stream["ssrc"] == producer.rtpParameters["encodings"][0]["ssrc"]
    assert stream["mimeType"].lower() == mimeType


async def test_simulcast_arrives_as_one_stream_per_encoding(client: RoomClient) -> None:
    producer = await client.produce(PatternVideoTrack(640, 480, 30), encodings=SIMULCAST)
    signalled = producer.rtpParameters["encodings"]

    async def threeStreams() -> bool:
        return len(await routerStreams(client, producer)) == 3

    await waitFor(threeStreams, 10, "three simulcast streams")
    await asyncio.sleep(3)  # past the encoders' start-up
    streams = await routerStreams(client, producer)
    assert [streams[f"r{i}"]["ssrc"] for i in range(3)] == [e["ssrc"] for e in signalled]
    rates = await measure(client, producer, 4)
    bitrates = [rates[f"r{i}"]["bitrate"] for i in range(3)]
    assert bitrates[0] < bitrates[1] < bitrates[2], bitrates
    for encoding, bitrate in zip(SIMULCAST, bitrates, strict=True):
        assert bitrate <= encoding["maxBitrate"] * 1.1, bitrates
    assert all(rates[f"r{i}"]["score"] >= 9 for i in range(3))


async def test_set_max_spatial_layer_stops_and_restores_upper_layers(client: RoomClient) -> None:
    producer = await client.produce(PatternVideoTrack(640, 480, 30), encodings=SIMULCAST)

    async def threeFlowing() -> bool:
        return len(await routerStreams(client, producer)) == 3

    await waitFor(threeFlowing, 10, "three simulcast streams")
    await producer.setMaxSpatialLayer(0)
    assert producer.maxSpatialLayer == 0
    await asyncio.sleep(1)
    frozen = await packetCounts(client, producer)
    await asyncio.sleep(2)
    later = await packetCounts(client, producer)
    assert later["r1"] == frozen["r1"] and later["r2"] == frozen["r2"], (frozen, later)
    assert later["r0"] > frozen["r0"]
    await producer.setMaxSpatialLayer(2)

    async def upperBack() -> bool:
        now = await packetCounts(client, producer)
        return now["r1"] > later["r1"] and now["r2"] > later["r2"]

    await waitFor(upperBack, 3, "layers 1 and 2 to come back")


async def test_zero_rtp_pause_stops_rtp_and_resume_restarts_it(client: RoomClient) -> None:
    video = await client.produce(PatternVideoTrack(320, 240, 30), zeroRtpOnPause=True)
    audio = await client.produce(ToneAudioTrack(), zeroRtpOnPause=True)

    async def flowing() -> bool:
        counts = [await packetCounts(client, p) for p in (video, audio)]
        return all(c and all(v > 0 for v in c.values()) for c in counts)

    await waitFor(flowing, 10, "media to flow")
    video.pause()
    audio.pause()
    await asyncio.sleep(0.5)  # packets already in flight
    paused = [await packetCounts(client, p) for p in (video, audio)]
    await asyncio.sleep(2)
    assert [await packetCounts(client, p) for p in (video, audio)] == paused
    video.resume()
    audio.resume()

    async def back() -> bool:
        now = [await packetCounts(client, p) for p in (video, audio)]
        return all(sum(n.values()) > sum(p.values()) for n, p in zip(now, paused, strict=True))

    await waitFor(back, 2, "media after resume")


async def test_default_pause_keeps_the_streams_alive_at_a_few_kbps(client: RoomClient) -> None:
    # mediasoup-client's default: the paused track counts as disabled (black video, silent
    # audio), so the router keeps receiving, keeps its scores, and resuming is instant.
    video = await client.produce(PatternVideoTrack(320, 240, 30))
    audio = await client.produce(ToneAudioTrack())

    async def flowing() -> bool:
        counts = [await packetCounts(client, p) for p in (video, audio)]
        return all(c and all(v > 0 for v in c.values()) for c in counts)

    await waitFor(flowing, 10, "media to flow")
    playing = await measure(client, video, 2)
    video.pause()
    audio.pause()
    await asyncio.sleep(1)
    paused_video = await measure(client, video, 2)
    paused_audio = await measure(client, audio, 2)
    [(key, rates)] = paused_video.items()
    assert rates["packetRate"] > 20, paused_video  # still at the source's frame rate
    assert rates["bitrate"] < playing[key]["bitrate"] / 5, (playing, paused_video)
    assert rates["score"] >= 9
    [audio_rates] = paused_audio.values()
    assert audio_rates["packetRate"] > 40 and audio_rates["score"] >= 9


async def test_replace_track_needs_no_signaling_and_none_stops_rtp(
    client: RoomClient,
) -> None:
    producer = await client.produce(PatternVideoTrack(320, 240, 30))
    requests: list[str] = []
    original = client.protoo.request

    async def spy(method: str, data: Any = None, **kwargs: Any) -> Any:
        requests.append(method)
        return await original(method, data, **kwargs)

    client.protoo.request = spy  # type: ignore[method-assign]

    async def flowing() -> bool:
        return sum((await packetCounts(client, producer)).values()) > 0

    await waitFor(flowing, 10, "video to flow")
    await producer.replaceTrack(track=PatternVideoTrack(320, 240, 30, seed=7))
    before = sum((await packetCounts(client, producer)).values())

    async def stillFlowing() -> bool:
        return sum((await packetCounts(client, producer)).values()) > before + 30

    await waitFor(stillFlowing, 3, "packets after replaceTrack")
    [stream] = (await routerStreams(client, producer)).values()
    assert stream["score"] >= 9
    await producer.replaceTrack(track=None)
    await asyncio.sleep(0.5)
    stopped = await packetCounts(client, producer)
    await asyncio.sleep(2)
    assert await packetCounts(client, producer) == stopped
    assert set(requests) <= {"getProducerStats"}, requests


async def test_opus_dtx_on_silence_sends_few_packets(client: RoomClient) -> None:
    producer = await client.produce(ToneAudioTrack(silent=True), codecOptions={"opusDtx": True})
    assert producer.rtpParameters["codecs"][0]["parameters"]["usedtx"] == 1

    async def started() -> bool:
        return bool(await routerStreams(client, producer))

    await waitFor(started, 10, "the first audio packets")
    [rates] = (await measure(client, producer, 4)).values()
    assert rates["packetRate"] < 5, rates


async def test_opus_ptime_sets_the_packet_rate(client: RoomClient) -> None:
    producer = await client.produce(ToneAudioTrack(), codecOptions={"opusPtime": 40})
    assert producer.rtpParameters["codecs"][0]["parameters"]["ptime"] == 40

    async def started() -> bool:
        return bool(await routerStreams(client, producer))

    await waitFor(started, 10, "the first audio packets")
    await asyncio.sleep(1)
    [rates] = (await measure(client, producer, 4)).values()
    assert 23 <= rates["packetRate"] <= 27, rates


async def test_video_google_max_bitrate_bounds_the_encoder(client: RoomClient) -> None:
    producer = await client.produce(
        PatternVideoTrack(640, 480, 30), codecOptions={"videoGoogleMaxBitrate": 300}
    )

    async def started() -> bool:
        return bool(await routerStreams(client, producer))

    await waitFor(started, 10, "the first video packets")
    await asyncio.sleep(2)
    [rates] = (await measure(client, producer, 4)).values()
    assert 100_000 < rates["bitrate"] < 330_000, rates


async def test_dtls_fingerprint_mismatch_never_connects(sfu: LocalSfu) -> None:
    protoo = await ProtooPeer.connect(sfu.url_for())
    try:
        device = Device()
        await device.load(routerRtpCapabilities=await protoo.request("getRouterRtpCapabilities"))
        info = await protoo.request("createWebRtcTransport", {"producing": True})
        forged = [{"algorithm": "sha-256", "value": ":".join(["AB"] * 32)}]
        transport = device.createSendTransport(
            id=info["id"],
            iceParameters=info["iceParameters"],
            iceCandidates=info["iceCandidates"],
            dtlsParameters={**info["dtlsParameters"], "fingerprints": forged},
        )
        states: list[str] = []
        transport.on("connectionstatechange", states.append)

        async def connect(dtlsParameters: Any) -> None:
            await protoo.request(
                "connectWebRtcTransport",
                {"transportId": transport.id, "dtlsParameters": dtlsParameters},
            )

        transport.on("connect", connect)
        transport.on("produce", lambda kind, rtpParameters, appData: "never-used")
        await transport.produce(track=ToneAudioTrack())

        async def failed() -> bool:
            return transport.connectionState == "failed"

        await waitFor(failed, 10, "the transport to fail")
        assert "connected" not in states
        stats = await transport.getStats()
        assert all(s.get("dtlsState") != "connected" for s in stats.values())
        transport.close()
    finally:
        await protoo.close()
