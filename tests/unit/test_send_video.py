"""The video send path on a fake clock and an in-memory port: simulcast, bitrate, pause, key
frames, RTX, temporal layers. Frames are pushed by the test and encoded inline, so media time
and the clock move together and nothing waits in real time."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import VpxPayloadDescriptor
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

from mediasoup_client.handlers.aiortc.send.encoders import vp9Available
from mediasoup_client.handlers.aiortc.send.pipeline import EncodeJob
from mediasoup_client.handlers.aiortc.send.producer_sender import PauseMode
from mediasoup_client.handlers.aiortc.send.rtp_header import NTP_EPOCH_OFFSET
from mediasoup_client.handlers.aiortc.send.scheduler import JobDone
from mediasoup_client.media.test_sources import PatternVideoTrack
from tests.unit.fake_rtp_port import videoRtpParameters, vp8IsKeyFrame, vp8KeyFrameSize
from tests.unit.send_harness import SendHarness

SIMULCAST: list[dict[str, Any]] = [{}, {}, {}]


class VideoHarness(SendHarness):
    def frameStarts(self, layer: int = 0) -> list[RtpPacket]:
        """The first packet of every frame (VP8 S bit, partition 0)."""
        return [p for p in self.packets(layer) if p.payload[0] & 0x1F == 0x10]

    def keyFrames(self, layer: int = 0) -> int:
        return sum(1 for p in self.frameStarts(layer) if vp8IsKeyFrame(p.payload))

    def frames(self, layer: int = 0) -> int:
        return len(self.frameStarts(layer))

    def feedFrames(self, count: int, layers: list[int] | None = None) -> None:
        """Push frames until every layer (or those given) has sent ``count`` frames."""
        indices = layers if layers is not None else list(range(len(self.ssrcs)))
        self.feed(60, until=lambda: all(self.frames(i) >= count for i in indices))


@pytest.fixture
async def harnesses() -> Any:
    made: list[VideoHarness] = []
    yield made
    for harness in made:
        await harness.producer.stop()
        harness.track.stop()


@pytest.fixture
def make(harnesses: list[VideoHarness]) -> Any:
    def factory(params: dict[str, Any], **kwargs: Any) -> VideoHarness:
        track = kwargs.pop("track", None) or PatternVideoTrack(320, 240, 30, paced=False)
        harness = VideoHarness(params, track, **kwargs)
        harnesses.append(harness)
        return harness

    return factory


def mediaBitrate(packets: list[RtpPacket], fps: float = 30.0) -> float:
    """Payload bits per second of media time (RTP timestamps), skipping the first frame."""
    first = packets[0].timestamp
    rest = [p for p in packets if p.timestamp != first]
    span = ((rest[-1].timestamp - rest[0].timestamp) & 0xFFFFFFFF) / 90000 + 1 / fps
    return sum(len(p.payload) for p in rest) * 8 / span


def remb(estimate: int, ssrcs: list[int]) -> RtcpPsfbPacket:
    return RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=pack_remb_fci(estimate, ssrcs))


def test_simulcast_sends_one_stream_per_encoding_with_rids_and_rising_sizes(make: Any):
    h = make(videoRtpParameters(encodings=SIMULCAST))
    h.feedFrames(30)
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


def test_max_bitrate_is_the_encoder_target(make: Any):
    # The pattern needs ~750 kbps at 320x240; the caps must hold it well below that.
    h = make(
        videoRtpParameters(
            encodings=[
                {"maxBitrate": 150_000, "scaleResolutionDownBy": 1},
                {"maxBitrate": 400_000, "scaleResolutionDownBy": 1},
            ]
        )
    )
    h.feedFrames(120)
    low = mediaBitrate(h.packets(0))
    high = mediaBitrate(h.packets(1))
    assert 0.6 * 150_000 < low < 1.3 * 150_000, low
    assert 0.6 * 400_000 < high < 1.3 * 400_000, high
    stats = h.getStats()
    assert [stats[f"OT{ssrc}"]["targetBitrate"] for ssrc in h.ssrcs] == [150_000, 400_000]


def test_max_framerate_drops_frames(make: Any):
    h = make(videoRtpParameters(encodings=[{"maxFramerate": 15}]))
    h.feedFrames(40)
    starts = h.frameStarts()
    span = ((starts[-1].timestamp - starts[0].timestamp) & 0xFFFFFFFF) / 90000
    fps = (len(starts) - 1) / span
    assert 13.5 <= fps <= 16.5, fps


def test_pause_sends_nothing_and_resume_starts_with_a_key_frame(make: Any):
    h = make(videoRtpParameters(), pauseMode=PauseMode.ZERO_RTP)
    h.feedFrames(10)
    h.producer.pause()
    count = len(h.port.rtp)
    h.feed(0.5)
    assert len(h.port.rtp) == count
    before = h.packets()[-1].timestamp
    h.producer.resume()
    h.feed(1, until=lambda: len(h.port.rtp) > count)
    first = h.port.rtp[count].packet
    assert vp8IsKeyFrame(first.payload)
    assert 0 < (first.timestamp - before) & 0xFFFFFFFF < 0x80000000


def test_a_quick_pause_still_resumes_with_a_key_frame(make: Any):
    # Our own key frames (resume) are not held back like PLIs right after a key frame.
    h = make(videoRtpParameters(), pauseMode=PauseMode.ZERO_RTP)
    h.feedFrames(2)
    h.producer.pause()
    h.wait(0.05)
    count = len(h.port.rtp)
    h.producer.resume()
    h.feed(1, until=lambda: len(h.port.rtp) > count)
    assert vp8IsKeyFrame(h.port.rtp[count].packet.payload)


def _decodeVp8(packets: list[RtpPacket]) -> list[av.VideoFrame]:
    """Depacketise and decode one stream's packets (in order, none lost)."""
    decoder = av.CodecContext.create("vp8", "r")
    frames: list[av.VideoFrame] = []
    data = b""
    for packet in packets:
        _descriptor, payload = VpxPayloadDescriptor.parse(packet.payload)
        data += payload
        if packet.marker:
            frames += decoder.decode(av.Packet(data))
            data = b""
    return frames


