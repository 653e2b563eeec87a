"""Bitstream facts a passthrough sender needs, without decoding: H264 NAL units and parameter
sets (MP4's avcC / length-prefixed form to Annex B, profile-level-id from the SPS, key frames),
VP8 key frames and sizes, Opus packet durations and silence. Pure functions on bytes.

mediasoup 3.8.4 recognises an H264 key frame only by an SPS in its first RTP packet, so every
IDR access unit must carry its SPS and PPS in front (``withParameterSets``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

START_CODE = b"\x00\x00\x00\x01"


def annexBUnits(buffer: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01)."""
    start = buffer.find(b"\x00\x00\x01")
    while start != -1:
        start += 3
        end = buffer.find(b"\x00\x00\x01", start)
        if end == -1:
            nal = buffer[start:]
        else:
            nal = buffer[start : end - 1] if buffer[end - 1] == 0 else buffer[start:end]
        if nal:
            yield nal
        start = end


def isAnnexB(data: bytes) -> bool:
    return data.startswith(b"\x00\x00\x01") or data.startswith(START_CODE)


def lengthPrefixedUnits(data: bytes, lengthSize: int = 4) -> Iterator[bytes]:
    """The NAL units of an MP4/Matroska/FLV sample (each preceded by its big-endian length).
    ``TypeError`` when a length runs past the end (not that format)."""
    position = 0
    size = len(data)
    while position < size:
        if position + lengthSize > size:
            raise TypeError("H264 sample is not length-prefixed (truncated length field)")
        length = int.from_bytes(data[position : position + lengthSize], "big")
        position += lengthSize
        if length == 0 or position + length > size:
            raise TypeError("H264 sample is not length-prefixed (a NAL unit runs past its end)")
        yield data[position : position + length]
        position += length


def toAnnexB(units: list[bytes] | Iterator[bytes]) -> bytes:
    return b"".join(START_CODE + unit for unit in units)


@dataclass(frozen=True, slots=True)
class AvcConfig:
    """An avcC box (ISO 14496-15 AVCDecoderConfigurationRecord): NAL length size and the
    parameter sets."""

    lengthSize: int
    sps: list[bytes]
    pps: list[bytes]


