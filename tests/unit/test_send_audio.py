"""The Opus send path on an in-memory port: codecOptions change what the encoder emits."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc.rtp import RtcpRtpfbPacket, RtpPacket

from mediasoup_client.handlers.aiortc.send import ProducerSender
from mediasoup_client.handlers.aiortc.send.producer_sender import opusSettings
from mediasoup_client.media.test_sources import ToneAudioTrack
from tests.unit.fake_rtp_port import FakeRtpPort, audioRtpParameters, waitFor

SPEED = 4.0


class Harness:
    def __init__(self, *, codecOptions: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.port = FakeRtpPort()
        self.params = audioRtpParameters(
            parameters=kwargs.pop("parameters", None), encoding=kwargs.pop("encoding", None)
        )
        self.track = ToneAudioTrack(
            440, 48000, kwargs.pop("channels", 1), silent=kwargs.pop("silent", False), speed=SPEED
        )
        self.sender = ProducerSender(
            port=self.port,
            track=self.track,
            rtpParameters=self.params,  # type: ignore[arg-type]
            codecOptions=codecOptions,  # type: ignore[arg-type]
        )

    def packets(self) -> list[RtpPacket]:
        return self.port.packets()

    async def waitPackets(self, count: int) -> None:
        await waitFor(lambda: len(self.packets()) >= count, timeout=10)

    async def waitMediaSeconds(self, seconds: float) -> None:
        def enough() -> bool:
            packets = self.packets()
            return len(packets) >= 2 and self.span(packets) >= seconds

        await waitFor(enough, timeout=10)

    @staticmethod
    def span(packets: list[RtpPacket]) -> float:
        return ((packets[-1].timestamp - packets[0].timestamp) & 0xFFFFFFFF) / 48000


@pytest.fixture
async def harnesses() -> AsyncIterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for harness in made:
        await harness.sender.stop()
        harness.track.stop()


@pytest.fixture
def make(harnesses: list[Harness]) -> Any:
    def factory(**kwargs: Any) -> Harness:
        harness = Harness(**kwargs)
        harnesses.append(harness)
        harness.sender.start()
        return harness

    return factory


def steps(packets: list[RtpPacket]) -> set[int]:
    return {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(packets)}


def packetRate(packets: list[RtpPacket]) -> float:
    """Packets per second of media time."""
    return (len(packets) - 1) / Harness.span(packets)


async def test_default_is_20ms_mono_with_audio_level_and_mid(make: Any):
    h = make()
    await h.waitMediaSeconds(2)
    packets = h.packets()
    assert steps(packets) == {960}
    assert packetRate(packets) == pytest.approx(50, rel=0.05)
    assert {p.payload_type for p in packets} == {100}
    assert {p.extensions.mid for p in packets} == {"1"}
    voiced, level = packets[5].extensions.audio_level
    assert voiced and 5 <= level <= 20  # a 0.3 full-scale tone is about -13 dBov
    assert packets[0].marker == 1 and not any(p.marker for p in packets[1:])
    assert all((p.payload[0] >> 2) & 1 == 0 for p in packets)  # TOC: mono


async def test_ptime_40_sends_25_packets_per_second(make: Any):
    h = make(codecOptions={"opusPtime": 40})
    await h.waitMediaSeconds(2)
    packets = h.packets()
    assert steps(packets) == {1920}
    assert packetRate(packets) == pytest.approx(25, rel=0.05)


async def test_ptime_from_codec_parameters(make: Any):
    h = make(parameters={"ptime": 60})
    await h.waitMediaSeconds(1)
    assert steps(h.packets()) == {2880}


async def test_stereo_sets_the_toc_stereo_bit(make: Any):
    h = make(codecOptions={"opusStereo": True}, channels=2)
    await h.waitPackets(20)
    assert all((p.payload[0] >> 2) & 1 for p in h.packets()[1:])
    assert h.sender.getStats()[f"OT{h.params['encodings'][0]['ssrc']}"]["targetBitrate"] == 64000


async def test_dtx_on_silence_sends_a_comfort_packet_every_400ms(make: Any):
    h = make(codecOptions={"opusDtx": True}, silent=True)
    await h.waitMediaSeconds(2)
    packets = h.packets()
    assert packetRate(packets) < 5
    assert steps(packets) == {19200}
    assert packets[0].extensions.audio_level == (False, 127)
    # Sound comes back: full rate again, the talk spurt starts with the marker bit.
    count = len(packets)
    h.track.silent = False
    await waitFor(lambda: len(h.packets()) >= count + 30)
    resumed = h.packets()[count:]
    first_voiced = next(i for i, p in enumerate(resumed) if p.extensions.audio_level[0])
    assert resumed[first_voiced].marker == 1
    assert steps(resumed[first_voiced + 1 :]) == {960}


async def test_without_dtx_silence_is_sent_at_full_rate(make: Any):
    h = make(silent=True)
    await h.waitMediaSeconds(1)
    assert packetRate(h.packets()) == pytest.approx(50, rel=0.05)


async def test_encoding_dtx_also_enables_dtx(make: Any):
    h = make(encoding={"dtx": True}, silent=True)
    await h.waitMediaSeconds(1.5)
    assert packetRate(h.packets()) < 5


async def test_max_playback_rate_narrows_the_audio_band(make: Any):
    h = make(codecOptions={"opusMaxPlaybackRate": 8000})
    await h.waitPackets(20)
    configs = {p.payload[0] >> 3 for p in h.packets()[1:]}
    # TOC configurations 0-3 (SILK) and 16-19 (CELT) are narrowband.
    assert configs <= {0, 1, 2, 3, 16, 17, 18, 19}, configs


async def test_max_average_bitrate_is_the_opus_bitrate(make: Any):
    h = make(codecOptions={"opusMaxAverageBitrate": 12000})
    await h.waitMediaSeconds(2)
    packets = h.packets()[5:]
    bitrate = sum(len(p.payload) for p in packets) * 8 / (Harness.span(packets) + 0.02)
    assert 6000 < bitrate < 16000, bitrate


def test_codec_options_map_to_encoder_settings():
    codec: dict[str, Any] = {
        "mimeType": "audio/opus",
        "payloadType": 100,
        "clockRate": 48000,
        "channels": 2,
        "parameters": {"useinbandfec": 1, "usedtx": 1, "stereo": 1, "maxplaybackrate": 16000},
    }
    settings, dtx = opusSettings(codec, None)  # type: ignore[arg-type]
    assert (settings.channels, settings.fec, dtx, settings.cutoff) == (2, True, True, 8000)
    assert settings.bitrate == 40000  # 20 kbps per channel for wideband
    settings, dtx = opusSettings(
        codec,  # type: ignore[arg-type]
        {"opusFec": False, "opusDtx": False, "opusStereo": False, "opusPtime": 10},
    )
    assert (settings.channels, settings.fec, dtx, settings.frameDuration) == (1, False, False, 10)


async def test_pause_sends_nothing_and_resume_marks_the_gap(make: Any):
    h = make()
    await h.waitPackets(20)
    h.sender.pause()
    await asyncio.sleep(0.05)
    count = len(h.packets())
    await asyncio.sleep(0.3)
    assert len(h.packets()) == count
    last = h.packets()[-1]
    h.sender.resume()
    await h.waitPackets(count + 5)
    first = h.packets()[count]
    assert first.marker == 1
    # The timestamp moved on by at least the wall time of the pause (300 ms).
    assert (first.timestamp - last.timestamp) & 0xFFFFFFFF >= 0.3 * 48000


async def test_replace_track_continues_the_timestamps(make: Any):
    h = make()
    await h.waitPackets(20)
    count = len(h.packets())
    await h.sender.replaceTrack(ToneAudioTrack(880, 44100, 2, speed=SPEED))
    await h.waitPackets(count + 20)
    packets = h.packets()
    deltas = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(packets)]
    assert all(0 < d < 0x80000000 for d in deltas)
    await h.sender.replaceTrack(None)
    await asyncio.sleep(0.05)
    count = len(h.packets())
    await asyncio.sleep(0.2)
    assert len(h.packets()) == count


async def test_audio_nack_resends_on_the_media_ssrc(make: Any):
    h = make()
    await h.waitPackets(10)
    lost = h.packets()[4]
    count = len(h.packets())
    ssrc = h.params["encodings"][0]["ssrc"]
    await h.port.inject(
        RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=ssrc, lost=[lost.sequence_number])
    )
    await waitFor(
        lambda: any(p.sequence_number == lost.sequence_number for p in h.packets()[count:])
    )
    stats = h.sender.getStats()[f"OT{ssrc}"]
    assert stats["retransmittedPacketsSent"] == 1 and stats["kind"] == "audio"
