"""Issue 18 item 1: a recording-style PlainTransport consumer holds our top simulcast layer as
well as it holds a Chromium producer's, judged by the router's own layer changes.

Both producers (ours and Chromium's mediasoup-client, same encodings, same size) are in one
room; each gets four plain RTP consumers with preferred spatial layer = the top one: a minimal
recorder (VP8 without RTCP feedback or header extensions, as an ffmpeg SDP) and one with the
router's own capabilities (as mediasoup's recording examples pass them: transport-cc, so the
transport runs its bandwidth estimation, starting at 600 kbps), each with and without receiver
reports. The cause of the original failure: Chromium's producer came with L1T3 on every
encoding (mediasoup-client's Chrome handler sets it), ours with one temporal layer, so on a
bandwidth-managed transport the router could keep Chromium's top layer by dropping temporal
layers but had to leave ours for the layer below.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from mediasoup_client.media.test_sources import PatternVideoTrack
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.protoo import ProtooPeer
from mediasoup_client.signaling.room_client import RoomClient
from tests.browser.peer import BrowserPeer, Chromium
from tests.integration.plain_rtp import PlainConsumer
from tests.integration.router import waitFor

HOLD_SECONDS = 30.0
ENCODINGS = {
    3: [
        {"maxBitrate": 100_000, "scaleResolutionDownBy": 4},
        {"maxBitrate": 300_000, "scaleResolutionDownBy": 2},
        {"maxBitrate": 900_000},
    ],
    2: [
        {"maxBitrate": 300_000, "scaleResolutionDownBy": 2},
        {"maxBitrate": 900_000},
    ],
}
RECORDERS = [(caps, rr) for caps in ("minimal", "router") for rr in (False, True)]


@dataclass
class Held:
    """How one plain consumer fared on the top layer over the window."""

    share: float  # of the window on the top layer
    losses: int  # times the router left the top layer
    topKeyFrames: int  # key frames of the top layer's size received
    lastSize: tuple[int, int] | None

    def figures(self) -> dict[str, Any]:
        return {"share": round(self.share, 3), "losses": self.losses, "size": self.lastSize}


def held(
    consumer: PlainConsumer, top: int, since: float, until: float, size: tuple[int, int]
) -> Held:
    switches = consumer.switches(since, until)
    previous = consumer.currentLayerAt(since)
    losses = 0
    for event in switches:
        if previous == top and event.spatialLayer != top:
            losses += 1
        previous = event.spatialLayer
    keyFrames = [k for k in consumer.receiver.keyFrames if (k.width, k.height) == size]
    return Held(
        share=consumer.timeOnLayer(top, since, until) / (until - since),
        losses=losses,
        topKeyFrames=len(keyFrames),
        lastSize=consumer.receiver.frameSizeAt(until),
    )


async def scoredStreams(request: Any, producerId: str, count: int) -> None:
    async def scored() -> bool:
        streams = await request("getProducerStats", {"producerId": producerId})
        return len(streams) == count and all(s["score"] >= 9 for s in streams)

    await waitFor(scored, 20, f"{count} scored streams of {producerId}")


@pytest.mark.parametrize("size", [(640, 480), (1280, 720)], ids=["480p", "720p"])
@pytest.mark.parametrize("layers", [2, 3])
async def test_a_plain_consumer_holds_our_top_layer_as_well_as_chromiums(
    sfu: LocalSfu, chromium: Chromium, layers: int, size: tuple[int, int]
) -> None:
    width, height = size
    encodings = ENCODINGS[layers]
    top = layers - 1
    roomId = uuid.uuid4().hex[:8]
    publisher = await RoomClient.join(sfu.url_for(roomId, "python"), consume=False)
    camera = await BrowserPeer.join(chromium, sfu.port, roomId, consume=False)
    recorder = await ProtooPeer.connect(sfu.url_for(roomId, "recorder"))
    consumers: dict[tuple[str, str, bool], PlainConsumer] = {}
    try:
        ours = (
            await publisher.produce(PatternVideoTrack(width, height, 30), encodings=encodings)
        ).id
        theirs = (await camera.produceVideo(encodings=encodings, width=width, height=height))["id"]
        await scoredStreams(publisher.request, ours, layers)
        await scoredStreams(camera.request, theirs, layers)
        # mediasoup moves up only to streams active for 2 s (StreamMinActiveMs).
        await asyncio.sleep(2.5)
        for who, producerId in (("ours", ours), ("chromium", theirs)):
            for caps, rr in RECORDERS:
                consumers[(who, caps, rr)] = await PlainConsumer.create(
                    recorder, producerId, spatialLayer=top, capabilities=caps, receiverReports=rr
                )
        since = time.monotonic() + 1.0
        await asyncio.sleep(1.0 + HOLD_SECONDS)
        until = time.monotonic()
        results = {key: held(c, top, since, until, size) for key, c in consumers.items()}
        outbound = {
            s.get("rid"): (s.get("frameWidth"), s.get("frameHeight"))
            for s in await camera.stats(theirs)
            if s["type"] == "outbound-rtp"
        }
    finally:
        for consumer in consumers.values():
            await consumer.close()
        await recorder.close()
        await camera.close()
        await publisher.close()
    figures = {
        f"{who}/{caps}/{'rr' if rr else 'no-rr'}": r.figures()
        for (who, caps, rr), r in results.items()
    }
    print(f"{layers} layers {width}x{height}, Chromium's sizes {outbound}: {figures}")
    problems = []
    for caps, rr in RECORDERS:
        mine, reference = results[("ours", caps, rr)], results[("chromium", caps, rr)]
        name = f"{caps} recorder, {'with' if rr else 'without'} receiver reports"
        if mine.share < reference.share - 0.05 or mine.losses > reference.losses:
            problems.append(f"{name}: ours {mine.figures()}, Chromium's {reference.figures()}")
        if mine.share < 0.9:
            problems.append(f"{name}: our top layer held {mine.share:.0%} of {HOLD_SECONDS:g} s")
        if mine.topKeyFrames == 0 or mine.lastSize != size:
            problems.append(f"{name}: the recorder got no {width}x{height} frames of ours")
    assert not problems, problems
