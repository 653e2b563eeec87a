"""The video send path on an in-memory port: simulcast, bitrate, pause, key frames, RTX."""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import pytest
from aiortc.codecs.h264 import h264_depayload
from aiortc.rtp import (
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
)

from mediasoup_client.handlers.aiortc.send import ProducerSender
from mediasoup_client.handlers.aiortc.send.encoders import vp9Available
from mediasoup_client.media.test_sources import PatternVideoTrack
from tests.unit.fake_rtp_port import (
    FakeRtpPort,
    videoRtpParameters,
    vp8IsKeyFrame,
    vp8KeyFrameSize,
    waitFor,
)

# Sources run 4x faster than real time: a second of test is four seconds of media.
SPEED = 4.0
SIMULCAST = [{}, {}, {}]


class Harness:
    def __init__(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.port = FakeRtpPort(connected=kwargs.pop("connected", True))
        self.params = params
        self.track = kwargs.pop("track", None) or PatternVideoTrack(320, 240, 30, speed=SPEED)
        self.sender = ProducerSender(
            port=self.port, track=self.track, rtpParameters=params, **kwargs
        )  # type: ignore[arg-type]

    @property
    def ssrcs(self) -> list[int]:
        return [e["ssrc"] for e in self.params["encodings"]]

    def packets(self, layer: int = 0) -> list[RtpPacket]:
        return self.port.packets(self.ssrcs[layer])

    def frameStarts(self, layer: int = 0) -> list[RtpPacket]:
        """The first packet of every frame (VP8 S bit, partition 0)."""
        return [p for p in self.packets(layer) if p.payload[0] & 0x1F == 0x10]

    def keyFrames(self, layer: int = 0) -> int:
        return sum(1 for p in self.frameStarts(layer) if vp8IsKeyFrame(p.payload))

    def frames(self, layer: int = 0) -> int:
        return len(self.frameStarts(layer))

    async def waitFrames(self, count: int, layers: list[int] | None = None) -> None:
        indices = layers if layers is not None else list(range(len(self.ssrcs)))
        await waitFor(lambda: all(self.frames(i) >= count for i in indices), timeout=10)


@pytest.fixture
async def harnesses() -> AsyncIterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for harness in made:
        await harness.sender.stop()
        harness.track.stop()


@pytest.fixture
def make(harnesses: list[Harness]) -> Any:
    def factory(params: dict[str, Any], **kwargs: Any) -> Harness:
        harness = Harness(params, **kwargs)
        harnesses.append(harness)
        harness.sender.start()
        return harness

    return factory


def mediaBitrate(packets: list[RtpPacket], fps: float = 30.0) -> float:
    """Payload bits per second of media time (RTP timestamps), skipping the first frame."""
    first = packets[0].timestamp
    rest = [p for p in packets if p.timestamp != first]
    span = ((rest[-1].timestamp - rest[0].timestamp) & 0xFFFFFFFF) / 90000 + 1 / fps
    return sum(len(p.payload) for p in rest) * 8 / span


async def test_simulcast_sends_one_stream_per_encoding_with_rids_and_rising_sizes(make: Any):
    h = make(videoRtpParameters(encodings=SIMULCAST))
    await h.waitFrames(30)
    assert h.port.ssrcs() == set(h.ssrcs)  # no RTX without NACKs
    sizes = []
    volumes = []
    for index in range(3):
        packets = h.packets(index)
        assert {p.extensions.rtp_stream_id for p in packets} == {f"r{index}"}
        assert {p.extensions.mid for p in packets} == {"0"}
        assert {p.payload_type for p in packets} == {101}
        assert all(p.extensions.abs_send_time is not None for p in packets)
        assert vp8IsKeyFrame(packets[0].payload)
        sizes.append(vp8KeyFrameSize(packets[0].payload))
        volumes.append(sum(len(p.payload) for p in packets[:200]))
    assert sizes == [(80, 60), (160, 120), (320, 240)]
    assert volumes[0] < volumes[1] < volumes[2]
    # One media clock: the same source frame has the same RTP timestamp on every layer.
    common = {p.timestamp for p in h.frameStarts(0)} & {p.timestamp for p in h.frameStarts(2)}
    assert len(common) >= 20


async def test_max_bitrate_is_the_encoder_target(make: Any):
    # The pattern needs ~750 kbps at 320x240; the caps must hold it well below that.
    h = make(videoRtpParameters(encodings=[{"maxBitrate": 150_000}, {"maxBitrate": 400_000}]))
    for index in range(2):
        h.sender._video.layers[index].encoding["scaleResolutionDownBy"] = 1.0
    await h.waitFrames(120)
    low = mediaBitrate(h.packets(0))
    high = mediaBitrate(h.packets(1))
    assert 0.6 * 150_000 < low < 1.3 * 150_000, low
    assert 0.6 * 400_000 < high < 1.3 * 400_000, high
    stats = h.sender.getStats()
    assert [stats[f"OT{ssrc}"]["targetBitrate"] for ssrc in h.ssrcs] == [150_000, 400_000]


async def test_max_framerate_drops_frames(make: Any):
    h = make(videoRtpParameters(encodings=[{"maxFramerate": 15}]))
    await h.waitFrames(40)
    starts = h.frameStarts()
    span = ((starts[-1].timestamp - starts[0].timestamp) & 0xFFFFFFFF) / 90000
    fps = (len(starts) - 1) / span
    assert 13.5 <= fps <= 16.5, fps


async def test_pause_sends_nothing_and_resume_starts_with_a_key_frame(make: Any):
    h = make(videoRtpParameters())
    await h.waitFrames(10)
    h.sender.pause()
    await asyncio.sleep(0.1)  # a frame already being encoded may still go out
    count = len(h.port.rtp)
    await asyncio.sleep(0.4)
    assert len(h.port.rtp) == count
    before = h.packets()[-1].timestamp
    h.sender.resume()
    await waitFor(lambda: len(h.port.rtp) > count)
    first = h.port.rtp[count].packet
    assert vp8IsKeyFrame(first.payload)
    assert 0 < (first.timestamp - before) & 0xFFFFFFFF < 0x80000000


async def test_a_quick_pause_still_resumes_with_a_key_frame(make: Any):
    # Our own key frames (resume) are not held back like PLIs right after a key frame.
    h = make(videoRtpParameters())
    await h.waitFrames(2)
    h.sender.pause()
    await asyncio.sleep(0.05)
    count = len(h.port.rtp)
    h.sender.resume()
    await waitFor(lambda: len(h.port.rtp) > count)
    assert vp8IsKeyFrame(h.port.rtp[count].packet.payload)


async def test_pli_gives_a_key_frame_on_that_layer_only(make: Any):
    h = make(videoRtpParameters(encodings=SIMULCAST))
    await h.waitFrames(15)
    await asyncio.sleep(0.35)  # past the minimum key frame interval
    keys = [h.keyFrames(i) for i in range(3)]
    assert keys == [1, 1, 1]
    await h.port.inject(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=h.ssrcs[1]))
    await waitFor(lambda: h.keyFrames(1) == 2)
    frames = [h.frames(i) for i in range(3)]
    await waitFor(lambda: all(h.frames(i) >= frames[i] + 10 for i in range(3)))
    assert [h.keyFrames(i) for i in range(3)] == [1, 2, 1]
    stats = h.sender.getStats()
    assert [stats[f"OT{s}"]["pliCount"] for s in h.ssrcs] == [0, 1, 0]
    assert [stats[f"OT{s}"]["keyFramesEncoded"] for s in h.ssrcs] == [1, 2, 1]


