"""RTP payload formats for the encoded frames: VP8 (RFC 7741), VP9 (RFC 9628), H264 (RFC 6184).

Each packetizer keeps the per-stream state its format needs (picture ids, TL0PICIDX) and turns
one encoded frame into RTP payloads no larger than ``MAX_PAYLOAD``. Frames are split into
evenly sized packets so the last one is not a tiny straggler.
"""

from __future__ import annotations

import random

from ....media.bitstream import NAL_AUD, NAL_SEI, annexBUnits
from .encoders import EncodedFrame

# RTP payload budget: 1500-byte MTU minus IP/UDP (28), RTP header + extensions (~40),
# SRTP tag (10) and the RTX OSN (2), with room to spare.
MAX_PAYLOAD = 1200


def _split(data: bytes, room: int) -> list[bytes]:
    """``data`` in as few chunks of at most ``room`` bytes as possible, evenly sized."""
    if not data:
        return [b""]
    count = -(-len(data) // room)
    size = -(-len(data) // count)
    return [data[pos : pos + size] for pos in range(0, len(data), size)]


class Packetizer:
    def packetize(self, encoded: EncodedFrame) -> list[bytes]:
        raise NotImplementedError


class Vp8Packetizer(Packetizer):
    """Extended descriptor with a 15-bit PictureID, TL0PICIDX, TID and Y: mediasoup only parses
    extended descriptors, and needs them to detect key frames, switch simulcast layers and
    drop temporal layers (TL0PICIDX counts base-layer frames; Y marks frames that refer only
    to the base layer, where a receiver may move up)."""

    def __init__(self) -> None:
        self._picture_id = random.randint(0, 0x7FFF)
        self._tl0_pic_idx = random.randint(0, 0xFF)

    def packetize(self, encoded: EncodedFrame) -> list[bytes]:
        pid = self._picture_id
        self._picture_id = (pid + 1) & 0x7FFF
        if encoded.temporalLayer == 0:
            self._tl0_pic_idx = (self._tl0_pic_idx + 1) & 0xFF
        tid = (encoded.temporalLayer & 0x03) << 6 | (0x20 if encoded.layerSync else 0)
        # I|L|T set.
        tail = bytes([0xE0, 0x80 | (pid >> 8), pid & 0xFF, self._tl0_pic_idx, tid])
        chunks = _split(encoded.data, MAX_PAYLOAD - 1 - len(tail))
        # X (extended) always; S (start of partition) on the first packet only.
        return [bytes([0x90 if i == 0 else 0x80]) + tail + c for i, c in enumerate(chunks)]


class Vp9Packetizer(Packetizer):
    """Non-flexible mode, one spatial and one temporal layer, scalability structure (with the
    resolution) on the first packet of every key frame."""

    def __init__(self) -> None:
        self._picture_id = random.randint(0, 0x7FFF)
        self._tl0_pic_idx = random.randint(0, 0xFF)

    def packetize(self, encoded: EncodedFrame) -> list[bytes]:
        keyFrame, width, height = encoded.keyFrame, encoded.width, encoded.height
        pid = self._picture_id
        common = bytes([0x80 | (pid >> 8), pid & 0xFF, 0x00, self._tl0_pic_idx])
        self._picture_id = (pid + 1) & 0x7FFF
        self._tl0_pic_idx = (self._tl0_pic_idx + 1) & 0xFF
        ss = b""
        if keyFrame:
            # N_S = 0 (one spatial layer), Y = 1 (resolution present), G = 0.
            ss = bytes([0x10]) + width.to_bytes(2, "big") + height.to_bytes(2, "big")
        chunks = _split(encoded.data, MAX_PAYLOAD - 1 - len(common) - len(ss))
        payloads: list[bytes] = []
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            # I (picture id) | P (inter-predicted) | L (layer indices) | B | E | V.
            first = 0x80 | 0x20 | (0 if keyFrame else 0x40)
            first |= (0x08 if i == 0 else 0) | (0x04 if i == last else 0)
            if i == 0 and ss:
                payloads.append(bytes([first | 0x02]) + common + ss + chunk)
            else:
                payloads.append(bytes([first]) + common + chunk)
        return payloads


_NAL_STAP_A = 24
_NAL_FU_A = 28


class H264Packetizer(Packetizer):
    """Packetization mode 1: small NAL units (SPS, PPS, small slices) share STAP-A packets,
    large ones are split into FU-A fragments. SEI and AUD units are dropped."""

    def packetize(self, encoded: EncodedFrame) -> list[bytes]:
        payloads: list[bytes] = []
        pending: list[bytes] = []
        pending_size = 1

        def flush() -> None:
            nonlocal pending_size
            if len(pending) == 1:
                payloads.append(pending[0])
            elif pending:
                nri = max(nal[0] & 0x60 for nal in pending)
                payloads.append(
                    bytes([nri | _NAL_STAP_A])
                    + b"".join(len(nal).to_bytes(2, "big") + nal for nal in pending)
                )
            pending.clear()
            pending_size = 1

        for nal in annexBUnits(encoded.data):
            nal_type = nal[0] & 0x1F
            if nal_type in (NAL_SEI, NAL_AUD):
                continue
            if len(nal) > MAX_PAYLOAD:
                flush()
                payloads.extend(self._fragment(nal))
            elif pending_size + 2 + len(nal) <= MAX_PAYLOAD:
                pending.append(nal)
                pending_size += 2 + len(nal)
            else:
                flush()
                pending.append(nal)
                pending_size += 2 + len(nal)
        flush()
        return payloads

    @staticmethod
    def _fragment(nal: bytes) -> list[bytes]:
        indicator = (nal[0] & 0xE0) | _NAL_FU_A
        nal_type = nal[0] & 0x1F
        chunks = _split(nal[1:], MAX_PAYLOAD - 2)
        last = len(chunks) - 1
        return [
            bytes([indicator, (0x80 if i == 0 else 0) | (0x40 if i == last else 0) | nal_type])
            + chunk
            for i, chunk in enumerate(chunks)
        ]


def createPacketizer(mimeType: str) -> Packetizer:
    name = mimeType.lower()
    if name == "video/vp8":
        return Vp8Packetizer()
    if name == "video/vp9":
        return Vp9Packetizer()
    if name == "video/h264":
        return H264Packetizer()
    raise ValueError(f"no packetizer for {mimeType}")
