"""The passthrough send path on a fake clock and an in-memory port: pre-encoded H264, VP8 and
Opus packetised as they are (no encoder opened), the router codec chosen from the bitstream,
key frames at every (re)start and key-frame requests handed to the source, simulcast
renditions, and the options that cannot apply refused with a message that names them."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc.codecs.h264 import h264_depayload
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack
from aiortc.rtp import RtcpPsfbPacket, RtpPacket

from mediasoup_client import UnsupportedError
from mediasoup_client.handlers.aiortc.send import encoders
from mediasoup_client.handlers.aiortc.send.config import sendConfig
from mediasoup_client.handlers.aiortc.send.passthrough import (
    checkTrackReplacement,
    passthroughPipelineFactory,
    passthroughSendOptions,
)
from mediasoup_client.handlers.aiortc.send.passthrough_pipeline import SourceClock
from mediasoup_client.handlers.aiortc.send.producer_sender import PauseMode, ProducerSender
from mediasoup_client.handlers.aiortc.send.scheduler import InlineJobRunner, SendScheduler
from mediasoup_client.handlers.handler_interface import HandlerSendOptions
from mediasoup_client.media import (
    EncodedAudioSource,
    EncodedPacket,
    EncodedVideoSource,
)
from mediasoup_client.media.bitstream import opusPacketSamples, opusSilence
from mediasoup_client.media.test_sources import readFrameNumber, writeTestFile
from mediasoup_client.send_parameters import buildSendRtpParameters, normalizeEncodings
from tests.unit.fake_clock import FakeClock
from tests.unit.fake_rtp_port import FakeRtpPort, _extended
from tests.unit.send_harness import ManualReader

_ssrcs = itertools.count(5000)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("passthrough")
    files: dict[str, tuple[str, dict[str, Any]]] = {
        "h264": ("clip.mp4", {}),
        "h264small": ("small.mp4", {"width": 160, "height": 120}),
        "main": ("main.mp4", {"profile": "main"}),
        "high": ("high.mp4", {"profile": "high"}),
        "vp8": ("clip.webm", {"codec": "vp8", "audio": True}),
    }
    return {
        name: Path(writeTestFile(str(folder / filename), seconds=2.0, **options))
        for name, (filename, options) in files.items()
    }


@pytest.fixture(autouse=True)
def noEncoders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails any test of this module that opens an encoder; records codecs opened to write."""
    opened: list[str] = []
    create = av.CodecContext.create

    def guarded(name: Any, mode: Any = "r") -> Any:
        if mode == "w":
            opened.append(str(name))
            raise AssertionError(f"an encoder was opened: {name}")
        return create(name, mode)

    def noVideoEncoder(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a VideoEncoder was created")

    monkeypatch.setattr(av.CodecContext, "create", guarded)
    monkeypatch.setattr(encoders.VideoEncoder, "__init__", noVideoEncoder)
    monkeypatch.setattr(encoders.OpusEncoder, "__init__", noVideoEncoder)
    return opened


async def packetsOf(source: Any, limit: int = 10_000) -> list[EncodedPacket]:
    packets: list[EncodedPacket] = []
    try:
        while len(packets) < limit:
            packets.append(await asyncio.wait_for(source.recv(), 10))
    except MediaStreamError:
        pass
    source.stop()
    return packets


class Passthrough:
    """One pre-encoded producer as the handler sets it up (codec choice included), on a fake
    clock and an in-memory port."""

    def __init__(
        self,
        track: Any,
        *,
        encodings: list[dict[str, Any]] | None = None,
        codecOptions: dict[str, Any] | None = None,
        codec: Any = None,
        pauseMode: PauseMode = PauseMode.ZERO_RTP,
    ) -> None:
        options = HandlerSendOptions(
            track=track,
            encodings=normalizeEncodings(encodings),  # type: ignore[arg-type]
            codecOptions=codecOptions,  # type: ignore[arg-type]
            codec=codec,
        )
        chosen = passthroughSendOptions(options, _extended(True))
        assert chosen is not None
        options, info = chosen
        self.params: Any = buildSendRtpParameters(
            kind=track.kind,
            extendedRtpCapabilities=_extended(True),
            encodings=options.encodings,
            codec=options.codec,
            codecOptions=options.codecOptions,
            mid="0",
            cname="cname",
            generateSsrc=lambda: next(_ssrcs),
        )
        self.clock = FakeClock()
        self.port = FakeRtpPort()
        self.readers: list[ManualReader] = []
        self.scheduler = SendScheduler(
            self.port, clock=self.clock, runner=InlineJobRunner(), readerFactory=self._reader
        )
        self.sender = ProducerSender(
            sendConfig(self.params, options.codecOptions),
            pauseMode=pauseMode,
            pipelineFactory=passthroughPipelineFactory(info),
        )
        self.producer = self.scheduler.add(self.sender, track, onTrackEnded=lambda: None)
        self.producer.start()

    def _reader(self, track: Any, onFrame: Any, onEnded: Any) -> ManualReader:
        reader = ManualReader(track, onFrame, onEnded)
        self.readers.append(reader)
        return reader

    @property
    def ssrcs(self) -> list[int]:
        return [e["ssrc"] for e in self.params["encodings"]]

    def push(self, packets: list[EncodedPacket], interval: float = 1 / 30) -> None:
        for packet in packets:
            self.readers[-1].onFrame(packet)
            self.clock.advance(interval)

    def packets(self, layer: int = 0) -> list[RtpPacket]:
        return self.port.packets(self.ssrcs[layer])

    def pli(self, layer: int = 0) -> None:
        self.port.inject(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=self.ssrcs[layer]))

    def outbound(self) -> list[dict[str, Any]]:
        stats = self.producer.getStats().values()
        return sorted(
            (s for s in stats if s["type"] == "outbound-rtp"), key=lambda s: s.get("rid", "")
        )