async def test_fir_gives_a_key_frame(make: Any):
    h = make(videoRtpParameters())
    await h.waitFrames(10)
    await asyncio.sleep(0.35)
    fci = struct.pack("!IB3x", h.ssrcs[0], 1)
    await h.port.inject(RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=0, fci=fci))
    await waitFor(lambda: h.keyFrames() == 2)
    assert h.sender.getStats()[f"OT{h.ssrcs[0]}"]["firCount"] == 1


async def test_nack_is_answered_over_rtx_with_the_original_sequence_number(make: Any):
    params = videoRtpParameters(encodings=[{}, {}])
    h = make(params)
    await h.waitFrames(10)
    lost = h.packets(1)[5]
    encoding = params["encodings"][1]
    await h.port.inject(
        RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=encoding["ssrc"], lost=[lost.sequence_number])
    )
    await waitFor(lambda: bool(h.port.packets(encoding["rtx"]["ssrc"])))
    (rtx,) = h.port.packets(encoding["rtx"]["ssrc"])
    assert rtx.payload_type == 102
    assert rtx.payload[:2] == struct.pack("!H", lost.sequence_number)
    assert rtx.payload[2:] == lost.payload
    assert rtx.timestamp == lost.timestamp
    assert rtx.marker == lost.marker
    assert rtx.extensions.repaired_rtp_stream_id == "r1"
    assert rtx.extensions.rtp_stream_id is None
    assert rtx.extensions.mid == "0"
    stats = h.sender.getStats()[f"OT{encoding['ssrc']}"]
    assert stats["nackCount"] == 1
    assert stats["retransmittedPacketsSent"] == 1
    # A second NACK for the same packet gets the next RTX sequence number.
    await asyncio.sleep(0.01)
    await h.port.inject(
        RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=encoding["ssrc"], lost=[lost.sequence_number])
    )
    await waitFor(lambda: len(h.port.packets(encoding["rtx"]["ssrc"])) == 2)
    second = h.port.packets(encoding["rtx"]["ssrc"])[1]
    assert second.sequence_number == (rtx.sequence_number + 1) & 0xFFFF


