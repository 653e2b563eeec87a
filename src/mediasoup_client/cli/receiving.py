"""What a consuming peer does with its consumers' tracks: count the decoded frames, save one
video frame as PNG (``--snapshot``) and record one video and one audio track (``--record``)."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
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
    before the video size is known, and then records no video at all."""

    def __init__(self, path: str) -> None:
        import av

        self.path = str(Path(path).expanduser())
        try:
            self._container: Any = av.open(self.path, "w")
        except Exception as error:  # unknown extension, unwritable path...
            raise CliError(f"--record {path}: {_firstLine(error)}") from None
        self.started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: list[Any] = []

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
            self._addTrack(track, stream)
        if audio is not None:
            if formatName in ("wav", "wave"):
                codec = "pcm_s16le"
            elif formatName in ("webm", "ogg", "opus"):
                codec = "libopus"
            else:
                codec = "aac"
            self._addTrack(audio, self._container.add_stream(codec, rate=48000))

    def _addTrack(self, track: Any, stream: Any) -> None:
        self._streams.append(stream)
        self._tasks.append(asyncio.ensure_future(self._run(track, stream)))

    async def _run(self, track: Any, stream: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

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
                for packet in stream.encode(frame):
                    self._container.mux(packet)
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception as error:
            logger.warning("recording the %s track stopped: %s", track.kind, _firstLine(error))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        try:
            for stream in self._streams:
                for packet in stream.encode(None):
                    self._container.mux(packet)
        except Exception as error:
            logger.warning("finishing the recording failed: %s", _firstLine(error))
        finally:
            with contextlib.suppress(Exception):
                self._container.close()
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
