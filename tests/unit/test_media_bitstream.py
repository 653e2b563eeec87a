"""Bitstream facts for passthrough (pure): H264 in MP4 form to Annex B with parameter sets in
front of IDRs, profile-level-id, VP8 key frames and sizes, Opus durations and silence (checked
by decoding with libopus)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from mediasoup_client.media.bitstream import (
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    ParameterSets,
    annexBUnits,
    h264IsKeyFrame,
    h264StartsWithSps,
    lengthPrefixedUnits,
    nalType,
    opusPacketSamples,
    opusSilence,
    parseAvcC,
    profileLevelId,
    toAnnexB,
    vp8IsKeyFrame,
    vp8Size,
)

SPS = bytes([0x67, 0x42, 0xC0, 0x1F, 0xAA, 0xBB])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88, 0x84, 0x00, 0x11])
SLICE = bytes([0x41, 0x9A, 0x22])
SEI = bytes([0x06, 0x05, 0x01])
AUD = bytes([0x09, 0xF0])


def avcC(sps: bytes, pps: bytes, lengthSize: int = 4) -> bytes:
    return (
        bytes([1, sps[1], sps[2], sps[3], 0xFC | (lengthSize - 1), 0xE1])
        + len(sps).to_bytes(2, "big")
        + sps
        + bytes([1])
        + len(pps).to_bytes(2, "big")
        + pps
    )


def lengthPrefixed(*units: bytes, size: int = 4) -> bytes:
    return b"".join(len(u).to_bytes(size, "big") + u for u in units)


def test_avcc_record_gives_length_size_and_parameter_sets() -> None:
    config = parseAvcC(avcC(SPS, PPS, lengthSize=2))
    assert (config.lengthSize, config.sps, config.pps) == (2, [SPS], [PPS])
    assert profileLevelId(config.sps[0]) == "42c01f"


@pytest.mark.parametrize("bad", [b"", b"\x00" * 10, avcC(SPS, PPS)[:9]])
def test_a_broken_avcc_record_is_a_type_error(bad: bytes) -> None:
    with pytest.raises(TypeError, match="avcC"):
        parseAvcC(bad)


def test_length_prefixed_samples_split_and_refuse_what_they_are_not() -> None:
    assert list(lengthPrefixedUnits(lengthPrefixed(IDR, SLICE))) == [IDR, SLICE]
    assert list(lengthPrefixedUnits(lengthPrefixed(IDR, size=2), 2)) == [IDR]
    with pytest.raises(TypeError, match="length-prefixed"):
        list(lengthPrefixedUnits(toAnnexB([IDR])))


def test_an_idr_gets_the_parameter_sets_in_front_and_delimiters_go() -> None:
    sets = ParameterSets([SPS], [PPS])
    data, key = sets.accessUnit([AUD, SEI, IDR])
    assert key and h264StartsWithSps(data)
    assert [nalType(u) for u in annexBUnits(data)] == [NAL_SPS, NAL_PPS, 6, NAL_IDR]
    data, key = sets.accessUnit([SLICE])
    assert not key and list(annexBUnits(data)) == [SLICE]


def test_in_band_parameter_sets_replace_the_stored_ones_and_move_to_the_front() -> None:
    sets = ParameterSets()
    newer_sps = SPS[:3] + b"\x28" + SPS[4:]
    data, key = sets.accessUnit([IDR, newer_sps, PPS])
    assert key and list(annexBUnits(data)) == [newer_sps, PPS, IDR]
    assert sets.profileLevelId == "42c028"
    assert h264IsKeyFrame(data) and not h264IsKeyFrame(toAnnexB([SLICE]))


def test_vp8_key_frames_and_their_size() -> None:
    key = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A]) + (640).to_bytes(2, "little")
    key += (480).to_bytes(2, "little") + b"\x00" * 8
    inter = bytes([0x31, 0x02, 0x00]) + b"\x00" * 8
    assert vp8IsKeyFrame(key) and vp8Size(key) == (640, 480)
    assert not vp8IsKeyFrame(inter) and vp8Size(inter) is None


@pytest.mark.parametrize(
    ("toc", "extra", "samples"),
    [
        (0xF8, b"", 960),  # CELT FB 20 ms, one frame
        (0x78, b"", 960),  # SILK WB 20 ms
        (0x09, b"", 1920),  # SILK NB 20 ms, code 1: two frames
        (0x19, b"", 5760),  # SILK NB 60 ms, code 1: two frames (120 ms, the most)
        (0xFB, b"\x03", 2880),  # CELT FB 20 ms, code 3, three frames
        (0xE0, b"", 120),  # CELT NB 2.5 ms
    ],
)
def test_opus_packet_durations_from_the_toc(toc: int, extra: bytes, samples: int) -> None:
    assert opusPacketSamples(bytes([toc]) + extra + b"\x00\x00") == samples


def test_malformed_opus_packets_are_type_errors() -> None:
    with pytest.raises(TypeError):
        opusPacketSamples(b"")
    with pytest.raises(TypeError):
        opusPacketSamples(bytes([0xFB, 0x00]))  # code 3 with no frames
    with pytest.raises(TypeError):
        opusPacketSamples(bytes([0x1B, 0x04]))  # 4 x 60 ms > 120 ms


@pytest.mark.parametrize("samples", [120, 240, 480, 960, 1920, 2880])
def test_opus_silence_decodes_to_silence_of_that_length(samples: int) -> None:
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = 48000  # type: ignore[attr-defined]
    decoder.layout = "stereo"  # type: ignore[attr-defined]
    packet = opusSilence(samples)
    assert opusPacketSamples(packet) == samples
    frames = decoder.decode(av.Packet(packet))
    assert sum(f.samples for f in frames) == samples  # type: ignore[union-attr]
    assert not any(np.any(f.to_ndarray()) for f in frames)
