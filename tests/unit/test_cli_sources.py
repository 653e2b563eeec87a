"""What the produce command sends: test pattern, media file, devices (errors in one line)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from mediasoup_client.cli.options import (
    CliError,
)
from mediasoup_client.cli.sources import Sources, openSources


def test_sources_errors(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="no such media file"):
        openSources(file=str(tmp_path / "missing.mp4"))
    with pytest.raises(CliError, match="nothing to produce"):
        openSources(audio=False, video=False)
    with pytest.raises(CliError, match="either --file or --device"):
        openSources(file="x", device=True)
    with pytest.raises(CliError, match="even"):
        openSources(width=641)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a media file" * 10)
    with pytest.raises(CliError, match="cannot open"):
        openSources(file=str(garbage))
    with pytest.raises(CliError, match="no camera"):
        openSources(device=True, videoDevice=str(tmp_path / "video99"))


def test_file_source(tmp_path: Path) -> None:
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(5):
            frame = av.VideoFrame.from_ndarray(
                np.full((48, 64, 3), index * 40, dtype=np.uint8), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    sources = openSources(file=str(path))
    try:
        assert sources.video is not None and sources.audio is None
    finally:
        sources.stop()
    with pytest.raises(CliError, match="has no audio stream"):
        openSources(file=str(path), video=False)


def test_test_pattern_sources() -> None:
    sources = openSources(width=320, height=240, fps=15, audio=False)
    try:
        assert isinstance(sources, Sources)
        assert sources.audio is None and sources.video is not None
        assert "320x240@15" in sources.label
    finally:
        sources.stop()