def test_disabled_track_pause_keeps_the_stream_alive_with_black_frames(make: Any):
    # mediasoup-client's default (disableTrackOnPause, no zeroRtpOnPause): what a browser's
    # disabled track sends.
    h = make(videoRtpParameters(), pauseMode=PauseMode.DISABLE_TRACK)
    h.feedFrames(10)
    before = h.frames()
    h.producer.pause()
    paused_from = len(h.packets())
    h.feed(1)
    assert h.frames() >= before + 25  # still at the source's rate
    paused_packets = h.packets()[paused_from:]
    assert vp8IsKeyFrame(paused_packets[0].payload)
    assert sum(len(p.payload) for p in paused_packets) < 5_000  # black costs almost nothing
    decoded = _decodeVp8(h.packets())
    assert decoded[-1].to_ndarray(format="gray").max() <= 2  # black
    h.producer.resume()
    resumed_from = len(h.packets())
    h.feed(1, until=lambda: len(h.packets()) > resumed_from)
    assert vp8IsKeyFrame(h.packets()[resumed_from].payload)
    h.feed(0.5)
    last = _decodeVp8(h.packets())[-1].to_ndarray(format="gray")
    assert last.std() > 20  # the pattern again


def test_pause_without_disabling_the_track_changes_nothing_on_the_wire(make: Any):
    h = make(videoRtpParameters(), pauseMode=PauseMode.NONE)
    h.feedFrames(5)
    h.producer.pause()
    count = h.frames()
    h.feed(1)
    assert h.frames() >= count + 25
    assert h.keyFrames() == 1
    assert _decodeVp8(h.packets())[-1].to_ndarray(format="gray").std() > 20


def test_pli_gives_a_key_frame_on_that_layer_only(make: Any):
    h = make(videoRtpParameters(encodings=SIMULCAST))
    h.feedFrames(15)
    h.feed(0.35)  # past the minimum key frame interval
    keys = [h.keyFrames(i) for i in range(3)]
    assert keys == [1, 1, 1]
    h.port.inject(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=h.ssrcs[1]))
    h.feed(1, until=lambda: h.keyFrames(1) == 2)
    frames = [h.frames(i) for i in range(3)]
    h.feed(2, until=lambda: all(h.frames(i) >= frames[i] + 10 for i in range(3)))
    assert [h.keyFrames(i) for i in range(3)] == [1, 2, 1]
    stats = h.getStats()
    assert [stats[f"OT{s}"]["pliCount"] for s in h.ssrcs] == [0, 1, 0]
    assert [stats[f"OT{s}"]["keyFramesEncoded"] for s in h.ssrcs] == [1, 2, 1]