async def test_nack_without_rtx_resends_the_packet_itself(make: Any):
    h = make(videoRtpParameters(rtx=False))
    await h.waitFrames(5)
    lost = h.packets()[3]
    count = len(h.packets())
    await h.port.inject(
        RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=h.ssrcs[0], lost=[lost.sequence_number])
    )
    await waitFor(
        lambda: any(p.sequence_number == lost.sequence_number for p in h.packets()[count:])
    )
    again = next(p for p in h.packets()[count:] if p.sequence_number == lost.sequence_number)
    assert again.payload == lost.payload and again.timestamp == lost.timestamp


async def test_max_spatial_layer_stops_and_restarts_upper_layers(make: Any):
    h = make(videoRtpParameters(encodings=SIMULCAST))
    await h.waitFrames(10)
    h.sender.setMaxSpatialLayer(0)
    await asyncio.sleep(0.1)
    counts = [len(h.packets(i)) for i in range(3)]
    await asyncio.sleep(0.4)
    assert len(h.packets(1)) == counts[1] and len(h.packets(2)) == counts[2]
    assert len(h.packets(0)) > counts[0]
    assert [e["active"] for e in h.sender.encodings] == [True, False, False]
    h.sender.setMaxSpatialLayer(2)
    await waitFor(lambda: len(h.packets(1)) > counts[1] and len(h.packets(2)) > counts[2])
    assert vp8IsKeyFrame(h.packets(1)[counts[1]].payload)
    assert vp8IsKeyFrame(h.packets(2)[counts[2]].payload)


def _unwrapped(timestamps: list[int]) -> list[int]:
    out = [timestamps[0]]
    for ts in timestamps[1:]:
        delta = (ts - out[-1]) & 0xFFFFFFFF
        out.append(out[-1] + (delta - (1 << 32) if delta >= 1 << 31 else delta))
    return out


async def test_replace_track_keeps_timestamps_monotonic_and_none_sends_nothing(make: Any):
    h = make(videoRtpParameters())
    await h.waitFrames(15)
    swap_at = len(h.frameStarts())
    # The new source's timestamps restart at 0 and its size differs.
    await h.sender.replaceTrack(PatternVideoTrack(240, 160, 30, speed=SPEED))
    await waitFor(lambda: h.frames() >= swap_at + 15)
    starts = h.frameStarts()
    timestamps = _unwrapped([p.timestamp for p in starts])
    assert all(b > a for a, b in itertools.pairwise(timestamps))
    after = starts[swap_at:]
    swapped = next(i for i, p in enumerate(after) if vp8KeyFrameSize(p.payload) == (240, 160))
    assert swapped <= 2 and vp8IsKeyFrame(after[swapped].payload)
    await h.sender.replaceTrack(None)
    await asyncio.sleep(0.1)
    count = len(h.port.rtp)
    await asyncio.sleep(0.3)
    assert len(h.port.rtp) == count


async def test_nothing_is_read_or_sent_before_the_port_connects(make: Any):
    h = make(videoRtpParameters(), connected=False)
    await asyncio.sleep(0.3)
    assert h.port.rtp == [] and h.port.rtcp == []
    assert h.track.framesGenerated == 0
    h.port.connect()
    await h.waitFrames(3)
    assert vp8IsKeyFrame(h.packets()[0].payload)