def parseAvcC(extradata: bytes) -> AvcConfig:
    """``TypeError`` when ``extradata`` is not an avcC record."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise TypeError("H264 extradata is not an avcC record")
    length_size = (extradata[4] & 0x03) + 1
    position = 6
    sps: list[bytes] = []
    pps: list[bytes] = []
    try:
        for _ in range(extradata[5] & 0x1F):
            length = int.from_bytes(extradata[position : position + 2], "big")
            sps.append(extradata[position + 2 : position + 2 + length])
            position += 2 + length
        count = extradata[position]
        position += 1
        for _ in range(count):
            length = int.from_bytes(extradata[position : position + 2], "big")
            pps.append(extradata[position + 2 : position + 2 + length])
            position += 2 + length
    except IndexError:
        raise TypeError("H264 avcC record is truncated") from None
    if not sps or not pps or any(not unit for unit in sps + pps):
        raise TypeError("H264 avcC record has no SPS or PPS")
    return AvcConfig(length_size, sps, pps)


def nalType(unit: bytes) -> int:
    return unit[0] & 0x1F


def profileLevelId(sps: bytes) -> str:
    """The SDP ``profile-level-id`` (profile_idc, constraint flags, level_idc as 6 hex digits)
    of an SPS NAL unit (its header byte included)."""
    if len(sps) < 4 or nalType(sps) != NAL_SPS:
        raise TypeError("not an H264 SPS NAL unit")
    return sps[1:4].hex()


class ParameterSets:
    """The newest SPS and PPS seen in a stream (or from its extradata), put in front of key
    frames that lack them."""

    def __init__(self, sps: list[bytes] | None = None, pps: list[bytes] | None = None) -> None:
        self.sps = list(sps or [])
        self.pps = list(pps or [])

    @property
    def profileLevelId(self) -> str | None:
        return profileLevelId(self.sps[0]) if self.sps else None

    def accessUnit(self, units: list[bytes]) -> tuple[bytes, bool]:
        """The Annex B access unit of ``units`` and whether it is a key frame (has an IDR
        slice). Access unit delimiters are left out; an IDR without parameter sets gets the
        newest ones in front; in-band parameter sets replace the stored ones."""
        types = [nalType(unit) for unit in units]
        key = NAL_IDR in types
        in_band_sps = [u for u, t in zip(units, types, strict=True) if t == NAL_SPS]
        in_band_pps = [u for u, t in zip(units, types, strict=True) if t == NAL_PPS]
        if in_band_sps:
            self.sps = in_band_sps
        if in_band_pps:
            self.pps = in_band_pps
        body = [u for u, t in zip(units, types, strict=True) if t != NAL_AUD]
        if key and not in_band_sps and self.sps and self.pps:
            body = self.sps + self.pps + [u for u in body if nalType(u) not in (NAL_SPS, NAL_PPS)]
        elif key and in_band_sps and types.index(NAL_SPS) > types.index(NAL_IDR):
            # Parameter sets after the slice: mediasoup looks at the first packet only.
            body = self.sps + self.pps + [u for u in body if nalType(u) not in (NAL_SPS, NAL_PPS)]
        return toAnnexB(body), key


def h264IsKeyFrame(annexB: bytes) -> bool:
    return any(nalType(unit) == NAL_IDR for unit in annexBUnits(annexB))


def h264StartsWithSps(annexB: bytes) -> bool:
    for unit in annexBUnits(annexB):
        kind = nalType(unit)
        if kind in (NAL_AUD, NAL_SEI):
            continue
        return kind == NAL_SPS
    return False


# VP8 (RFC 6386 9.1): a 3-byte frame tag; key frames follow it with a start code and the size.
def vp8IsKeyFrame(frame: bytes) -> bool:
    return len(frame) >= 3 and frame[0] & 0x01 == 0


def vp8Size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) of a VP8 key frame, None for an inter frame."""
    if not vp8IsKeyFrame(frame) or len(frame) < 10 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height


# Opus (RFC 6716 3.1): the TOC byte's configuration gives the frame duration, its code the
# number of frames.
_OPUS_FRAME_SAMPLES_48K = (
    [480, 960, 1920, 2880] * 3  # SILK NB/MB/WB: 10, 20, 40, 60 ms
    + [480, 960] * 2  # Hybrid SWB/FB: 10, 20 ms
    + [120, 240, 480, 960] * 4  # CELT NB/WB/SWB/FB: 2.5, 5, 10, 20 ms
)


def opusPacketSamples(packet: bytes) -> int:
    """The duration of an Opus packet in 48 kHz samples. ``TypeError`` for a malformed one."""
    if not packet:
        raise TypeError("empty Opus packet")
    toc = packet[0]
    per_frame = _OPUS_FRAME_SAMPLES_48K[toc >> 3]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            raise TypeError("Opus code 3 packet without a frame count")
        frames = packet[1] & 0x3F
        if frames == 0:
            raise TypeError("Opus code 3 packet with no frames")
    samples = per_frame * frames
    if samples > 5760:  # 120 ms at most
        raise TypeError(f"Opus packet longer than 120 ms ({samples} samples)")
    return samples


# CELT fullband silence, one 20 ms frame ("\xff\xfe" decodes to silence).
_OPUS_SILENT_FRAME = b"\xff\xfe"


def opusSilence(samples: int) -> bytes:
    """An Opus packet of silence lasting ``samples`` (48 kHz): 20 ms frames, or one 10, 5 or
    2.5 ms CELT frame for shorter or odd durations."""
    if samples >= 960 and samples % 960 == 0:
        count = samples // 960
        if count == 1:
            return bytes([0xF8]) + _OPUS_SILENT_FRAME
        # Code 3, constant bitrate: count byte then the frames.
        return bytes([0xFB, count]) + _OPUS_SILENT_FRAME * count
    config = {120: 0x1C, 240: 0x1D, 480: 0x1E}.get(samples, 0x1F)
    return bytes([config << 3]) + _OPUS_SILENT_FRAME
