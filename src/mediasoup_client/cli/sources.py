"""Where the produced media comes from: the built-in test pattern and tone, a media file or
network stream (PyAV through aiortc's MediaPlayer), or a camera and microphone."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .options import CliError

DEFAULT_WIDTH = 640
DEFAULT_HEIGHT = 480
DEFAULT_FPS = 30.0
TONE_FREQUENCY = 440.0


@dataclass
class Sources:
    video: Any | None  # aiortc MediaStreamTrack
    audio: Any | None
    label: str
    players: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every track (producers stop theirs too; stopping twice is harmless)."""
        for track in (self.video, self.audio):
            if track is not None:
                with contextlib.suppress(Exception):
                    track.stop()


def openSources(
    *,
    file: str | None = None,
    device: bool = False,
    videoDevice: str = "/dev/video0",
    audioDevice: str = "default",
    audio: bool = True,
    video: bool = True,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    stereo: bool = False,
    loop: bool = False,
    passthrough: bool = False,
) -> Sources:
    if not audio and not video:
        raise CliError("--no-audio and --no-video leave nothing to produce")
    if file is not None and device:
        raise CliError("give either --file or --device, not both")
    if passthrough and file is None:
        raise CliError("--passthrough needs --file")
    if file is not None and passthrough:
        return _passthroughSources(file, audio=audio, video=video, loop=loop)
    if file is not None:
        return _fileSources(file, audio=audio, video=video, loop=loop)
    w, h, rate = _size(width, height, fps)
    if device:
        return _deviceSources(
            videoDevice, audioDevice, audio=audio, video=video, width=w, height=h, fps=rate
        )
    return _testSources(audio=audio, video=video, width=w, height=h, fps=rate, stereo=stereo)


def _size(width: int | None, height: int | None, fps: float | None) -> tuple[int, int, float]:
    w = DEFAULT_WIDTH if width is None else width
    h = DEFAULT_HEIGHT if height is None else height
    rate = DEFAULT_FPS if fps is None else fps
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise CliError(f"--width/--height must be even and at least 16 (got {w}x{h})")
    if not 0 < rate <= 120:
        raise CliError(f"--fps must be between 0 and 120 (got {rate:g})")
    return w, h, rate


def _testSources(
    *, audio: bool, video: bool, width: int, height: int, fps: float, stereo: bool
) -> Sources:
    from ..media.test_sources import PatternVideoTrack, ToneAudioTrack

    parts = []
    videoTrack = audioTrack = None
    if video:
        videoTrack = PatternVideoTrack(width, height, fps)
        parts.append(f"test pattern {width}x{height}@{fps:g}")
    if audio:
        audioTrack = ToneAudioTrack(TONE_FREQUENCY, channels=2 if stereo else 1)
        parts.append(f"{TONE_FREQUENCY:g} Hz tone" + (" (stereo)" if stereo else ""))
    return Sources(video=videoTrack, audio=audioTrack, label=" + ".join(parts))


def _fileSources(path: str, *, audio: bool, video: bool, loop: bool) -> Sources:
    isUrl = "://" in path
    if not isUrl and not Path(path).is_file():
        raise CliError(f"no such media file: {path}")
    player = _openPlayer(path, loop=loop and not isUrl)
    videoTrack = player.video if video else None
    audioTrack = player.audio if audio else None
    if videoTrack is None and audioTrack is None:
        _stopPlayer(player)
        wanted = "audio or video" if audio and video else "audio" if audio else "video"
        raise CliError(f"{path} has no {wanted} stream")
    # Unused tracks of the player must stop too, or its reader thread runs forever.
    for unused in (player.video if not video else None, player.audio if not audio else None):
        if unused is not None:
            unused.stop()
    return Sources(video=videoTrack, audio=audioTrack, label=path, players=[player])


def _passthroughSources(path: str, *, audio: bool, video: bool, loop: bool) -> Sources:
    """The file's video (H264/VP8) and Opus audio as they are; other audio is decoded and
    encoded to Opus (the router takes Opus only)."""
    from ..errors import UnsupportedError
    from ..media import EncodedMediaPlayer

    isUrl = "://" in path
    if not isUrl and not Path(path).is_file():
        raise CliError(f"no such media file: {path}")
    try:
        player = EncodedMediaPlayer(path, loop=loop and not isUrl, video=video, audio=audio)
    except (TypeError, UnsupportedError) as error:
        raise CliError(f"cannot send {path} as it is: {error}") from None
    if video and player.video is None:
        player.stop()
        raise CliError(f"{path} has no video stream to send as it is")
    parts = [f"{path} (passthrough {player.video.mimeType})" if player.video else path]
    sources = Sources(video=player.video, audio=player.audio, label="", players=[])
    if audio and player.audio is None and player.audioCodec is not None:
        # Not Opus: this part is decoded and encoded.
        decoded = _openPlayer(path, loop=loop and not isUrl)
        if decoded.video is not None:
            decoded.video.stop()
        sources.audio = decoded.audio
        sources.players.append(decoded)
        parts.append(f"{player.audioCodec} audio encoded to Opus")
    if sources.video is None and sources.audio is None:
        player.stop()
        raise CliError(f"{path} has no audio stream")
    sources.label = ", ".join(parts)
    return sources


def _deviceSources(
    videoDevice: str,
    audioDevice: str,
    *,
    audio: bool,
    video: bool,
    width: int,
    height: int,
    fps: float,
) -> Sources:
    if not sys.platform.startswith("linux"):
        raise CliError("--device supports Linux (v4l2 camera, ALSA microphone) only")
    players: list[Any] = []
    videoTrack = audioTrack = None
    parts = []
    try:
        if video:
            if not os.path.exists(videoDevice):
                raise CliError(f"no camera at {videoDevice} (use --video-device or --no-video)")
            options = {"video_size": f"{width}x{height}", "framerate": f"{fps:g}"}
            camera = _openPlayer(videoDevice, format="v4l2", options=options, what="camera")
            players.append(camera)
            videoTrack = camera.video
            parts.append(f"camera {videoDevice}")
        if audio:
            microphone = _openPlayer(audioDevice, format="alsa", what="microphone (ALSA)")
            players.append(microphone)
            audioTrack = microphone.audio
            parts.append(f"microphone {audioDevice}")
    except BaseException:
        for player in players:
            _stopPlayer(player)
        raise
    return Sources(video=videoTrack, audio=audioTrack, label=" + ".join(parts), players=players)


def _openPlayer(
    source: str,
    *,
    format: str | None = None,
    options: dict[str, str] | None = None,
    loop: bool = False,
    what: str = "media",
) -> Any:
    from aiortc.contrib.media import MediaPlayer

    # Device libraries (ALSA above all) print their own errors: the reason is in ours.
    quiet = _quietStderr() if format in ("alsa", "v4l2") else contextlib.nullcontext()
    try:
        with quiet:
            return MediaPlayer(source, format=format, options=options, loop=loop)
    except Exception as error:  # PyAV's FFmpegError subclasses, OSError, ValueError...
        raise CliError(f"cannot open {what} {source}: {_reason(error)}") from None


@contextlib.contextmanager
def _quietStderr() -> Iterator[None]:
    """Silence file descriptor 2 (C libraries write there directly)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _stopPlayer(player: Any) -> None:
    for track in (player.audio, player.video):
        if track is not None:
            with contextlib.suppress(Exception):
                track.stop()


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