async def test_scale_and_bitrate_changes_apply_at_once(make: Any):
    h = make(videoRtpParameters())
    await h.waitFrames(5)
    h.sender.setRtpEncodingParameters({"scaleResolutionDownBy": 2, "maxBitrate": 120_000})
    assert h.sender.getStats()[f"OT{h.ssrcs[0]}"]["targetBitrate"] == 120_000
    await waitFor(
        lambda: any(vp8KeyFrameSize(p.payload) == (160, 120) for p in h.frameStarts()[5:])
    )
    assert h.sender.encodings[0]["maxBitrate"] == 120_000


async def test_remb_splits_the_estimate_lowest_layer_first(make: Any):
    encodings = [{"maxBitrate": 100_000}, {"maxBitrate": 300_000}, {"maxBitrate": 900_000}]
    h = make(videoRtpParameters(encodings=encodings))
    await h.waitFrames(5)
    # The estimate falls below what we send (overuse), so it becomes the budget.
    for estimate in (1_500_000, 450_000):
        remb = RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=pack_remb_fci(estimate, h.ssrcs))
        await h.port.inject(remb)
    stats = h.sender.getStats()
    targets = [stats[f"OT{s}"]["targetBitrate"] for s in h.ssrcs]
    # 100k + 300k leave 50k for the top layer, below its minimum (90k): it is suspended.
    assert targets[:2] == [100_000, 300_000]
    assert targets[2] == 0 and stats[f"OT{h.ssrcs[2]}"]["active"] is False
    assert stats[f"OT{h.ssrcs[2]}"]["qualityLimitationReason"] == "bandwidth"
    await asyncio.sleep(0.1)
    count = len(h.packets(2))
    await asyncio.sleep(0.3)
    assert len(h.packets(2)) == count
    assert h.frames(0) > 5


async def test_start_bitrate_only_bridges_the_time_before_the_first_estimate(make: Any):
    encodings = [{"maxBitrate": 600_000}, {"maxBitrate": 1_200_000}]
    h = make(
        videoRtpParameters(encodings=encodings), codecOptions={"videoGoogleStartBitrate": 1000}
    )
    await h.waitFrames(3)

    def targets() -> list[int]:
        stats = h.sender.getStats()
        return [stats[f"OT{s}"]["targetBitrate"] for s in h.ssrcs]

    assert targets() == [600_000, 400_000]
    # The router's estimates start low (it has received little yet) and grow, about once a
    # second: no congestion, so the start bitrate stops capping (the top layer's encoder
    # follows once its 3 s hysteresis has passed).
    for step in range(12):
        estimate = int(300_000 * 1.08**step)
        remb = RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=pack_remb_fci(estimate, h.ssrcs))
        await h.port.inject(remb)
        if targets() == [600_000, 1_200_000]:
            break
        await asyncio.sleep(0.5)
    assert targets() == [600_000, 1_200_000]


