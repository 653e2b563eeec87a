"""Program-friendly media: frames in and out as numpy arrays, and pre-encoded passthrough.

- ``VideoSource(width, height)`` / ``AudioSource(sampleRate, channels, queueMs=...)``: tracks
  the application pushes into (``captureFrame``), valid ``track=`` for ``produce()``.
- ``VideoStream(track, format=...)`` / ``AudioStream(track, sampleRate, channels, frameMs)``:
  async iterators of numpy arrays over a received track (a consumer's).
- ``EncodedVideoSource(*sources)`` / ``EncodedAudioSource(source)`` / ``EncodedMediaPlayer``:
  H264, VP8 and Opus sent as they are, with no decoding and no encoding.

``test_sources`` has synthetic tracks for tests (not part of this API).
"""

from __future__ import annotations

from .audio_source import AudioSource
from .encoded import EncodedPacket, EncodedStreamInfo, Rendition
from .encoded_sources import EncodedAudioSource, EncodedMediaPlayer, EncodedVideoSource
from .streams import AudioStream, AudioStreamFrame, VideoStream, VideoStreamFrame
from .video_source import VideoSource

__all__ = [
    "AudioSource",
    "AudioStream",
    "AudioStreamFrame",
    "EncodedAudioSource",
    "EncodedMediaPlayer",
    "EncodedPacket",
    "EncodedStreamInfo",
    "EncodedVideoSource",
    "Rendition",
    "VideoSource",
    "VideoStream",
    "VideoStreamFrame",
]