def decodeH264(packets: list[RtpPacket]) -> list[int]:
    """The frame numbers (barcodes) decoded from the RTP packets of one stream."""
    decoder = av.CodecContext.create("h264", "r")
    numbers: list[int] = []
    data = b""
    for packet in packets:
        data += h264_depayload(packet.payload)
        if packet.marker:
            numbers += [readFrameNumber(f) for f in decoder.decode(av.Packet(data))]  # type: ignore[arg-type]
            data = b""
    return numbers


async def test_h264_passes_through_decodable_with_its_timestamps(
    media: dict[str, Path], noEncoders: list[str]
) -> None:
    source = EncodedVideoSource(media["h264"], paced=False)
    h = Passthrough(source)
    codec = h.params["codecs"][0]
    assert codec["mimeType"] == "video/H264"
    assert codec["parameters"]["profile-level-id"] == "42e01f"  # the router's baseline
    h.push(await packetsOf(source))
    rtp = h.packets()
    assert decodeH264(rtp) == list(range(60))
    starts = sorted({p.timestamp for p in rtp})
    assert {b - a for a, b in itertools.pairwise(starts)} == {3000}
    # mediasoup sees the key frame: SPS first in a STAP-A.
    assert rtp[0].payload[0] & 0x1F == 24 and rtp[0].payload[3] & 0x1F == 7
    [stats] = h.outbound()
    assert stats["encoderImplementation"] == "passthrough" and stats["framesEncoded"] == 0
    assert stats["framesSent"] == stats["framesPassedThrough"] == 60
    assert (stats["frameWidth"], stats["frameHeight"]) == (320, 240)
    assert noEncoders == []


async def test_main_profile_gets_the_routers_main_codec(media: dict[str, Path]) -> None:
    source = EncodedVideoSource(media["main"], paced=False)
    h = Passthrough(source)
    codec = h.params["codecs"][0]
    assert codec["parameters"]["profile-level-id"][:4] == "4d00"  # Main
    assert codec["payloadType"] == next(
        c["remotePayloadType"]
        for c in _extended(True)["codecs"]
        if c["remoteParameters"].get("profile-level-id", "").startswith("4d")
    )
    h.push(await packetsOf(source))
    assert decodeH264(h.packets())[:3] == [0, 1, 2]


async def test_a_profile_the_router_lacks_is_refused_naming_both(media: dict[str, Path]) -> None:
    source = EncodedVideoSource(media["high"])
    with pytest.raises(UnsupportedError) as raised:
        Passthrough(source)
    message = str(raised.value)
    assert "(High)" in message and source.encodedStream.profileLevelId in message  # type: ignore[operator]
    assert "42e01f (Constrained Baseline)" in message and "(Main)" in message
    source.stop()


