"""``mediasoup-client produce --file F --passthrough``: the sources it opens and the options it
refuses, each as one line on stderr (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediasoup_client.cli.main import main
from mediasoup_client.cli.options import CliError
from mediasoup_client.cli.sources import openSources
from mediasoup_client.media import EncodedAudioSource, EncodedVideoSource
from mediasoup_client.media.test_sources import writeTestFile


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    return Path(writeTestFile(str(folder / "clip.mp4"), seconds=1.0, audio=True))


def test_passthrough_sources_are_the_files_encoded_tracks(clip: Path) -> None:
    sources = openSources(file=str(clip), passthrough=True, loop=True)
    try:
        assert isinstance(sources.video, EncodedVideoSource)
        assert isinstance(sources.audio, EncodedAudioSource)
        assert "passthrough video/H264" in sources.label
    finally:
        sources.stop()
    sources = openSources(file=str(clip), passthrough=True, audio=False)
    assert sources.audio is None and sources.video is not None
    sources.stop()


def test_passthrough_source_errors(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(CliError, match="--passthrough needs --file"):
        openSources(passthrough=True)
    with pytest.raises(CliError, match="no such media file"):
        openSources(file=str(tmp_path / "missing.mp4"), passthrough=True)
    bframes = writeTestFile(str(tmp_path / "b.mp4"), seconds=0.5, profile="high", bframes=2)
    with pytest.raises(CliError, match=r"cannot send .* as it is: .*B-frames"):
        openSources(file=bframes, passthrough=True)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give --file"),
        (["--file", "x.mp4", "--simulcast", "2"], "--simulcast would need an encoder"),
        (["--file", "x.mp4", "--max-bitrate", "1M"], "--max-bitrate would need an encoder"),
        (["--file", "x.mp4", "--opus-dtx"], "--opus-dtx would need an encoder"),
    ],
)
def test_passthrough_refuses_what_needs_an_encoder_in_one_line(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["produce", "--passthrough", *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
