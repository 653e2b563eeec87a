"""RoomClient comes back by itself: a transport the server closes (failed) means a new
session with the same peer id, the same tracks produced again, the room's consumers pushed
again; media flows again within a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.integration.router import packetCounts, waitFor


async def test_a_failed_transport_is_replaced_and_media_flows_again(sfu: LocalSfu) -> None:
    room = uuid.uuid4().hex[:8]
    publisher = await RoomClient.join(sfu.url_for(room, "publisher"), consume=False)
    subscriber = await RoomClient.join(sfu.url_for(room, "subscriber"), produce=False)
    try:
        video_track = PatternVideoTrack(320, 240, 30)
        video = await publisher.produce(video_track, encodings=[{"maxBitrate": 300_000}])
        audio = await publisher.produce(ToneAudioTrack())
        events: list[str] = []
        replaced: dict[str, str] = {}
        publisher.on("reconnecting", lambda reason: events.append("reconnecting"))
        publisher.on("reconnected", lambda: events.append("reconnected"))
        publisher.on("producerreplaced", lambda old, new: replaced.update({old.id: new.id}))

        async def flowing() -> bool:
            counts = [await packetCounts(publisher, p) for p in publisher.producers.values()]
            return len(counts) == 2 and all(c and sum(c.values()) > 0 for c in counts)

        await waitFor(flowing, 10, "media to flow")
        # The transport can fail, and the recovery replace the room connection, before this
        # request's answer arrives.
        with contextlib.suppress(ConnectionError):
            await publisher.request("closeTransport", {"transportId": publisher.sendTransport.id})
        started = time.monotonic()
        await waitFor(lambda: _now(events == ["reconnecting", "reconnected"]), 15, "recovery")
        assert set(replaced) == {video.id, audio.id}
        assert video.closed and audio.closed and video_track.readyState != "ended"
        new_video = publisher.producers[replaced[video.id]]
        assert new_video.track is video_track
        assert new_video.rtpParameters["encodings"][0]["maxBitrate"] == 300_000

        async def newMediaFlows() -> bool:
            counts = [
                await packetCounts(publisher, publisher.producers[i]) for i in replaced.values()
            ]
            return all(sum(c.values()) > 10 for c in counts)

        await waitFor(newMediaFlows, 10, "media on the new producers")
        assert time.monotonic() - started < 8
        # The subscriber gets consumers of the new producers.
        await waitFor(
            lambda: _now(
                {c.producerId for c in subscriber.consumers.values()} >= set(replaced.values())
            ),
            10,
            "the new consumers",
        )
        assert publisher.recoveries == 1
    finally:
        await subscriber.close()
        await publisher.close()


async def _now(value: bool) -> bool:
    return value


async def test_no_recovery_when_asked_not_to(sfu: LocalSfu) -> None:
    publisher = await RoomClient.join(sfu.url_for(), consume=False, recover=False)
    try:
        producer = await publisher.produce(ToneAudioTrack())
        await waitFor(
            lambda: _now(publisher.sendTransport.connectionState == "connected"), 10, "connect"
        )
        await publisher.request("closeTransport", {"transportId": publisher.sendTransport.id})
        await waitFor(
            lambda: _now(publisher.sendTransport.connectionState == "failed"), 10, "failed"
        )
        await asyncio.sleep(1)
        assert publisher.recoveries == 0 and producer.id in publisher.producers
    finally:
        await publisher.close()


async def test_an_outage_is_disconnected_then_connected_and_media_back_within_3_s(
    sfu: LocalSfu,
) -> None:
    from mediasoup_client.netem import RelayProcess, transportInfoHook

    async with RelayProcess(seed=5) as relay:
        client = await RoomClient.join(
            sfu.url_for(), consume=False, transportInfoHook=transportInfoHook(send=relay)
        )
        try:
            producer = await client.produce(ToneAudioTrack())
            transport = client.sendTransport
            await waitFor(lambda: _now(transport.connectionState == "connected"), 10, "connect")
            states: list[str] = []
            transport.on("connectionstatechange", states.append)
            await relay.configure("outage for 7s")
            await waitFor(lambda: _now(states == ["disconnected"]), 7, "disconnected")
            await asyncio.sleep(7.2 - 4)
            back = time.monotonic()
            before = sum((await packetCounts(client, producer)).values())

            async def flowing() -> bool:
                return sum((await packetCounts(client, producer)).values()) > before + 20

            await waitFor(flowing, 5, "media after the outage", interval=0.1)
            assert time.monotonic() - back < 3
            assert states == ["disconnected", "connected"]
            assert client.recoveries == 0 and client.sendTransport is transport
        finally:
            await client.close()
