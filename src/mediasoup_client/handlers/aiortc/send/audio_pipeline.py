"""Audio: one track, one Opus encoder, one RTP stream.

Source frames wait in a short bounded queue (the oldest is dropped if encoding falls behind)
and are encoded in batches: one or two frames on the event loop, a backlog in a worker thread.
RTP timestamps count encoded samples; after a gap (start, resume, new track) they jump by the
wall-clock time that passed and the first packet carries the marker bit.

DTX (``opusDtx`` / ``usedtx`` or the encoding's ``dtx``): libopus as built here has no DTX
switch, so the sender does it: once the input is silent it sends one packet, then one comfort
packet every 400 ms of media time, and nothing else until sound returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError

from ..rtp_port import RtpPort
from .clock import MediaClock
from .encoders import OPUS_SAMPLE_RATE, EncodedAudio, OpusEncoder, OpusSettings
from .rtp_stream import RtpStream
from .workers import audioExecutor

logger = logging.getLogger(__name__)

DTX_COMFORT_INTERVAL = 0.4  # seconds
# About one second of 20 ms source frames.
_QUEUE_FRAMES = 50
# Batches this small are encoded on the event loop: a 20 ms Opus frame takes ~0.15 ms, less
# than a hand-off to a worker thread (wake-up, GIL, call_soon_threadsafe) costs a busy process.
# Larger batches (a backlog) still go to the audio threads.
INLINE_FRAMES = 2


def _encodeJob(
    encoder: OpusEncoder, frames: list[av.AudioFrame], reset: bool
) -> list[EncodedAudio]:
    if reset:
        encoder.reset()
    out: list[EncodedAudio] = []
    for frame in frames:
        out.extend(encoder.encode(frame))
    return out


class AudioPipeline:
    def __init__(
        self,
        *,
        port: RtpPort,
        track: Any,
        stream: RtpStream,
        settings: OpusSettings,
        dtx: bool,
        onTrackEnded: Callable[[Any], None],
    ) -> None:
        self._port = port
        self._track = track
        self.stream = stream
        self.settings = settings
        self.dtx = dtx
        self._on_track_ended = onTrackEnded
        self._encoder = OpusEncoder(settings)
        self._clock = MediaClock(OPUS_SAMPLE_RATE, strict=False)
        self._queue: deque[av.AudioFrame] = deque(maxlen=_QUEUE_FRAMES)
        self._wakeup = asyncio.Event()
        self._paused = False
        self._started = False
        self._gap = True  # the encoder must forget buffered input
        self._resync = True  # the next packet sent starts a new run of timestamps
        self._epoch = 0
        self._in_dtx = False
        self._last_comfort = 0
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        # Stats.
        self.framesDropped = 0
        self.packetsSuppressed = 0  # not sent because of DTX

    @property
    def paused(self) -> bool:
        return self._paused

    def start(self) -> None:
        self._started = True
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send())
        self._startReader()

    async def stop(self) -> None:
        self._started = False
        self._epoch += 1
        await self._stopReader()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        self._queue.clear()

    def pause(self) -> None:
        self._paused = True
        self._discard()

    def resume(self) -> None:
        self._paused = False

    async def replaceTrack(self, track: Any) -> None:
        await self._stopReader()
        self._track = track
        self._discard()
        self._startReader()

    def _discard(self) -> None:
        # Whatever is queued or being encoded belongs to before the gap: never send it.
        self._epoch += 1
        self._queue.clear()
        self._gap = True
        self._resync = True

    def _startReader(self) -> None:
        if self._started and self._track is not None and self._reader is None:
            self._reader = asyncio.ensure_future(self._read(self._track))

    async def _stopReader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def _read(self, track: Any) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self._on_track_ended(track)
                return
            except Exception:
                # A broken source is as good as ended: say so rather than die silently.
                logger.exception("reading the %s track failed", track.kind)
                self._on_track_ended(track)
                return
            if not isinstance(frame, av.AudioFrame) or self._paused:
                continue
            if not self._port.connected:
                continue
            if len(self._queue) == self._queue.maxlen:
                self.framesDropped += 1
            self._queue.append(frame)
            self._wakeup.set()

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        executor = audioExecutor()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._queue:
                continue
            frames = list(self._queue)
            self._queue.clear()
            epoch = self._epoch
            gap, self._gap = self._gap, False
            try:
                if len(frames) <= INLINE_FRAMES:
                    encoded = _encodeJob(self._encoder, frames, gap)
                else:
                    encoded = await loop.run_in_executor(
                        executor, _encodeJob, self._encoder, frames, gap
                    )
            except Exception:
                logger.exception("audio encoding failed")
                self._gap = True
                continue
            if epoch != self._epoch:
                continue
            try:
                for packet in encoded:
                    await self._sendPacket(packet)
                    if epoch != self._epoch:
                        break
            except Exception:
                logger.exception("sending audio failed")

    async def _sendPacket(self, packet: EncodedAudio) -> None:
        now = time.monotonic()
        talkSpurtStart = False
        if self._resync:
            # First packet after a gap (the encoder may have buffered the first frames).
            self._resync = False
            self._clock.skipWallTime(now, packet.samples)
            self._in_dtx = False
            talkSpurtStart = True
        timestamp = self._clock.advance(packet.samples, now)
        if self.dtx and packet.silent:
            comfort_due = timestamp - self._last_comfort >= DTX_COMFORT_INTERVAL * OPUS_SAMPLE_RATE
            if self._in_dtx and not comfort_due:
                self.packetsSuppressed += 1
                return
            self._in_dtx = True
            self._last_comfort = timestamp
        elif self._in_dtx:
            # Sound is back after DTX: a new talk spurt.
            self._in_dtx = False
            talkSpurtStart = True
        await self.stream.sendFrame(
            [packet.payload],
            timestamp=timestamp,
            captureTime=now,
            talkSpurtStart=talkSpurtStart,
            audioLevel=packet.level if self.stream.writesAudioLevel else None,
            voice=not packet.silent,
        )
