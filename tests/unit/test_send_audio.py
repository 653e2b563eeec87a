"""The Opus send path on a fake clock and an in-memory port: codecOptions change what the
encoder emits; pause, DTX and track changes show on the wire."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from aiortc.rtp import RtcpRtpfbPacket, RtpPacket

from mediasoup_client.handlers.aiortc.send.config import opusSettings
from mediasoup_client.handlers.aiortc.send.producer_sender import PauseMode
from mediasoup_client.media.test_sources import ToneAudioTrack
from tests.unit.fake_rtp_port import audioRtpParameters
from tests.unit.send_harness import SendHarness


class AudioHarness(SendHarness):
    def packets(self, layer: int = 0) -> list[RtpPacket]:
        return self.port.packets()

    def feedPackets(self, count: int) -> None:
        self.feed(10, until=lambda: len(self.packets()) >= count)

    def feedMediaSeconds(self, seconds: float) -> None:
        def enough() -> bool:
            packets = self.packets()
            return len(packets) >= 2 and span(packets) >= seconds

        self.feed(seconds * 2 + 1, until=enough)


@pytest.fixture
async def harnesses() -> Any:
    made: list[AudioHarness] = []
    yield made
    for harness in made:
        await harness.producer.stop()
        harness.track.stop()


@pytest.fixture
def make(harnesses: list[AudioHarness]) -> Any:
    def factory(
        *,
        codecOptions: dict[str, Any] | None = None,
        signalled: dict[str, Any] | None = None,
        encoding: dict[str, Any] | None = None,
        channels: int = 1,
        silent: bool = False,
        pauseMode: PauseMode = PauseMode.ZERO_RTP,
    ) -> AudioHarness:
        # ``signalled``: codec options written into the codec parameters only, so the sender
        # must read them from there.
        params = audioRtpParameters(codecOptions=signalled or codecOptions, encoding=encoding)
        track = ToneAudioTrack(440, 48000, channels, silent=silent, paced=False)
        harness = AudioHarness(
            params,
            track,
            codecOptions=None if signalled else codecOptions,
            pauseMode=pauseMode,
        )
        harnesses.append(harness)
        return harness

    return factory


def span(packets: list[RtpPacket]) -> float:
    return ((packets[-1].timestamp - packets[0].timestamp) & 0xFFFFFFFF) / 48000


def steps(packets: list[RtpPacket]) -> set[int]:
    return {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(packets)}


def packetRate(packets: list[RtpPacket]) -> float:
    """Packets per second of media time."""
    return (len(packets) - 1) / span(packets)


def test_default_is_20ms_mono_with_audio_level_and_mid(make: Any):
    h = make()
    h.feedMediaSeconds(2)
    packets = h.packets()
    assert steps(packets) == {960}
    assert packetRate(packets) == pytest.approx(50, rel=0.05)
    assert {p.payload_type for p in packets} == {100}
    assert {p.extensions.mid for p in packets} == {"1"}
    voiced, level = packets[5].extensions.audio_level
    assert voiced and 5 <= level <= 20  # a 0.3 full-scale tone is about -13 dBov
    assert packets[0].marker == 1 and not any(p.marker for p in packets[1:])
    assert all((p.payload[0] >> 2) & 1 == 0 for p in packets)  # TOC: mono


def test_ptime_40_sends_25_packets_per_second(make: Any):
    h = make(codecOptions={"opusPtime": 40})
    h.feedMediaSeconds(2)
    packets = h.packets()
    assert steps(packets) == {1920}
    assert packetRate(packets) == pytest.approx(25, rel=0.05)


def test_ptime_from_codec_parameters(make: Any):
    h = make(signalled={"opusPtime": 60})
    h.feedMediaSeconds(1)
    assert steps(h.packets()) == {2880}


def test_stereo_sets_the_toc_stereo_bit(make: Any):
    h = make(codecOptions={"opusStereo": True}, channels=2)
    h.feedPackets(20)
    assert all((p.payload[0] >> 2) & 1 for p in h.packets()[1:])
    assert h.getStats()[f"OT{h.ssrcs[0]}"]["targetBitrate"] == 64000


def test_dtx_on_silence_sends_a_comfort_packet_every_400ms(make: Any):
    h = make(codecOptions={"opusDtx": True}, silent=True)
    h.feedMediaSeconds(2)
    packets = h.packets()
    assert packetRate(packets) < 5
    assert steps(packets) == {19200}
    assert packets[0].extensions.audio_level == (False, 127)
    # Sound comes back: full rate again, the talk spurt starts with the marker bit.
    count = len(packets)
    h.track.silent = False
    h.feedPackets(count + 30)
    resumed = h.packets()[count:]
    first_voiced = next(i for i, p in enumerate(resumed) if p.extensions.audio_level[0])
    assert resumed[first_voiced].marker == 1
    assert steps(resumed[first_voiced + 1 :]) == {960}


def test_without_dtx_silence_is_sent_at_full_rate(make: Any):
    h = make(silent=True)
    h.feedMediaSeconds(1)
    assert packetRate(h.packets()) == pytest.approx(50, rel=0.05)


def test_encoding_dtx_also_enables_dtx(make: Any):
    h = make(encoding={"dtx": True}, silent=True)
    h.feedMediaSeconds(1.5)
    assert packetRate(h.packets()) < 5


def test_max_playback_rate_narrows_the_audio_band(make: Any):
    h = make(codecOptions={"opusMaxPlaybackRate": 8000})
    h.feedPackets(20)
    configs = {p.payload[0] >> 3 for p in h.packets()[1:]}
    # TOC configurations 0-3 (SILK) and 16-19 (CELT) are narrowband.
    assert configs <= {0, 1, 2, 3, 16, 17, 18, 19}, configs


def test_max_average_bitrate_is_the_opus_bitrate(make: Any):
    h = make(codecOptions={"opusMaxAverageBitrate": 12000})
    h.feedMediaSeconds(2)
    packets = h.packets()[5:]
    bitrate = sum(len(p.payload) for p in packets) * 8 / (span(packets) + 0.02)
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


def test_pause_sends_nothing_and_resume_marks_the_gap(make: Any):
    h = make(pauseMode=PauseMode.ZERO_RTP)
    h.feedPackets(20)
    h.producer.pause()
    count = len(h.packets())
    h.feed(0.3)
    assert len(h.packets()) == count
    last = h.packets()[-1]
    h.producer.resume()
    h.feedPackets(count + 5)
    first = h.packets()[count]
    assert first.marker == 1
    # The timestamp moved on by at least the wall time of the pause (300 ms).
    assert (first.timestamp - last.timestamp) & 0xFFFFFFFF >= 0.3 * 48000


def test_disabled_track_pause_sends_silence(make: Any):
    # mediasoup-client's default: the track counts as disabled, the stream stays alive.
    h = make(pauseMode=PauseMode.DISABLE_TRACK)
    h.feedPackets(20)
    h.producer.pause()
    count = len(h.packets())
    h.feed(0.5)
    silent = h.packets()[count:]
    assert len(silent) >= 24
    assert all(p.extensions.audio_level == (False, 127) for p in silent[2:])
    h.producer.resume()
    h.feed(0.2)
    assert h.packets()[-1].extensions.audio_level[0]  # the tone again


async def test_replace_track_continues_the_timestamps_and_none_sends_nothing(make: Any):
    h = make()
    h.feedPackets(20)
    count = len(h.packets())
    await h.producer.replaceTrack(ToneAudioTrack(880, 44100, 2, paced=False))
    h.feedPackets(count + 20)
    packets = h.packets()
    deltas = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(packets)]
    assert all(0 < d < 0x80000000 for d in deltas)
    await h.producer.replaceTrack(None)
    count = len(h.packets())
    h.wait(0.3)
    assert len(h.packets()) == count and h.reader.stopped


def test_audio_nack_resends_on_the_media_ssrc(make: Any):
    h = make()
    h.feedPackets(10)
    lost = h.packets()[4]
    count = len(h.packets())
    ssrc = h.ssrcs[0]
    h.port.inject(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=ssrc, lost=[lost.sequence_number]))
    assert any(p.sequence_number == lost.sequence_number for p in h.packets()[count:])
    stats = h.getStats()[f"OT{ssrc}"]
    assert stats["retransmittedPacketsSent"] == 1 and stats["kind"] == "audio"
