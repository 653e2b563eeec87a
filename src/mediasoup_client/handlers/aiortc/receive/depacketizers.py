"""RTP payload formats on the receive side: VP8 (RFC 7741), VP9 (RFC 9628), H264 (RFC 6184),
Opus (RFC 7587).

A depacketizer turns one RTP payload into the bytes it contributes to its frame, and says what
it can tell from that packet alone: whether it starts a frame, whether the frame is a key
frame. The jitter buffer concatenates the pieces of a frame in sequence-number order.
Malformed payloads raise ``ValueError`` (the packet is then dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

_START_CODE = b"\x00\x00\x00\x01"


@dataclass(slots=True)
class Depacketized:
    data: bytes
    frameStart: bool  # this packet is the first of a frame (as far as the payload tells)
    keyFrame: bool  # the frame this packet belongs to is a key frame (independently decodable)


class Depacketizer:
    def depacketize(self, payload: bytes) -> Depacketized:
        raise NotImplementedError


class Vp8Depacketizer(Depacketizer):
    """RFC 7741 payload descriptor; the key-frame bit is the P bit of the VP8 frame header,
    present in the first packet of partition 0."""

    def depacketize(self, payload: bytes) -> Depacketized:
        if not payload:
            raise ValueError("empty VP8 payload")
        first = payload[0]
        extended, start, partition = first & 0x80, first & 0x10, first & 0x07
        pos = 1
        if extended:
            if len(payload) < 2:
                raise ValueError("truncated VP8 descriptor")
            flags = payload[1]
            pos = 2
            if flags & 0x80:  # I: picture id, 7 or 15 bits (M)
                if len(payload) <= pos:
                    raise ValueError("truncated VP8 picture id")
                pos += 2 if payload[pos] & 0x80 else 1
            if flags & 0x40:  # L: TL0PICIDX
                pos += 1
            if flags & 0x30:  # T or K: TID/Y/KEYIDX
                pos += 1
        if pos > len(payload):
            raise ValueError("truncated VP8 descriptor")
        data = payload[pos:]
        frame_start = bool(start) and partition == 0
        key = frame_start and bool(data) and not data[0] & 0x01
        return Depacketized(data, frame_start, key)


class Vp9Depacketizer(Depacketizer):
    """RFC 9628 payload descriptor (flexible and non-flexible modes, scalability structure
    skipped). One frame is one spatial-layer frame (B..E); a key frame is a non-inter-predicted
    frame of the base spatial layer."""

    def depacketize(self, payload: bytes) -> Depacketized:
        if not payload:
            raise ValueError("empty VP9 payload")
        first = payload[0]
        has_picture_id = first & 0x80
        inter_predicted = first & 0x40
        has_layers = first & 0x20
        flexible = first & 0x10
        begin = first & 0x08
        has_ss = first & 0x02
        pos = 1
        if has_picture_id:
            if len(payload) <= pos:
                raise ValueError("truncated VP9 picture id")
            pos += 2 if payload[pos] & 0x80 else 1
        spatial_id = 0
        inter_layer = False
        if has_layers:
            if len(payload) <= pos:
                raise ValueError("truncated VP9 layer indices")
            spatial_id = (payload[pos] >> 1) & 0x07
            inter_layer = bool(payload[pos] & 0x01)
            pos += 1 if flexible else 2  # TL0PICIDX in non-flexible mode
        if flexible and inter_predicted:
            for _ in range(3):  # up to three P_DIFF bytes, N bit says another follows
                if len(payload) <= pos:
                    raise ValueError("truncated VP9 reference indices")
                more = payload[pos] & 0x01
                pos += 1
                if not more:
                    break
        if has_ss:
            pos = self._skipScalabilityStructure(payload, pos)
        if pos > len(payload):
            raise ValueError("truncated VP9 descriptor")
        key = bool(begin) and not inter_predicted and spatial_id == 0 and not inter_layer
        return Depacketized(payload[pos:], bool(begin), key)

    @staticmethod
    def _skipScalabilityStructure(payload: bytes, pos: int) -> int:
        if len(payload) <= pos:
            raise ValueError("truncated VP9 scalability structure")
        header = payload[pos]
        pos += 1
        spatial_layers = (header >> 5) + 1
        if header & 0x10:  # Y: resolutions
            pos += 4 * spatial_layers
        if header & 0x08:  # G: picture group description
            if len(payload) <= pos:
                raise ValueError("truncated VP9 picture group")
            groups = payload[pos]
            pos += 1
            for _ in range(groups):
                if len(payload) <= pos:
                    raise ValueError("truncated VP9 picture group")
                references = (payload[pos] >> 2) & 0x03
                pos += 1 + references
        return pos


_NAL_IDR = 5
_NAL_SEI = 6
_NAL_SPS = 7
_NAL_PPS = 8
_NAL_AUD = 9
_NAL_STAP_A = 24
_NAL_FU_A = 28
_PICTURE_PRELUDE = {_NAL_SEI, _NAL_SPS, _NAL_PPS, _NAL_AUD}


def _firstSliceOfPicture(nal_type: int, after_header: bytes) -> bool:
    """A coded slice whose first_mb_in_slice is 0 (ue(v) of 0 is the single bit 1)."""
    return nal_type in (1, _NAL_IDR) and bool(after_header) and bool(after_header[0] & 0x80)


class H264Depacketizer(Depacketizer):
    """Packetization modes 0 and 1: single NAL units, STAP-A and FU-A, out as Annex B.

    The payload alone cannot say for certain that a packet starts an access unit; it does when
    it begins with a parameter set, SEI or AUD (which precede the slices), or with the first
    slice of a picture. The jitter buffer also uses sequence continuity."""

    def depacketize(self, payload: bytes) -> Depacketized:
        if not payload:
            raise ValueError("empty H264 payload")
        nal_type = payload[0] & 0x1F
        if 1 <= nal_type <= 23:
            start = nal_type in _PICTURE_PRELUDE or _firstSliceOfPicture(nal_type, payload[1:2])
            return Depacketized(_START_CODE + payload, start, nal_type == _NAL_IDR)
        if nal_type == _NAL_STAP_A:
            return self._stapA(payload)
        if nal_type == _NAL_FU_A:
            return self._fuA(payload)
        raise ValueError(f"unsupported H264 NAL unit type {nal_type}")

    @staticmethod
    def _stapA(payload: bytes) -> Depacketized:
        pos = 1
        parts: list[bytes] = []
        start = False
        key = False
        while pos < len(payload):
            if pos + 2 > len(payload):
                raise ValueError("truncated STAP-A size")
            size = int.from_bytes(payload[pos : pos + 2], "big")
            pos += 2
            nal = payload[pos : pos + size]
            if size == 0 or len(nal) != size:
                raise ValueError("truncated STAP-A unit")
            pos += size
            nal_type = nal[0] & 0x1F
            if not parts:
                start = nal_type in _PICTURE_PRELUDE or _firstSliceOfPicture(nal_type, nal[1:2])
            key = key or nal_type == _NAL_IDR
            parts.append(_START_CODE + nal)
        if not parts:
            raise ValueError("empty STAP-A")
        return Depacketized(b"".join(parts), start, key)

    @staticmethod
    def _fuA(payload: bytes) -> Depacketized:
        if len(payload) < 3:
            raise ValueError("truncated FU-A")
        indicator, header = payload[0], payload[1]
        nal_type = header & 0x1F
        key = nal_type == _NAL_IDR
        if header & 0x80:  # S: first fragment, rebuild the NAL header
            nal_header = bytes([(indicator & 0xE0) | nal_type])
            start = _firstSliceOfPicture(nal_type, payload[2:3]) or nal_type in _PICTURE_PRELUDE
            return Depacketized(_START_CODE + nal_header + payload[2:], start, key)
        return Depacketized(payload[2:], False, key)


class OpusDepacketizer(Depacketizer):
    """One Opus packet per RTP packet, every packet a frame of its own."""

    def depacketize(self, payload: bytes) -> Depacketized:
        return Depacketized(payload, True, True)


def createDepacketizer(mimeType: str) -> Depacketizer:
    name = mimeType.lower()
    if name == "video/vp8":
        return Vp8Depacketizer()
    if name == "video/vp9":
        return Vp9Depacketizer()
    if name == "video/h264":
        return H264Depacketizer()
    if name == "audio/opus":
        return OpusDepacketizer()
    raise ValueError(f"no depacketizer for {mimeType}")
