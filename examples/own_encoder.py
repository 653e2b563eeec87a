"""Send what your own encoder makes: packets from an async iterator, key frames on request.

A program that already encodes (a hardware encoder, a game streamer, a transcoder) hands its
access units to ``EncodedVideoSource(packets(), codec="h264")`` as ``EncodedPacket``s (Annex B
with SPS/PPS before each IDR for H264). When the router asks for a key frame the source emits
``keyframerequested``, and this encoder makes its next frame an IDR. Here the "own encoder" is
libx264 through PyAV, fed a moving pattern.

    python examples/own_encoder.py [ROOM_URL] [--seconds 10]
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import AsyncIterator

import av
from _common import arguments, consumerOf, room

from mediasoup_client.media import EncodedPacket, EncodedVideoSource, VideoStream
from mediasoup_client.media.test_sources import PatternVideoTrack, readFrameNumberFromLuma

FPS = 30


class MyEncoder:
    def __init__(self) -> None:
        self.codec = av.CodecContext.create("libx264", "w")
        self.codec.width, self.codec.height, self.codec.pix_fmt = 640, 360, "yuv420p"
        self.codec.time_base = fractions.Fraction(1, FPS)
        self.codec.options = {
            "preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
            "x264-params": "repeat-headers=1:keyint=600", "forced-idr": "1",
        }  # fmt: skip
        self.keyFrameWanted = False
        self.keyFramesMade = 0

    async def packets(self) -> AsyncIterator[EncodedPacket]:
        pattern = PatternVideoTrack(640, 360, FPS)
        index = 0
        while True:
            frame = await pattern.recv()  # paced at 30 fps
            frame.pts = index
            frame.time_base = self.codec.time_base
            if self.keyFrameWanted:
                frame.pict_type = av.video.frame.PictureType.I
                self.keyFrameWanted = False
            else:
                frame.pict_type = av.video.frame.PictureType.NONE
            for packet in self.codec.encode(frame):
                self.keyFramesMade += bool(packet.is_keyframe)
                yield EncodedPacket(bytes(packet), index / FPS, bool(packet.is_keyframe))
            index += 1


async def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    encoder = MyEncoder()
    async with room(args.url) as (publisher, subscriber):
        source = EncodedVideoSource(encoder.packets(), codec="h264", profileLevelId="42e01f")

        @source.on("keyframerequested")
        def onKeyFrameRequest(layer: int | None) -> None:
            print("key frame requested: the next frame is an IDR", flush=True)
            encoder.keyFrameWanted = True

        producer = await publisher.produce(source)
        consumer = await consumerOf(subscriber, producer.id)
        started = time.monotonic()
        decoded = 0
        async with VideoStream(consumer.track, format="gray") as frames:
            async for frame in frames:
                decoded += 1
                last = frame  # a VideoStreamFrame: .data, .width, .height, timestamps
                if time.monotonic() - started >= args.seconds:
                    break
        print(
            f"done: {decoded} frames decoded by the receiver (last #"
            f"{readFrameNumberFromLuma(last.data)}), {encoder.keyFramesMade} key frames made, "
            f"{source.keyFrameRequests} requested"
        )


if __name__ == "__main__":
    asyncio.run(main())