def test_plis_right_after_a_key_frame_are_held_back(make: Any):
    h = make(videoRtpParameters())
    h.feedFrames(2)
    h.port.inject(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=h.ssrcs[0]))
    h.feed(0.2)
    assert h.keyFrames() == 1  # still within 300 ms of the first key frame
    h.feed(0.3)
    assert h.keyFrames() == 2


def test_fir_gives_a_key_frame(make: Any):
    h = make(videoRtpParameters())
    h.feedFrames(10)
    h.feed(0.35)
    fci = struct.pack("!IB3x", h.ssrcs[0], 1)
    h.port.inject(RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=0, fci=fci))
    h.feed(1, until=lambda: h.keyFrames() == 2)
    assert h.getStats()[f"OT{h.ssrcs[0]}"]["firCount"] == 1


def test_nack_is_answered_over_rtx_with_the_original_sequence_number(make: Any):
    params = videoRtpParameters(encodings=[{}, {}])
    h = make(params)
    h.feedFrames(10)
    lost = h.packets(1)[5]
    encoding = params["encodings"][1]
    nack = RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=encoding["ssrc"], lost=[lost.sequence_number])
    h.port.inject(nack)
    (rtx,) = h.port.packets(encoding["rtx"]["ssrc"])
    assert rtx.payload_type == 102
    assert rtx.payload[:2] == struct.pack("!H", lost.sequence_number)
    assert rtx.payload[2:] == lost.payload
    assert rtx.timestamp == lost.timestamp
    assert rtx.marker == lost.marker
    assert rtx.extensions.repaired_rtp_stream_id == "r1"
    assert rtx.extensions.rtp_stream_id is None
    assert rtx.extensions.mid == "0"
    stats = h.getStats()[f"OT{encoding['ssrc']}"]
    assert stats["nackCount"] == 1
    assert stats["retransmittedPacketsSent"] == 1
    # At most one resend per round trip (50 ms until a receiver report measured it): a NACK
    # repeated sooner asks for what is already on its way.
    h.port.inject(nack)
    h.wait(0.01)
    h.port.inject(nack)
    assert len(h.port.packets(encoding["rtx"]["ssrc"])) == 1
    h.wait(0.05)
    h.port.inject(nack)
    second = h.port.packets(encoding["rtx"]["ssrc"])[1]
    assert second.sequence_number == (rtx.sequence_number + 1) & 0xFFFF
    assert h.getStats()[f"OT{encoding['ssrc']}"]["nackCount"] == 4


def test_nacks_for_packets_older_than_the_history_get_nothing(make: Any):
    h = make(videoRtpParameters(encodings=[{}]))
    h.feedFrames(5)
    first = h.packets()[0]
    ssrc = h.ssrcs[0]
    # 0.2 s + 10 round trips (50 ms by default), at least 0.5 s: 0.7 s.
    h.feed(0.8)
    count = len(h.port.rtp)
    h.port.inject(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=ssrc, lost=[first.sequence_number]))
    h.wait(0.01)
    assert not [p for p in h.port.rtp[count:] if p.packet.payload_type == 102]
    assert h.getStats()["CC"]["nacksRefusedTooOld"] == 1


def test_nack_without_rtx_resends_the_packet_itself(make: Any):
    h = make(videoRtpParameters(rtx=False))
    h.feedFrames(5)
    lost = h.packets()[3]
    count = len(h.packets())
    h.port.inject(
        RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=h.ssrcs[0], lost=[lost.sequence_number])
    )
    again = next(p for p in h.packets()[count:] if p.sequence_number == lost.sequence_number)
    assert again.payload == lost.payload and again.timestamp == lost.timestamp