async def test_a_codec_asked_for_must_be_the_sources(media: dict[str, Path]) -> None:
    source = EncodedVideoSource(media["h264"])
    with pytest.raises(UnsupportedError, match="codec video/VP8 was asked for, but the source"):
        Passthrough(source, codec={"mimeType": "video/VP8", "clockRate": 90000})
    source.stop()


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"encodings": [{"maxBitrate": 500_000}]}, UnsupportedError, "cannot set maxBitrate"),
        (
            {"encodings": [{"scalabilityMode": "L1T3"}]},
            UnsupportedError,
            "scalabilityMode L1T3",
        ),
        ({"encodings": [{}, {}]}, TypeError, "1 rendition(s) but 2 encoding(s)"),
        (
            {"codecOptions": {"videoGoogleStartBitrate": 1000}},
            UnsupportedError,
            "codecOptions videoGoogleStartBitrate",
        ),
    ],
)
async def test_options_that_ask_for_an_encoder_are_refused(
    media: dict[str, Path], options: dict[str, Any], error: type[Exception], words: str
) -> None:
    source = EncodedVideoSource(media["h264"])
    with pytest.raises(error) as raised:
        Passthrough(source, **options)
    assert words in str(raised.value)
    source.stop()


def vp8Key(layer: int, timestamp: float) -> EncodedPacket:
    return EncodedPacket(b"\x10\x02\x00\x9d\x01\x2a" + bytes(30), timestamp, layer=layer)


def vp8Inter(layer: int, timestamp: float) -> EncodedPacket:
    return EncodedPacket(b"\x31\x02\x00" + bytes(30), timestamp, layer=layer)


def vp8Source(renditions: int = 1) -> EncodedVideoSource:
    return EncodedVideoSource(*[[] for _ in range(renditions)], codec="vp8")


async def test_a_layer_starts_at_a_key_frame_and_key_frame_requests_reach_the_source() -> None:
    source = vp8Source()
    requests: list[int | None] = []
    source.on("keyframerequested", requests.append)
    h = Passthrough(source)
    assert requests == [0]  # started: asks for a key frame at once
    h.push([vp8Inter(0, 0.0), vp8Inter(0, 0.033)])
    assert h.packets() == []
    h.push([vp8Key(0, 0.066), vp8Inter(0, 0.1)])
    assert sum(p.marker for p in h.packets()) == 2
    h.clock.advance(0.4)
    h.pli()
    h.pli()  # a burst: one request
    h.clock.advance(0.4)
    h.pli()
    assert requests == [0, 0, 0]
    [stats] = h.outbound()
    assert stats["framesDropped"] == 2 and stats["pliCount"] == 3
    assert stats["keyFrameRequests"] == 3


@pytest.mark.parametrize("pauseMode", [PauseMode.ZERO_RTP, PauseMode.DISABLE_TRACK])
async def test_pause_sends_nothing_and_resume_waits_for_a_key_frame(pauseMode: PauseMode) -> None:
    source = vp8Source()
    requests: list[int | None] = []
    source.on("keyframerequested", requests.append)
    h = Passthrough(source, pauseMode=pauseMode)
    h.push([vp8Key(0, 0.0), vp8Inter(0, 0.033)])
    h.producer.pause()
    h.push([vp8Inter(0, 0.066), vp8Key(0, 0.1)])
    assert sum(p.marker for p in h.packets()) == 2
    h.producer.resume()
    h.push([vp8Inter(0, 0.133), vp8Key(0, 0.166), vp8Inter(0, 0.2)])
    assert sum(p.marker for p in h.packets()) == 4
    assert requests == [0, 0]  # at start and at resume
    stamps = [p.timestamp for p in h.packets()]
    assert stamps == sorted(stamps)


