"""What a pre-encoded source hands the send path: encoded packets and a description of the
stream (codec, H264 profile, renditions). Plain data, no I/O: the send path reads these without
knowing where they came from (a file, a network stream, the application's own encoder).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

PASSTHROUGH_VIDEO_CODECS = ("video/H264", "video/VP8")
PASSTHROUGH_AUDIO_CODECS = ("audio/opus",)


@dataclass(slots=True)
class EncodedPacket:
    """One encoded access unit: a whole video frame (H264 as Annex B, VP8 as one frame) or
    one Opus packet.

    ``timestamp`` is its presentation time in seconds (any origin, never decreasing within
    a rendition); ``keyFrame`` None means "look at the bitstream"; ``layer`` is the rendition
    (simulcast: 0 the lowest, as ``encodings``)."""

    data: bytes
    timestamp: float
    keyFrame: bool | None = None
    layer: int = 0


@dataclass(frozen=True, slots=True)
class Rendition:
    """One pre-encoded rendition of a video source (sizes when known)."""

    width: int | None = None
    height: int | None = None


@dataclass(slots=True)
class EncodedStreamInfo:
    """What a pre-encoded track sends: the RTP codec (``mimeType`` as mediasoup spells it), the
    H264 ``profile-level-id`` of its bitstream, Opus channels, one ``Rendition`` per simulcast
    layer (lowest first), and where the send path reports key-frame requests (the layer, or
    None for every layer)."""

    kind: str
    mimeType: str
    profileLevelId: str | None = None
    channels: int = 1
    renditions: list[Rendition] = field(default_factory=lambda: [Rendition()])
    onKeyFrameRequest: Callable[[int | None], None] | None = None


def encodedStreamInfo(track: object) -> EncodedStreamInfo | None:
    """The stream a pre-encoded track sends, or None for a track of raw frames."""
    info = getattr(track, "encodedStream", None)
    return info if isinstance(info, EncodedStreamInfo) else None