def test_max_spatial_layer_stops_and_restarts_upper_layers(make: Any):
    h = make(videoRtpParameters(encodings=SIMULCAST))
    h.feedFrames(10)
    h.producer.setMaxSpatialLayer(0)
    counts = [len(h.packets(i)) for i in range(3)]
    h.feed(0.5)
    assert len(h.packets(1)) == counts[1] and len(h.packets(2)) == counts[2]
    assert len(h.packets(0)) > counts[0]
    assert [e["active"] for e in h.producer.encodings] == [True, False, False]
    h.producer.setMaxSpatialLayer(2)
    h.feed(1, until=lambda: len(h.packets(1)) > counts[1] and len(h.packets(2)) > counts[2])
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
    h.feedFrames(15)
    swap_at = len(h.frameStarts())
    # The new source's timestamps restart at 0 and its size differs.
    await h.producer.replaceTrack(PatternVideoTrack(240, 160, 30, paced=False))
    assert h.readers[0].stopped and h.reader.track.width == 240
    h.feed(2, until=lambda: h.frames() >= swap_at + 15)
    starts = h.frameStarts()
    timestamps = _unwrapped([p.timestamp for p in starts])
    assert all(b > a for a, b in itertools.pairwise(timestamps))
    after = starts[swap_at:]
    swapped = next(i for i, p in enumerate(after) if vp8KeyFrameSize(p.payload) == (240, 160))
    assert swapped <= 2 and vp8IsKeyFrame(after[swapped].payload)
    readers = len(h.readers)
    await h.producer.replaceTrack(None)
    assert len(h.readers) == readers and h.reader.stopped  # nothing is read any more
    count = len(h.port.rtp)
    h.wait(0.5)
    assert len(h.port.rtp) == count


async def test_nothing_is_read_or_sent_before_the_port_connects(make: Any):
    h = make(videoRtpParameters(), connected=False)
    h.wait(0.3)
    assert h.port.rtp == [] and h.port.rtcp == []
    assert h.readers == [] and h.track.framesGenerated == 0
    h.port.connect()
    await h.scheduler.background.drain()  # the sender's wait for the port
    h.feedFrames(3)
    assert vp8IsKeyFrame(h.packets()[0].payload)


def test_scale_and_bitrate_changes_apply_at_once(make: Any):
    h = make(videoRtpParameters())
    h.feedFrames(5)
    h.producer.setRtpEncodingParameters({"scaleResolutionDownBy": 2, "maxBitrate": 120_000})
    assert h.getStats()[f"OT{h.ssrcs[0]}"]["targetBitrate"] == 120_000
    h.feed(
        1, until=lambda: any(vp8KeyFrameSize(p.payload) == (160, 120) for p in h.frameStarts()[5:])
    )
    assert h.producer.encodings[0]["maxBitrate"] == 120_000


def test_remb_splits_the_estimate_lowest_layer_first(make: Any):
    encodings = [{"maxBitrate": 100_000}, {"maxBitrate": 300_000}, {"maxBitrate": 900_000}]
    h = make(videoRtpParameters(encodings=encodings))
    h.feedFrames(5)
    # The estimate falls below what we send (overuse), so it becomes the budget.
    for estimate in (1_500_000, 450_000):
        h.port.inject(remb(estimate, h.ssrcs))
    stats = h.getStats()
    targets = [stats[f"OT{s}"]["targetBitrate"] for s in h.ssrcs]
    # 100k + 300k leave 50k for the top layer, below its minimum (90k): it is suspended.
    assert targets[:2] == [100_000, 300_000]
    assert targets[2] == 0 and stats[f"OT{h.ssrcs[2]}"]["active"] is False
    assert stats[f"OT{h.ssrcs[2]}"]["qualityLimitationReason"] == "bandwidth"
    count = len(h.packets(2))
    frames = h.frames(0)
    h.feed(0.5)
    assert len(h.packets(2)) == count
    assert h.frames(0) > frames