async def test_simulcast_renditions_go_to_their_encodings_with_one_clock() -> None:
    source = vp8Source(2)
    h = Passthrough(source)
    assert [e.get("rid") for e in h.params["encodings"]] == ["r0", "r1"]
    for index in range(4):
        t = index / 30
        make = vp8Key if index == 0 else vp8Inter
        h.push([make(0, t), make(1, t)], interval=1 / 60)
    low, high = h.packets(0), h.packets(1)
    assert len(low) == len(high) == 4
    assert [p.timestamp for p in low] == [p.timestamp for p in high]
    h.sender.setMaxSpatialLayer(0, h.clock.now())
    h.push([vp8Inter(0, 0.2), vp8Key(1, 0.2)])
    assert len(h.packets(1)) == 4 and len(h.packets(0)) == 5
    with pytest.raises(UnsupportedError, match="cannot apply maxBitrate"):
        h.sender.setRtpEncodingParameters({"maxBitrate": 100_000}, h.clock.now())


def pushRenditions(h: Passthrough, start: float, seconds: float, sizes: list[int]) -> None:
    """Both renditions at 30 fps, a key frame each second, ``sizes`` bytes per frame."""
    for index in range(int(seconds * 30)):
        t = start + index / 30
        frames = []
        for layer, size in enumerate(sizes):
            header = b"\x10\x02\x00\x9d\x01\x2a" if index % 30 == 0 else b"\x31\x02\x00"
            frames.append(EncodedPacket(header + bytes(size), t, layer=layer))
        h.push(frames, interval=1 / 60)


async def test_renditions_the_estimate_cannot_carry_are_suspended_and_come_back() -> None:
    source = vp8Source(2)
    requests: list[int | None] = []
    source.on("keyframerequested", requests.append)
    h = Passthrough(source)
    # No feedback: the estimate stays where it starts. ~70 kbps + ~2.1 Mbps offered.
    congestion = h.scheduler.core.congestion
    assert congestion.targetBitrate < 2_000_000
    pushRenditions(h, 0.0, 3.0, [250, 8000])
    low, high = h.outbound()
    assert high["active"] is False and high["qualityLimitationReason"] == "bandwidth"
    assert low["active"] is True and low["qualityLimitationReason"] == "none"
    sent_high, sent_low = len(h.packets(1)), len(h.packets(0))
    pushRenditions(h, 3.0, 1.0, [250, 8000])
    assert len(h.packets(1)) == sent_high  # nothing more of the top rendition
    assert len(h.packets(0)) > sent_low  # the lowest one is always sent
    requests.clear()
    congestion.estimate.bitrate = 4_000_000.0  # the link proved it carries more
    pushRenditions(h, 4.0, 1.5, [250, 8000])
    assert requests and requests[0] == 1  # back: it asks the source for a key frame
    resumed = h.packets(1)[sent_high:]
    assert resumed and h.outbound()[1]["active"] is True
    # It restarts at a key frame (VP8 payload descriptor, then the key-frame header).
    assert resumed[0].payload[1] & 0x01 == 0


async def test_two_renditions_from_files_decode_on_their_own_streams(
    media: dict[str, Path],
) -> None:
    source = EncodedVideoSource(media["h264small"], media["h264"], paced=False)
    h = Passthrough(source)
    packets = sorted(await packetsOf(source), key=lambda p: (p.timestamp, p.layer))
    h.push(packets, interval=1 / 60)
    assert decodeH264(h.packets(0)) == decodeH264(h.packets(1)) == list(range(60))
    sizes = [(s["frameWidth"], s["frameHeight"]) for s in h.outbound()]
    assert sizes == [(160, 120), (320, 240)]


async def test_timestamps_going_backwards_are_dropped_and_counted() -> None:
    source = vp8Source()
    h = Passthrough(source)
    h.push([vp8Key(0, 1.0), vp8Inter(0, 0.5), vp8Inter(0, 1.033)])
    assert sum(p.marker for p in h.packets()) == 2
    assert h.outbound()[0]["framesRejected"] == 1


async def test_opus_passes_through_with_exact_timestamps_and_mutes_to_silence(
    media: dict[str, Path],
) -> None:
    source = EncodedAudioSource(media["vp8"], paced=False)
    h = Passthrough(source, pauseMode=PauseMode.DISABLE_TRACK)
    assert h.params["codecs"][0]["mimeType"] == "audio/opus"
    packets = await packetsOf(source)
    h.push(packets[:50], interval=0.02)
    sent = h.packets()
    assert [p.payload for p in sent] == [p.data for p in packets[:50]]
    # WebM counts milliseconds; the RTP timestamps count samples exactly.
    assert {b.timestamp - a.timestamp for a, b in itertools.pairwise(sent)} == {960}
    assert sent[0].marker and not any(p.marker for p in sent[1:])
    h.producer.pause()
    h.push(packets[50:60], interval=0.02)
    silent = h.packets()[50:]
    assert len(silent) == 10 and all(p.payload == opusSilence(960) for p in silent)
    assert all(opusPacketSamples(p.payload) == 960 for p in silent)
    stats = h.outbound()[0]
    assert stats["silencePacketsSent"] == 10 and stats["packetsPassedThrough"] == 50


