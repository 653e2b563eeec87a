"""Send an H264 (or VP8) file as it is: no decoding, no encoding.

``EncodedVideoSource(path, loop=True)`` reads the file's access units and the producer
packetises them unchanged, at the file's own timestamps; a key-frame request from the router
(a new consumer, a lost packet) is answered by the file's next key frame. Without ``--file`` a
short clip is made first (libx264, baseline profile, a key frame every second). The receiving
peer decodes what arrives; this process's CPU time shows what sending cost.

    python examples/passthrough.py [ROOM_URL] [--file clip.mp4] [--seconds 10]
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

from _common import arguments, consumerOf, room

from mediasoup_client.media import EncodedVideoSource, VideoStream
from mediasoup_client.media.test_sources import readFrameNumberFromLuma, writeTestFile


async def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--file", help="an H264 or VP8 file (MP4, MKV, WebM...) without B-frames")
    args = parser.parse_args()
    path = args.file
    if path is None:
        path = os.path.join(tempfile.mkdtemp(), "clip.mp4")
        writeTestFile(path, width=1280, height=720, seconds=4, bitrate=2_000_000)
        print(f"made {path}: 4 s of 1280x720 H264", flush=True)
    async with room(args.url) as (publisher, subscriber):
        source = EncodedVideoSource(path, loop=True)
        source.on("keyframerequested", lambda layer: print("router asked for a key frame"))
        info = source.encodedStream
        print(f"sending {info.mimeType} {info.profileLevelId or ''} as it is", flush=True)
        producer = await publisher.produce(source)
        codec = producer.rtpParameters["codecs"][0]
        print(f"producer codec: {codec['mimeType']} {codec.get('parameters', {})}", flush=True)
        consumer = await consumerOf(subscriber, producer.id)
        cpu = time.process_time()
        started = time.monotonic()
        decoded = 0
        async with VideoStream(consumer.track, format="gray") as frames:
            async for frame in frames:
                decoded += 1
                last = frame  # a VideoStreamFrame: .data, .width, .height, timestamps
                if time.monotonic() - started >= args.seconds:
                    break
        elapsed = time.monotonic() - started
        stats = [s for s in (await producer.getStats()).values() if s["type"] == "outbound-rtp"]
        print(
            f"done: {decoded} frames of {last.width}x{last.height} decoded by the receiver "
            f"(last #{readFrameNumberFromLuma(last.data)}), {stats[0]['framesSent']} sent by "
            f"{stats[0]['encoderImplementation']}; this process (sender and receiver): "
            f"{(time.process_time() - cpu) / elapsed:.2f} CPU s/s"
        )


if __name__ == "__main__":
    asyncio.run(main())