def test_start_bitrate_is_where_the_estimate_starts(make: Any):
    encodings = [{"maxBitrate": 600_000}, {"maxBitrate": 1_200_000}]
    h = make(
        videoRtpParameters(encodings=encodings),
        codecOptions={"videoGoogleStartBitrate": 1000},
        link={"rate": 5_000_000},
    )

    def targets() -> list[int]:
        stats = h.getStats()
        return [stats[f"OT{s}"]["targetBitrate"] for s in h.ssrcs]

    h.feedFrames(1)
    # 1 Mbps: 600k for the lowest layer, the rest for the top one.
    assert h.getStats()["CC"]["availableOutgoingBitrate"] == 1_000_000
    assert targets()[0] == 600_000 and 0 < targets()[1] <= 400_000
    # Feedback from a fast link, and probes, raise the estimate to what the layers can use.
    h.feed(6, until=lambda: targets() == [600_000, 1_200_000])
    assert h.getStats()["CC"]["availableOutgoingBitrate"] >= 1_800_000


def test_stats_and_receiver_reports(make: Any):
    h = make(videoRtpParameters(encodings=[{}, {}]))
    h.feedFrames(10)
    h.feed(1, until=lambda: any(isinstance(p, RtcpSrPacket) for p in h.port.rtcpPackets()))
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
    h.wait(0.05)  # the receiver held the SR 10 ms; at least 50 ms have passed since it
    sent_at = sr.sender_info.ntp_timestamp / (1 << 32) - NTP_EPOCH_OFFSET
    expected_rtt = h.clock.wallTime() - sent_at - 0.01
    h.port.inject(RtcpRrPacket(ssrc=1, reports=[report]))
    stats = h.getStats()
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
    assert expected_rtt >= 0.04
    assert remote["roundTripTime"] == pytest.approx(expected_rtt, abs=0.001)
    assert stats[f"OT{ssrc}"]["remoteId"] == f"RI{ssrc}"


