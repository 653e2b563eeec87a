"""The consume command's outputs: recordings and snapshots."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from mediasoup_client.cli.options import (
    CliError,
)
from mediasoup_client.cli.receiving import Recording, savePng


def test_save_png(tmp_path: Path) -> None:
    frame = av.VideoFrame.from_ndarray(np.zeros((48 * 3 // 2, 64), dtype=np.uint8), "yuv420p")
    path = tmp_path / "snap.png"
    savePng(frame, str(path))
    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("extension", "codecs"), [("mkv", {"h264", "aac"}), ("webm", {"vp8", "opus"})]
)
async def test_recording_writes_video_and_audio(
    tmp_path: Path, extension: str, codecs: set[str]
) -> None:
    from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack

    path = tmp_path / f"out.{extension}"
    recording = Recording(str(path))
    video = FiniteTrack(PatternVideoTrack(160, 120, 30, paced=False), 20)
    audio = FiniteTrack(ToneAudioTrack(paced=False), 50)
    recording.start((video, 160, 120), audio)
    await asyncio.wait(recording._tasks)  # both tracks ended
    await recording.close()
    with av.open(str(path)) as container:
        assert {s.codec_context.name for s in container.streams} == codecs
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 20
    assert recording.stats()["framesWritten"] == {"video": 20, "audio": 50}


async def test_recording_drops_and_counts_what_the_writer_cannot_take(tmp_path: Path) -> None:
    # A writer that cannot keep up (a slow disk): the event loop never waits for it, the
    # queue stays bounded and the oldest frames are dropped and counted.

    from mediasoup_client.cli.receiving import RECORD_QUEUE_FRAMES
    from mediasoup_client.media.test_sources import PatternVideoTrack

    recording = Recording(str(tmp_path / "out.mkv"))
    gate = threading.Event()
    container = recording._container

    class SlowContainer:
        def __getattr__(self, name: str) -> Any:
            return getattr(container, name)

        def mux(self, packet: Any) -> None:
            gate.wait(10)
            container.mux(packet)

    recording._container = SlowContainer()
    video = FiniteTrack(PatternVideoTrack(160, 120, 30, paced=False), 200)
    recording.start((video, 160, 120), None)
    await asyncio.wait(recording._tasks)
    stats = recording.stats()
    assert stats["framesQueued"]["video"] <= RECORD_QUEUE_FRAMES["video"]
    # The writer took a few frames into the encoder's lookahead before it blocked.
    assert stats["framesDropped"]["video"] > 100
    gate.set()
    await recording.close()
    written, dropped = recording.framesWritten["video"], recording.framesDropped["video"]
    assert written + dropped == 200 and written >= RECORD_QUEUE_FRAMES["video"]


class FiniteTrack:
    """A track that ends after ``frames`` frames (the recording then has all of them)."""

    def __init__(self, source: Any, frames: int) -> None:
        self.kind = source.kind
        self._source = source
        self._left = frames

    async def recv(self) -> Any:
        from aiortc.mediastreams import MediaStreamError

        if self._left <= 0:
            raise MediaStreamError
        self._left -= 1
        return await self._source.recv()


async def test_recording_without_media_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mkv"
    recording = Recording(str(path))
    await recording.close()
    assert not path.exists()
    with pytest.raises(CliError, match="--record"):
        Recording(str(tmp_path / "out.unknownformat"))
