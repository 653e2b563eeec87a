"""What a consuming peer does with its consumers' tracks: count the decoded frames, save one
video frame as PNG (``--snapshot``) and record everything to a file (``--record``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from ..consumer import Consumer
from ..signaling.room_client import RoomClient
from .options import CliError

logger = logging.getLogger(__name__)

# A recording's streams are fixed when it starts: wait this long after the first consumer for
# the producer's other kind (audio with video) before starting it.
RECORD_GATHER_SECONDS = 2.0


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


class Receiver:
    """Attach to a RoomClient (before or after its consumers appear)."""

    def __init__(
        self, client: RoomClient, *, record: str | None = None, snapshot: str | None = None
    ) -> None:
        from aiortc.contrib.media import MediaRelay

        self._client = client
        self._relay = MediaRelay()
        self._snapshotPath = snapshot
        self.snapshotSaved = False
        self._recordPath = record
        self._recorder: Any = None
        self._recordedKinds: set[str] = set()
        self._recordStarted = False
        self._recordTimer: asyncio.TimerHandle | None = None
        self._recorderStart: asyncio.Future[None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Consumer id -> counters of what its track delivered.
        self.frames: dict[str, dict[str, Any]] = {}
        self._closed = False
        if record is not None:
            from aiortc.contrib.media import MediaRecorder

            try:
                self._recorder = MediaRecorder(str(Path(record).expanduser()))
            except Exception as error:  # PyAV: unknown extension, unwritable path...
                raise CliError(f"--record {record}: {_firstLine(error)}") from None
        client.on("newconsumer", self._onConsumer)
        client.on("consumerclosed", self._onConsumerClosed)
        for consumer in list(client.consumers.values()):
            self._onConsumer(consumer)

    @property
    def recording(self) -> bool:
        return self._recordStarted

    def _onConsumer(self, consumer: Consumer) -> None:
        if self._closed or consumer.id in self._tasks:
            return
        self.frames[consumer.id] = {"kind": consumer.kind, "frames": 0}
        # The relay lets the recorder and our frame counter both read the one track.
        source: Any = consumer.track  # an aiortc MediaStreamTrack
        reader = self._relay.subscribe(source)
        self._tasks[consumer.id] = asyncio.ensure_future(self._read(consumer, reader))
        if self._recorder is not None:
            self._addToRecording(consumer)

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
                    counters["width"], counters["height"] = frame.width, frame.height
                    if self._snapshotPath is not None and not self.snapshotSaved:
                        self._saveSnapshot(frame)
                else:
                    counters["sampleRate"] = frame.sample_rate
                    counters["channels"] = len(frame.layout.channels)
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception:
            logger.warning("reading the %s consumer %s failed", consumer.kind, consumer.id)
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

    def _addToRecording(self, consumer: Consumer) -> None:
        if self._recordStarted:
            logger.info("not recording the %s consumer %s: recording started", *_ids(consumer))
            return
        if consumer.kind in self._recordedKinds:
            logger.info("already recording a %s track; skipping %s", *_ids(consumer))
            return
        self._recordedKinds.add(consumer.kind)
        source: Any = consumer.track
        self._recorder.addTrack(self._relay.subscribe(source))
        if self._recordedKinds >= {"audio", "video"}:
            self._startRecording()
        elif self._recordTimer is None:
            loop = asyncio.get_running_loop()
            self._recordTimer = loop.call_later(RECORD_GATHER_SECONDS, self._startRecording)

    def _startRecording(self) -> None:
        if self._recordStarted or self._closed:
            return
        self._recordStarted = True
        if self._recordTimer is not None:
            self._recordTimer.cancel()
        self._recorderStart = asyncio.ensure_future(self._recorder.start())

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
        if self._recorder is not None:
            try:
                await self._recorder.stop()
            except Exception as error:
                logger.warning("finishing the recording failed: %s", _firstLine(error))
            if not self._recordStarted and self._recordPath is not None:
                # Nothing arrived: leave no empty, unplayable file behind.
                with contextlib.suppress(OSError):
                    Path(self._recordPath).expanduser().unlink()


def _ids(consumer: Consumer) -> tuple[str, str]:
    return consumer.kind, consumer.id


def _firstLine(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
