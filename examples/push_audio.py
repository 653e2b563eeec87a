"""A voice agent's audio path: push samples, barge in, receive 20 ms chunks as arrays.

The "agent" speaks in sentences (here: tone bursts at 16 kHz, pushed in 10 ms chunks as a
text-to-speech engine would produce them) into an ``AudioSource``; ``captureFrame`` waits while
its queue is full, so the agent never runs ahead of real time. Halfway through a sentence the
"user" interrupts and the agent drops what it queued (``clearQueue``). The other peer reads its
consumer with ``AudioStream(track, 16000, 1, 20)`` (320 samples per item, as speech recognisers
like them) and prints the loudest frequency it hears each second.

    python examples/push_audio.py [ROOM_URL] [--seconds 10]
"""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
from _common import arguments, consumerOf, room

from mediasoup_client.media import AudioSource, AudioStream

RATE = 16000
SENTENCES = [330.0, 440.0, 550.0]  # one "voice" per sentence, 2 s each


async def speak(source: AudioSource) -> None:
    for number, frequency in enumerate(SENTENCES * 100):
        samples = np.arange(2 * RATE) / RATE
        sentence = (0.4 * np.sin(2 * math.pi * frequency * samples)).astype(np.float32)
        for start in range(0, len(sentence), 160):  # 10 ms chunks
            await source.captureFrame(sentence[start : start + 160])
        if number == 1:
            # The user barged in: stop talking at once, then say the next sentence.
            source.clearQueue()
            print("agent: interrupted, queue cleared", flush=True)
        else:
            await source.waitForPlayout()


async def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    async with room(args.url) as (publisher, subscriber):
        source = AudioSource(RATE, 1, queueMs=500)
        speaking = asyncio.ensure_future(speak(source))
        producer = await publisher.produce(source)
        consumer = await consumerOf(subscriber, producer.id)
        started = time.monotonic()
        second: list[np.ndarray] = []
        chunks = 0
        async with AudioStream(consumer.track, RATE, 1, 20) as stream:
            async for chunk in stream:
                # chunk.data: int16 (320, 1); chunk.rtpTimestamp, chunk.timestamp too.
                chunks += 1
                second.append(chunk.data[:, 0])
                if len(second) == 50:
                    signal = np.concatenate(second).astype(float)
                    loudest = np.argmax(np.abs(np.fft.rfft(signal))) * RATE / len(signal)
                    level = math.sqrt(float(np.mean(signal**2))) / 32767
                    print(
                        f"{time.monotonic() - started:4.1f} s: hearing {loudest:5.0f} Hz at "
                        f"level {level:.2f} ({chunk.samples} samples per chunk)",
                        flush=True,
                    )
                    second = []
                if time.monotonic() - started >= args.seconds:
                    break
            dropped = stream.framesDropped
        speaking.cancel()
        print(
            f"done: {chunks} chunks of 20 ms received ({dropped} dropped), "
            f"{source.samplesDelivered / RATE:.1f} s spoken, {source.samplesCleared / RATE:.1f} "
            "s cleared by the barge-in"
        )


if __name__ == "__main__":
    asyncio.run(main())
