"""Send numpy frames, receive numpy frames.

A program draws its own pictures (here: a colour that changes, with the frame number as a
barcode) and pushes them into a ``VideoSource`` at 30 fps; the router forwards them; a second
peer reads them back from its consumer with ``VideoStream`` as RGB arrays and reads the number.

    python examples/push_video.py [ROOM_URL] [--seconds 10]
"""

from __future__ import annotations

import asyncio
import colorsys
import time

import numpy as np
from _common import arguments, consumerOf, room

from mediasoup_client.media import VideoSource, VideoStream
from mediasoup_client.media.test_sources import drawFrameNumber, readFrameNumberFromLuma

WIDTH, HEIGHT, FPS = 640, 360, 30


async def draw(source: VideoSource) -> None:
    """Push a frame every 1/30 s: any (height, width, 3) uint8 array is an RGB picture."""
    started = time.monotonic()
    index = 0
    while True:
        hue = (index % 300) / 300
        red, green, blue = (round(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.6, 0.9))
        picture = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        picture[:] = (red, green, blue)
        drawFrameNumber(picture, index)
        source.captureFrame(picture)  # the capture time becomes the frame's timestamp
        index += 1
        await asyncio.sleep(max(0.0, started + index / FPS - time.monotonic()))


async def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    async with room(args.url) as (publisher, subscriber):
        source = VideoSource(WIDTH, HEIGHT)
        drawing = asyncio.ensure_future(draw(source))
        producer = await publisher.produce(source)
        consumer = await consumerOf(subscriber, producer.id)
        received = 0
        last = -1
        started = time.monotonic()
        report = started + 1
        async with VideoStream(consumer.track, format="rgb24") as frames:
            async for frame in frames:
                # frame.data: (360, 640, 3) uint8; frame.rtpTimestamp, frame.timestamp too.
                received += 1
                last = readFrameNumberFromLuma(frame.data.mean(axis=2))
                now = time.monotonic()
                if now >= report:
                    colour = frame.data[HEIGHT // 2, WIDTH // 2].tolist()
                    print(
                        f"{now - started:4.1f} s: {received} frames received, frame #{last}, "
                        f"colour {colour}, {frames.framesDropped} skipped",
                        flush=True,
                    )
                    report += 1
                if now - started >= args.seconds:
                    break
        drawing.cancel()
        print(
            f"done: {received} frames of {WIDTH}x{HEIGHT} received, the last was #{last} "
            f"of {source.framesCaptured} pushed"
        )


if __name__ == "__main__":
    asyncio.run(main())