async def test_an_opus_gap_moves_the_timestamps_on_with_a_marker() -> None:
    frames = [EncodedPacket(b"\xf8\xff\xfe", t) for t in (0.0, 0.02, 0.04, 1.04, 1.06)]
    source = EncodedAudioSource(frames, channels=1)
    h = Passthrough(source)
    h.push(frames, interval=0.02)
    sent = h.packets()
    steps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(sent)]
    assert steps == [960, 960, 48000, 960]  # 1 s from 0.04 to 1.04
    assert [p.marker for p in sent] == [True, False, False, True, False]


async def test_stereo_opus_is_signalled_as_stereo_and_a_mismatch_refused() -> None:
    source = EncodedAudioSource([], channels=2)
    h = Passthrough(source)
    assert h.params["codecs"][0]["parameters"]["stereo"] == 1
    with pytest.raises(UnsupportedError, match="opusStereo=False but the source's Opus"):
        Passthrough(EncodedAudioSource([], channels=2), codecOptions={"opusStereo": False})
    with pytest.raises(UnsupportedError, match="codecOptions opusDtx"):
        Passthrough(EncodedAudioSource([], channels=1), codecOptions={"opusDtx": True})


async def test_a_replacement_must_be_a_like_source(media: dict[str, Path]) -> None:
    source = vp8Source()
    h = Passthrough(source)
    with pytest.raises(UnsupportedError, match="only another pre-encoded source"):
        checkTrackReplacement(h.sender.pipeline, VideoStreamTrack())
    with pytest.raises(UnsupportedError, match="the new source is video/H264"):
        checkTrackReplacement(h.sender.pipeline, EncodedVideoSource([], codec="h264"))
    replacement = vp8Source()
    requests: list[int | None] = []
    replacement.on("keyframerequested", requests.append)
    checkTrackReplacement(h.sender.pipeline, replacement)
    await h.producer.replaceTrack(replacement)
    assert requests == [0]  # the new source is asked for its key frame
    checkTrackReplacement(h.sender.pipeline, None)


def test_an_encoded_source_cannot_replace_an_encoding_producers_track() -> None:
    from mediasoup_client.handlers.aiortc.send.video_pipeline import VideoPipeline

    pipeline = VideoPipeline.__new__(VideoPipeline)
    with pytest.raises(UnsupportedError, match="produce it on a producer of its own"):
        checkTrackReplacement(pipeline, vp8Source())
    checkTrackReplacement(pipeline, VideoStreamTrack())


def test_the_source_clock_keeps_spacing_and_continues_after_a_discontinuity() -> None:
    clock = SourceClock(90000)
    assert [clock.map(t, 10 + t) for t in (5.0, 5.5, 5.5)] == [0, 45000, 45000]
    clock.discontinuity()
    assert clock.map(0.0, 17.5) == 45000 + 2 * 90000  # 2 s of wall time passed


def test_a_codec_the_router_lacks_is_refused_naming_what_it_has() -> None:
    extended = _extended(True)
    extended["codecs"] = [c for c in extended["codecs"] if c["mimeType"].lower() != "video/vp8"]
    options = HandlerSendOptions(track=vp8Source(), encodings=normalizeEncodings(None))  # type: ignore[arg-type]
    with pytest.raises(UnsupportedError) as raised:
        passthroughSendOptions(options, extended)
    message = str(raised.value)
    assert "the source is video/VP8, which the router does not take" in message
    assert "(its video codecs: video/H264, video/VP9)" in message


def test_an_ordinary_track_is_not_passthrough() -> None:
    options = HandlerSendOptions(track=VideoStreamTrack(), encodings=normalizeEncodings(None))  # type: ignore[arg-type]
    assert passthroughSendOptions(options, _extended(True)) is None
