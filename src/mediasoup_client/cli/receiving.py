"""What a consuming peer does with its consumers' tracks: count the decoded frames, save one
video frame as PNG (``--snapshot``) and record one video and one audio track (``--record``)."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..consumer import Consumer
from ..signaling.room_client import RoomClient
from .options import CliError

logger = logging.getLogger(__name__)

# A recording's streams are fixed when it starts: wait this long after the first consumer for
# the producer's other kind (audio with video) before starting without it.
RECORD_GATHER_SECONDS = 2.0
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
# Frames waiting for the recording's writer thread, per track: about a second of media. When
# the disk or the CPU cannot keep up, the oldest waiting frame is dropped (and counted).
RECORD_QUEUE_FRAMES = {"video": 30, "audio": 50}


def checkOutputPath(path: str, option: str) -> None:
    """Fail before joining when an output file cannot be written."""
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise CliError(f"{option}: directory {parent} does not exist")


def savePng(frame: Any, path: str) -> None:
    """Encode one decoded ``av.VideoFrame`` as a PNG file (PyAV's png encoder; no Pillow)."""
    import av

    rgb = frame.reformat(format="rgb24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = rgb.width, rgb.height, "rgb24"
    packets = list(codec.encode(rgb)) + list(codec.encode(None))
    Path(path).expanduser().write_bytes(b"".join(bytes(packet) for packet in packets))


class Recording:
    """One video and one audio track into a file with PyAV. Own muxing rather than aiortc's
    MediaRecorder: that one writes the file header when the first packet of any track arrives,
    before the video size is known, and then records no video at all.

    Encoding and muxing run in one writer thread (a 640x480 H264 frame takes 20-30 ms: on
    the event loop it starved the receive path); the event loop only hands decoded frames
    over, through a bounded queue per track whose oldest frame is dropped, and counted in
    ``framesDropped``, when the writer falls behind."""

    def __init__(self, path: str) -> None:
        import av

        self.path = str(Path(path).expanduser())
        try:
            self._container: Any = av.open(self.path, "w")
        except Exception as error:  # unknown extension, unwritable path...
            raise CliError(f"--record {path}: {_firstLine(error)}") from None
        self.started = False
        self.framesWritten: dict[str, int] = {}
        self.framesDropped: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: list[Any] = []
        self._queues: dict[str, deque[tuple[Any, Any]]] = {}
        self._wakeup = threading.Condition()
        self._finishing = False
        self._writer: threading.Thread | None = None

    def start(self, video: tuple[Any, int, int] | None, audio: Any | None) -> None:
        """``video``: (track, width, height) with the size of its decoded frames."""
        self.started = True
        formatName = self._container.format.name
        if video is not None:
            track, width, height = video
            codec = "libvpx" if formatName == "webm" else "libx264"
            stream = self._container.add_stream(codec, rate=30)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            # RTP's clock: layer switches and frame drops keep their real timing.
            stream.codec_context.time_base = VIDEO_TIME_BASE
            self._addTrack("video", track, stream)
        if audio is not None:
            if formatName in ("wav", "wave"):
                codec = "pcm_s16le"
            elif formatName in ("webm", "ogg", "opus"):
                codec = "libopus"
            else:
                codec = "aac"
            self._addTrack("audio", audio, self._container.add_stream(codec, rate=48000))
        self._writer = threading.Thread(target=self._write, name="msc-record", daemon=True)
        self._writer.start()

    def stats(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "framesWritten": dict(self.framesWritten),
            "framesDropped": dict(self.framesDropped),
            "framesQueued": {kind: len(queue) for kind, queue in self._queues.items()},
        }

    def _addTrack(self, kind: str, track: Any, stream: Any) -> None:
        self._streams.append(stream)
        self._queues[kind] = deque()
        self.framesWritten[kind] = self.framesDropped[kind] = 0
        self._tasks.append(asyncio.ensure_future(self._read(kind, track, stream)))

    async def _read(self, kind: str, track: Any, stream: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        queue = self._queues[kind]
        first: int | None = None
        last = -1
        try:
            while True:
                frame = await track.recv()
                if frame.pts is None:
                    continue
                # Each track starts at 0; timestamps must rise strictly for the encoders.
                first = frame.pts if first is None else first
                pts = max(frame.pts - first, last + 1)
                last = frame.pts = pts
                with self._wakeup:
                    if len(queue) >= RECORD_QUEUE_FRAMES[kind]:
                        queue.popleft()
                        self.framesDropped[kind] += 1
                    queue.append((stream, frame))
                    self._wakeup.notify()
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception as error:
            logger.warning("recording the %s track stopped: %s", kind, _firstLine(error))

    def _write(self) -> None:
        """The writer thread: encode and mux whatever is queued, oldest first across tracks;
        then flush the encoders and close the file."""
        try:
            while True:
                with self._wakeup:
                    self._wakeup.wait_for(
                        lambda: self._finishing or any(self._queues.values())
                    )
                    waiting = [(k, q) for k, q in self._queues.items() if q]
                    if not waiting:
                        break  # finishing, nothing left
                    kind, queue = min(waiting, key=lambda item: item[1][0][1].time or 0)
                    stream, frame = queue.popleft()
                for packet in stream.encode(frame):
                    self._container.mux(packet)
                self.framesWritten[kind] += 1
            for stream in self._streams:
                for packet in stream.encode(None):
                    self._container.mux(packet)
        except Exception as error:
            logger.warning("finishing the recording failed: %s", _firstLine(error))
        finally:
            with contextlib.suppress(Exception):
                self._container.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        writer = self._writer
        if writer is not None:
            with self._wakeup:
                self._finishing = True
                self._wakeup.notify()
            await asyncio.to_thread(writer.join)
        else:
            with contextlib.suppress(Exception):
                self._container.close()
        dropped = sum(self.framesDropped.values())
        if dropped:
            logger.warning(
                "recording %s: %d frames dropped because writing could not keep up (%s)",
                self.path, dropped, ", ".join(f"{k} {n}" for k, n in self.framesDropped.items()),
            )  # fmt: skip
        if not self.started:
            # Nothing arrived: leave no empty, unplayable file behind.
            with contextlib.suppress(OSError):
                Path(self.path).unlink()


class Receiver:
    """Attach to a RoomClient (before or after its consumers appear)."""

    def __init__(
        self, client: RoomClient, *, record: str | None = None, snapshot: str | None = None
    ) -> None:
        from aiortc.contrib.media import MediaRelay

        self._client = client
        # The relay lets the recording and the frame counter both read one track.
        self._relay = MediaRelay()
        self._snapshotPath = snapshot
        self.snapshotSaved = False
        self._recording = Recording(record) if record is not None else None
        # The first consumer of each kind is what gets recorded.
        self._recordCandidates: dict[str, Consumer] = {}
        self._gathered = False
        self._recordTimer: asyncio.TimerHandle | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Consumer id -> counters of what its track delivered.
        self.frames: dict[str, dict[str, Any]] = {}
        self._closed = False
        client.on("newconsumer", self._onConsumer)
        client.on("consumerclosed", self._onConsumerClosed)
        for consumer in list(client.consumers.values()):
            self._onConsumer(consumer)

    @property
    def recording(self) -> bool:
        return self._recording is not None and self._recording.started

    def recordingStats(self) -> dict[str, Any] | None:
        """What the recording wrote and dropped so far (None without ``--record``)."""
        return self._recording.stats() if self.recording and self._recording else None

    def _onConsumer(self, consumer: Consumer) -> None:
        if self._closed or consumer.id in self._tasks:
            return
        self.frames[consumer.id] = {"kind": consumer.kind, "frames": 0}
        reader = self._relay.subscribe(self._source(consumer))
        self._tasks[consumer.id] = asyncio.ensure_future(self._read(consumer, reader))
        if self._recording is not None and not self._recording.started:
            self._recordCandidates.setdefault(consumer.kind, consumer)
            if self._recordTimer is None:
                loop = asyncio.get_running_loop()
                self._recordTimer = loop.call_later(RECORD_GATHER_SECONDS, self._gatherDone)
            self._maybeStartRecording()

    def _onConsumerClosed(self, consumer: Consumer) -> None:
        task = self._tasks.pop(consumer.id, None)
        if task is not None:
            task.cancel()

    async def _read(self, consumer: Consumer, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        counters = self.frames[consumer.id]
        try:
            while True:
                frame = await track.recv()
                counters["frames"] += 1
                counters["lastFrameAt"] = time.time()
                if consumer.kind == "video":
                    first = "width" not in counters
                    counters["width"], counters["height"] = frame.width, frame.height
                    if self._snapshotPath is not None and not self.snapshotSaved:
                        self._saveSnapshot(frame)
                    if first:
                        self._maybeStartRecording()
                else:
                    counters["sampleRate"] = frame.sample_rate
                    counters["channels"] = len(frame.layout.channels)
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception as error:
            logger.warning("reading the %s consumer failed: %s", consumer.kind, _firstLine(error))
            logger.debug("reading failed", exc_info=True)

    def _saveSnapshot(self, frame: Any) -> None:
        assert self._snapshotPath is not None
        # Marked first: a failing encoder must not be retried on every frame.
        self.snapshotSaved = True
        try:
            savePng(frame, self._snapshotPath)
        except Exception as error:
            self.snapshotSaved = False
            self._snapshotPath = None
            logger.warning("--snapshot: cannot save the frame: %s", _firstLine(error))

    def _gatherDone(self) -> None:
        self._gathered = True
        self._maybeStartRecording()

    def _maybeStartRecording(self) -> None:
        """Start once both kinds are there (or the gathering time is over) and the video
        size is known from its first decoded frame."""
        recording = self._recording
        if recording is None or recording.started or self._closed:
            return
        candidates = self._recordCandidates
        if not candidates or (len(candidates) < 2 and not self._gathered):
            return
        video = candidates.get("video")
        size = self.frames.get(video.id, {}) if video is not None else {}
        if video is not None and "width" not in size:
            return
        if self._recordTimer is not None:
            self._recordTimer.cancel()
        audio = candidates.get("audio")
        recording.start(
            (self._reader(video), size["width"], size["height"]) if video is not None else None,
            self._reader(audio) if audio is not None else None,
        )

    def _reader(self, consumer: Consumer) -> Any:
        return self._relay.subscribe(self._source(consumer))

    @staticmethod
    def _source(consumer: Consumer) -> Any:
        return consumer.track  # an aiortc MediaStreamTrack

    async def close(self) -> None:
        """Stop reading and finish the recording (its file is only complete after this)."""
        if self._closed:
            return
        self._closed = True
        if self._recordTimer is not None:
            self._recordTimer.cancel()
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(BaseException):
                await task
        if self._recording is not None:
            await self._recording.close()


def _firstLine(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
