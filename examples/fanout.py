"""Encode once for many: one source, several send transports.

One ``VideoSource`` is produced by two publishers (two send transports, e.g. one per router
or region) and consumed from each. The library reads the source once and encodes each frame
once: both producers' stats say ``encoderShared: 2`` while each stream has its own SSRC. (Each
transport has its own bandwidth estimate; producers share an encoder while their rates agree
within 20 %, and otherwise get one each.)

    python examples/fanout.py [ROOM_URL] [--seconds 10]
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from _common import arguments, consumerOf, peerUrl, room

from mediasoup_client import Producer
from mediasoup_client.media import VideoSource, VideoStream
from mediasoup_client.media.test_sources import drawFrameNumber, readFrameNumberFromLuma
from mediasoup_client.signaling.room_client import RoomClient

WIDTH, HEIGHT, FPS = 320, 240, 30


async def draw(source: VideoSource) -> None:
    started = time.monotonic()
    index = 0
    while True:
        picture = np.full((HEIGHT, WIDTH, 3), (30, 120, 200), np.uint8)
        drawFrameNumber(picture, index)
        source.captureFrame(picture)
        index += 1
        await asyncio.sleep(max(0.0, started + index / FPS - time.monotonic()))


async def outbound(producer: Producer) -> dict[str, Any]:
    stats = await producer.getStats()
    return next(s for s in stats.values() if s["type"] == "outbound-rtp")


async def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    async with room(args.url) as (publisher, subscriber):
        # A second publisher in the same room: its own send transport.
        second = await RoomClient.join(peerUrl(publisher.url, "sender"), consume=False)
        source = VideoSource(WIDTH, HEIGHT)
        drawing = asyncio.ensure_future(draw(source))
        try:
            # Shared while both transports allow the same rate (within 20 %): capped below
            # where their bandwidth estimates start, they do from the first frame.
            producers = [
                await client.produce(source, encodings=[{"maxBitrate": 200_000}])
                for client in (publisher, second)
            ]
            consumers = [await consumerOf(subscriber, p.id) for p in producers]
            received = [0, 0]
            last = [-1, -1]

            async def read(index: int) -> None:
                async with VideoStream(consumers[index].track, format="gray") as frames:
                    deadline = time.monotonic() + args.seconds
                    async for frame in frames:
                        received[index] += 1
                        last[index] = readFrameNumberFromLuma(frame.data.astype(float))
                        if time.monotonic() >= deadline:
                            break

            await asyncio.gather(read(0), read(1))
            for index, producer in enumerate(producers):
                entry = await outbound(producer)
                print(
                    f"producer {index + 1}: ssrc {entry['ssrc']}, encoderShared "
                    f"{entry['encoderShared']}, {received[index]} frames received, "
                    f"the last was #{last[index]}"
                )
            print(f"done: {source.framesCaptured} frames pushed, read once, encoded once")
        finally:
            drawing.cancel()
            await second.close()


if __name__ == "__main__":
    asyncio.run(main())