async def test_sender_reports_carry_cname_and_stop_says_bye(make: Any):
    h = make(videoRtpParameters(encodings=[{}, {}]))
    h.feedFrames(5)
    h.feed(
        2,
        until=lambda: (
            {p.ssrc for p in h.port.rtcpPackets() if isinstance(p, RtcpSrPacket)} == set(h.ssrcs)
        ),
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
    # One per stream about every second (0.75-1.25 s).
    h.wait(10)
    for ssrc in h.ssrcs:
        reports = [p for p in h.port.rtcpPackets() if isinstance(p, RtcpSrPacket)]
        count = sum(1 for p in reports if p.ssrc == ssrc)
        assert 8 <= count <= 16, count
    listeners = h.port.listenerCount
    await h.producer.stop()
    assert h.port.listenerCount == listeners - 1
    byes = [p for p in h.port.rtcpPackets() if type(p).__name__ == "RtcpByePacket"]
    assert byes and set(byes[-1].sources) == set(h.ssrcs)
    count = len(h.port.rtp)
    h.reader.onFrame(h.track.nextFrame())
    h.wait(0.5)
    assert len(h.port.rtp) == count


def test_trackended_is_reported_once_when_the_source_ends_or_fails(make: Any):
    h = make(videoRtpParameters())
    h.feedFrames(3)
    h.reader.onEnded(RuntimeError("camera unplugged"))
    h.reader.onEnded(None)
    assert h.ended == 1


def test_h264_packetization_mode_1_decodes(make: Any):
    h = make(videoRtpParameters(mimeType="video/H264"))
    h.feed(2, until=lambda: sum(p.marker for p in h.packets()) >= 10)
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
def test_vp9_descriptor_and_key_frames(make: Any):
    h = make(videoRtpParameters(mimeType="video/VP9"))
    h.feed(2, until=lambda: sum(p.marker for p in h.packets()) >= 5)
    first = h.packets()[0].payload
    # I, L, B and V set, P clear: a key frame start with the scalability structure.
    assert first[0] & 0xE0 == 0xA0 and first[0] & 0x08 and first[0] & 0x02
    ss = first[5:10]
    assert ss[0] == 0x10 and struct.unpack("!HH", ss[1:]) == (320, 240)
    later = [p.payload for p in h.packets()[1:] if p.payload[0] & 0x08]
    assert later and all(p[0] & 0x40 for p in later)  # inter frames


class HeldJobRunner:
    """Runs nothing until told: an encoder that has fallen behind."""

    def __init__(self) -> None:
        self.held: list[tuple[EncodeJob, JobDone]] = []

    def run(self, job: EncodeJob, done: JobDone) -> None:
        self.held.append((job, done))

    def release(self) -> None:
        held, self.held = self.held, []
        for job, done in held:
            done(job.run(), None)


def test_frames_are_dropped_not_queued_when_encoding_falls_behind(make: Any):
    h = make(videoRtpParameters())
    runner = HeldJobRunner()
    h.scheduler.runner = runner
    h.feed(1)  # 30 frames arrive while the first one is still being encoded
    assert len(runner.held) == 1
    runner.release()  # the first frame is sent, the newest waiting one starts
    assert len(runner.held) == 1 and h.frames() == 1
    stats = h.getStats()[f"OT{h.ssrcs[0]}"]
    assert stats["framesDropped"] == 28
    assert stats["framesEncoded"] == 1


# Temporal layers (scalabilityMode L1T2 / L1T3).


def _descriptors(packets: list[RtpPacket]) -> Iterator[tuple[RtpPacket, Any]]:
    for packet in packets:
        descriptor, _payload = VpxPayloadDescriptor.parse(packet.payload)
        if descriptor.partition_start and descriptor.partition_id == 0:
            yield packet, descriptor


def test_l1t3_labels_frames_0_2_1_2_with_base_layer_index_and_sync(make: Any):
    h = make(videoRtpParameters(encodings=[{"scalabilityMode": "L1T3"}]))
    h.feedFrames(24)
    starts = list(_descriptors(h.packets()))
    tids = [d.tid[0] for _p, d in starts]
    assert tids[:12] == [0, 2, 1, 2] * 3
    # Y: the frames that refer to TL0 only (the first TL2 and the TL1 of each period).
    assert [d.tid[1] for _p, d in starts][:8] == [1, 1, 1, 0] * 2
    # TL0PICIDX counts base-layer frames: the same across a period, +1 at each TL0 frame.
    indexes = [d.tl0picidx for _p, d in starts]
    assert all(
        b == (a + 1) & 0xFF if tid == 0 else b == a
        for a, b, tid in zip(indexes, indexes[1:], tids[1:], strict=False)
    )
    assert h.getStats()[f"OT{h.ssrcs[0]}"]["scalabilityMode"] == "L1T3"


def test_dropping_upper_temporal_layers_leaves_a_stream_that_decodes_exactly(make: Any):
    h = make(videoRtpParameters(encodings=[{"scalabilityMode": "L1T3"}]))
    h.feedFrames(24)
    packets = h.packets()
    tid_of = {}
    for packet, descriptor in _descriptors(packets):
        tid_of[packet.timestamp] = descriptor.tid[0]
    full = _decodeVp8(packets)
    for keep in (0, 1):
        subset = [p for p in packets if tid_of[p.timestamp] <= keep]
        order = [p.timestamp for p, _d in _descriptors(packets)]
        kept = [i for i, ts in enumerate(order) if tid_of[ts] <= keep]
        decoded = _decodeVp8(subset)
        assert len(decoded) == len(kept) == len(full) // (4 if keep == 0 else 2)
        for index, frame in zip(kept, decoded, strict=True):
            reference = full[index].to_ndarray(format="gray")
            assert np.array_equal(frame.to_ndarray(format="gray"), reference)


def test_key_frame_requests_wait_for_the_start_of_a_temporal_period(make: Any):
    h = make(videoRtpParameters(encodings=[{"scalabilityMode": "L1T3"}]))
    h.feedFrames(13)  # the next frame is the second of a period
    h.feed(0.35)
    count = h.frames()
    h.port.inject(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=h.ssrcs[0]))
    h.feed(1, until=lambda: h.keyFrames() == 2)
    h.feed(4 / 30)
    starts = list(_descriptors(h.packets()))
    key_index = next(i for i, (p, _d) in enumerate(starts) if i > 0 and vp8IsKeyFrame(p.payload))
    assert key_index % 4 == 0 and key_index - count < 4
    assert [d.tid[0] for _p, d in starts[key_index : key_index + 4]] == [0, 2, 1, 2]


def test_l1t2_alternates_two_layers(make: Any):
    h = make(videoRtpParameters(encodings=[{"scalabilityMode": "L1T2"}, {}]))
    h.feedFrames(8)
    assert [d.tid[0] for _p, d in _descriptors(h.packets(0))][:8] == [0, 1] * 4
    assert {d.tid[0] for _p, d in _descriptors(h.packets(1))} == {0}
