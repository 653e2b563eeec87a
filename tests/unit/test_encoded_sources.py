"""Pre-encoded sources read from files made here with PyAV (never committed): H264 from MP4 as
Annex B with SPS/PPS before every IDR, VP8 from WebM, Opus from WebM/MP4, looping with
timestamps that keep increasing, simulcast renditions, the application's own packets, and the
files and packets that are refused (B-frames, no video, other codecs, timestamps backwards)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiortc.mediastreams import MediaStreamError

from mediasoup_client import UnsupportedError
from mediasoup_client.media import (
    EncodedAudioSource,
    EncodedMediaPlayer,
    EncodedPacket,
    EncodedVideoSource,
)
from mediasoup_client.media.bitstream import (
    annexBUnits,
    h264StartsWithSps,
    isAnnexB,
    nalType,
    opusPacketSamples,
)
from mediasoup_client.media.test_sources import writeTestFile


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    files = {
        "h264": ("clip.mp4", {}),
        "h264small": ("small.mp4", {"width": 160, "height": 120}),
        "main": ("main.mp4", {"profile": "main"}),
        "bframes": ("bframes.mp4", {"profile": "high", "bframes": 2}),
        "vp8": ("clip.webm", {"codec": "vp8", "audio": True}),
        "h264opus": ("av.mp4", {"audio": True}),
    }
    made = {}
    for name, (filename, options) in files.items():
        made[name] = Path(
            writeTestFile(str(folder / filename), seconds=2.0, **options)  # type: ignore[arg-type]
        )
    return made


async def readAll(track: Any, limit: int = 10_000) -> list[EncodedPacket]:
    packets: list[EncodedPacket] = []
    try:
        while len(packets) < limit:
            packets.append(await asyncio.wait_for(track.recv(), 10))
    except MediaStreamError:
        pass
    return packets


async def test_h264_from_mp4_is_annex_b_with_parameter_sets_before_every_idr(
    media: dict[str, Path],
) -> None:
    source = EncodedVideoSource(media["h264"], paced=False)
    info = source.encodedStream
    assert info.mimeType == "video/H264" and info.profileLevelId is not None
    assert info.profileLevelId[:2] == "42"  # (constrained) baseline
    assert [(r.width, r.height) for r in info.renditions] == [(320, 240)]
    packets = await readAll(source)
    assert len(packets) == 60 and source.readyState == "ended"
    assert all(isAnnexB(p.data) for p in packets)
    keys = [i for i, p in enumerate(packets) if p.keyFrame]
    assert keys == [0, 30]
    assert all(h264StartsWithSps(packets[i].data) for i in keys)
    assert not any(nalType(u) == 9 for p in packets for u in annexBUnits(p.data))  # no AUD
    assert [round(p.timestamp * 30) for p in packets] == list(range(60))


async def test_a_looping_file_keeps_its_timestamps_increasing(media: dict[str, Path]) -> None:
    source = EncodedVideoSource(media["h264"], paced=False, loop=True)
    packets = await readAll(source, limit=150)
    source.stop()
    assert len(packets) == 150
    assert [round(p.timestamp * 30) for p in packets] == list(range(150))
    assert [i for i, p in enumerate(packets) if p.keyFrame] == [0, 30, 60, 90, 120]


async def test_vp8_from_webm(media: dict[str, Path]) -> None:
    source = EncodedVideoSource(media["vp8"], paced=False)
    assert source.encodedStream.mimeType == "video/VP8"
    assert source.encodedStream.profileLevelId is None
    packets = await readAll(source)
    assert len(packets) == 60 and packets[0].keyFrame and not packets[1].keyFrame


async def test_opus_from_a_file_and_a_players_two_tracks(media: dict[str, Path]) -> None:
    audio = EncodedAudioSource(media["vp8"], paced=False)
    assert audio.encodedStream.mimeType == "audio/opus" and audio.encodedStream.channels == 1
    packets = await readAll(audio)
    assert len(packets) >= 99 and all(opusPacketSamples(p.data) == 960 for p in packets)
    player = EncodedMediaPlayer(media["h264opus"], paced=False)
    assert player.video is not None and player.audio is not None
    assert player.audioCodec == "opus"
    video, sound = await asyncio.gather(readAll(player.video), readAll(player.audio))
    assert len(video) == 60 and len(sound) >= 99


async def test_a_player_without_opus_audio_has_video_only(media: dict[str, Path]) -> None:
    player = EncodedMediaPlayer(media["h264"], paced=False)
    assert player.video is not None and player.audio is None and player.audioCodec is None
    player.stop()


async def test_renditions_of_one_source_are_layers(media: dict[str, Path]) -> None:
    source = EncodedVideoSource(media["h264small"], media["h264"], paced=False)
    sizes = [(r.width, r.height) for r in source.encodedStream.renditions]
    assert sizes == [(160, 120), (320, 240)]
    packets = await readAll(source)
    assert sorted({p.layer for p in packets}) == [0, 1]
    assert len([p for p in packets if p.layer == 0]) == 60


def test_b_frames_are_refused_naming_them(media: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedError, match="B-frames"):
        EncodedVideoSource(media["bframes"])


def test_a_file_without_video_or_missing_is_a_type_error(
    media: dict[str, Path], tmp_path: Path
) -> None:
    import av

    from mediasoup_client.media.test_sources import ToneAudioTrack

    audio_only = tmp_path / "tone.ogg"
    container: Any = av.open(str(audio_only), "w")
    stream = container.add_stream("libopus", rate=48000)
    stream.layout = "mono"
    tone = ToneAudioTrack(paced=False)
    for packet in [*stream.encode(tone.nextFrame()), *stream.encode(None)]:
        container.mux(packet)
    container.close()
    with pytest.raises(TypeError, match="has no video stream"):
        EncodedVideoSource(audio_only)
    with pytest.raises(TypeError, match="no such media file"):
        EncodedVideoSource(tmp_path / "missing.mp4")
    with pytest.raises(TypeError, match="has no audio stream"):
        EncodedAudioSource(media["h264"])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a media file" * 10)
    with pytest.raises(TypeError, match=r"cannot open .*garbage\.mp4"):
        EncodedVideoSource(garbage)


def test_other_video_codecs_are_unsupported(tmp_path: Path) -> None:
    import av
    import numpy as np

    path = tmp_path / "clip.mkv"
    container: Any = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=30)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    frame = av.VideoFrame.from_ndarray(np.zeros((72, 64), np.uint8), format="yuv420p")
    for packet in [*stream.encode(frame), *stream.encode(None)]:
        container.mux(packet)
    container.close()
    with pytest.raises(UnsupportedError, match="its video is mpeg4; a pre-encoded source sends"):
        EncodedVideoSource(path)


def annexB(*units: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


SPS = bytes([0x67, 0x42, 0xC0, 0x1F, 0xAA])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88, 0x84])
SLICE = bytes([0x41, 0x9A, 0x22])


async def test_the_applications_packets_bad_ones_dropped_counted_and_named() -> None:
    async def packets() -> Any:
        yield EncodedPacket(annexB(SPS, PPS, IDR), 0.0)
        yield EncodedPacket(annexB(SLICE), 0.033)
        yield EncodedPacket(annexB(SLICE), 0.020)  # backwards
        yield EncodedPacket(len(SLICE).to_bytes(4, "big") + SLICE, 0.066)  # not Annex B
        yield "not a packet"
        yield EncodedPacket(annexB(SLICE), 0.1)

    source = EncodedVideoSource(packets(), codec="H264", profileLevelId="42e01f")
    assert source.encodedStream.profileLevelId == "42e01f"
    delivered = await readAll(source)
    assert [p.timestamp for p in delivered] == [0.0, 0.033, 0.1]
    assert source.packetsRejected == 3
    assert "EncodedPacket" in str(source.lastError)


async def test_a_plain_iterator_of_vp8_packets_and_key_frame_requests() -> None:
    frames = [EncodedPacket(b"\x10\x02\x00" + bytes(10), 0.0), EncodedPacket(b"\x31" * 8, 0.05)]
    source = EncodedVideoSource(frames, codec="vp8")
    requests: list[int | None] = []
    source.on("keyframerequested", requests.append)
    assert source.encodedStream.onKeyFrameRequest is not None
    source.encodedStream.onKeyFrameRequest(0)
    assert requests == [0] and source.keyFrameRequests == 1
    assert len(await readAll(source)) == 2


def test_iterator_sources_need_a_codec_they_can_send() -> None:
    with pytest.raises(TypeError, match="codec="):
        EncodedVideoSource([])
    with pytest.raises(UnsupportedError, match="vp9"):
        EncodedVideoSource([], codec="vp9")
    with pytest.raises(TypeError, match="profileLevelId"):
        EncodedVideoSource([], codec="h264", profileLevelId="zz")
    with pytest.raises(TypeError, match="channels"):
        EncodedAudioSource([])
    with pytest.raises(TypeError, match="needs a file"):
        EncodedVideoSource()


async def test_opus_iterator_packets_are_checked() -> None:
    source = EncodedAudioSource(
        [
            EncodedPacket(b"\xf8\xff\xfe", 0.0),
            EncodedPacket(b"", 0.02),
            EncodedPacket(b"\xf8\xff\xfe", 0.04),
        ],
        channels=2,
    )
    assert source.encodedStream.channels == 2
    assert [p.timestamp for p in await readAll(source)] == [0.0, 0.04]
    assert source.packetsRejected == 1


def test_renditions_must_share_codec_and_profile(media: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedError, match="share a codec"):
        EncodedVideoSource(media["vp8"], media["h264"])
    with pytest.raises(UnsupportedError, match="share an H264 profile"):
        EncodedVideoSource(media["h264"], media["main"])