async def test_stats_and_receiver_reports(make: Any):
    h = make(videoRtpParameters(encodings=[{}, {}]))
    await h.waitFrames(10)
    await waitFor(lambda: any(isinstance(p, RtcpSrPacket) for p in h.port.rtcpPackets()))
    sr = next(p for p in h.port.rtcpPackets() if isinstance(p, RtcpSrPacket))
    ssrc = sr.ssrc
    lsr = (sr.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF
    report = RtcpReceiverInfo(
        ssrc=ssrc,
        fraction_lost=64,
        packets_lost=3,
        highest_sequence=1000,
        jitter=900,
        lsr=lsr,
        dlsr=int(0.01 * 65536),
    )
    await asyncio.sleep(0.05)  # the receiver held the SR 10 ms; 50 ms have passed
    await h.port.inject(RtcpRrPacket(ssrc=1, reports=[report]))
    stats = h.sender.getStats()
    outbound = [s for s in stats.values() if s["type"] == "outbound-rtp"]
    assert len(outbound) == 2
    for entry in outbound:
        for key in (
            "id", "timestamp", "ssrc", "rid", "kind", "packetsSent", "bytesSent",
            "headerBytesSent", "framesEncoded", "keyFramesEncoded", "frameWidth",
            "frameHeight", "framesPerSecond", "targetBitrate", "nackCount", "pliCount",
            "firCount", "retransmittedPacketsSent",
        ):  # fmt: skip
            assert key in entry, key
        assert entry["kind"] == "video" and entry["packetsSent"] > 0
        assert entry["framesEncoded"] >= 10 and entry["frameWidth"] > 0
    remote = stats[f"RI{ssrc}"]
    assert remote["type"] == "remote-inbound-rtp" and remote["localId"] == f"OT{ssrc}"
    assert remote["packetsLost"] == 3 and remote["fractionLost"] == 0.25
    assert remote["jitter"] == pytest.approx(0.01)
    assert 0.03 <= remote["roundTripTime"] < 2
    assert stats[f"OT{ssrc}"]["remoteId"] == f"RI{ssrc}"


async def test_sender_reports_carry_cname_and_stop_says_bye(make: Any, harnesses: list[Harness]):
    h = make(videoRtpParameters(encodings=[{}, {}]))
    await h.waitFrames(5)
    await waitFor(
        lambda: (
            {p.ssrc for p in h.port.rtcpPackets() if isinstance(p, RtcpSrPacket)} == set(h.ssrcs)
        )
    )
    sdes = [p for p in h.port.rtcpPackets() if isinstance(p, RtcpSdesPacket)]
    assert {item for p in sdes for c in p.chunks for item in c.items} == {(1, b"test-cname")}
    srs = [p for p in h.port.rtcpPackets() if isinstance(p, RtcpSrPacket)]
    # The SR's RTP timestamp lies on the stream's clock, close to the newest packet's.
    latest = h.packets(0)[-1].timestamp
    sr0 = [p for p in srs if p.ssrc == h.ssrcs[0]][-1]
    assert (
        abs(((sr0.sender_info.rtp_timestamp - latest + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)) < 90000
    )
    listeners = h.port.listenerCount
    await h.sender.stop()
    assert h.port.listenerCount == listeners - 1
    byes = [p for p in h.port.rtcpPackets() if type(p).__name__ == "RtcpByePacket"]
    assert byes and set(byes[-1].sources) == set(h.ssrcs)
    count = len(h.port.rtp)
    await asyncio.sleep(0.2)
    assert len(h.port.rtp) == count


async def test_trackended_is_emitted_when_the_source_ends(make: Any):
    h = make(videoRtpParameters())
    ended = asyncio.Event()
    h.sender.on("trackended", ended.set)
    await h.waitFrames(3)
    h.track.stop()
    await asyncio.wait_for(ended.wait(), 2)


async def test_h264_packetization_mode_1_decodes(make: Any):
    h = make(videoRtpParameters(mimeType="video/H264"))
    await waitFor(lambda: sum(p.marker for p in h.packets()) >= 10)
    packets = h.packets()
    first = packets[0].payload
    # STAP-A carrying SPS first, as mediasoup's key frame detection wants.
    assert first[0] & 0x1F == 24 and first[3] & 0x1F == 7
    decoder = av.CodecContext.create("h264", "r")
    frames = []
    data = b""
    for packet in packets:
        data += h264_depayload(packet.payload)
        if packet.marker:
            frames += decoder.decode(av.Packet(data))
            data = b""
    assert len(frames) >= 9
    assert (frames[0].width, frames[0].height) == (320, 240)


@pytest.mark.skipif(not vp9Available(), reason="no libvpx-vp9 in this PyAV")
async def test_vp9_descriptor_and_key_frames(make: Any):
    h = make(videoRtpParameters(mimeType="video/VP9"))
    await waitFor(lambda: sum(p.marker for p in h.packets()) >= 5)
    first = h.packets()[0].payload
    # I, L, B and V set, P clear: a key frame start with the scalability structure.
    assert first[0] & 0xE0 == 0xA0 and first[0] & 0x08 and first[0] & 0x02
    ss = first[5:10]
    assert ss[0] == 0x10 and struct.unpack("!HH", ss[1:]) == (320, 240)
    later = [p.payload for p in h.packets()[1:] if p.payload[0] & 0x08]
    assert later and all(p[0] & 0x40 for p in later)  # inter frames


async def test_frames_are_dropped_not_queued_when_encoding_falls_behind(make: Any):
    # An unpaced source outruns any encoder: frames are dropped, memory stays flat.
    track = PatternVideoTrack(320, 240, 30, paced=False)
    h = make(videoRtpParameters(), track=track)
    started = time.monotonic()
    await h.waitFrames(10)
    stats = h.sender.getStats()[f"OT{h.ssrcs[0]}"]
    assert stats["framesDropped"] > 0
    assert track.framesGenerated > stats["framesEncoded"]
    assert time.monotonic() - started < 5
