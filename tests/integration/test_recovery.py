"""RoomClient comes back by itself: a transport the server closes (failed) means a new
session with the same peer id, the same tracks produced again, the room's consumers pushed
again; media flows again within a few seconds."""

from __future__ import annotations

import asyncio
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
