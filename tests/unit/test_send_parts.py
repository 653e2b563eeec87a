"""The send path's pure parts: packetizers, header writer, history, clock, bitrate policy."""

from __future__ import annotations

import itertools
import struct

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import h264_depayload
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtcpPsfbPacket, RtcpReceiverInfo, RtcpRrPacket, RtpPacket

from mediasoup_client.handlers.aiortc.send import getSendRtpCapabilities
from mediasoup_client.handlers.aiortc.send.bitrate import (
    RISE_WINDOW,
    BudgetOptions,
    LayerDemand,
    LayerRateGate,
    ProducerDemand,
    allocate,
    allocateTransport,
    defaultMaxBitrate,
)
from mediasoup_client.handlers.aiortc.send.clock import (
    FramerateLimiter,
    MediaClock,
    RateControlClock,
)
from mediasoup_client.handlers.aiortc.send.encoders import (
    EncodedFrame,
    opusCutoff,
    opusFrameDuration,
)
from mediasoup_client.handlers.aiortc.send.history import SendHistory, SentPacket
from mediasoup_client.handlers.aiortc.send.packetizers import (
    MAX_PAYLOAD,
    H264Packetizer,
    Vp8Packetizer,
    Vp9Packetizer,
)
from mediasoup_client.handlers.aiortc.send.rtcp import firRequests, reportBlocks
from mediasoup_client.handlers.aiortc.send.rtp_header import (
    ExtensionWriter,
    compactNtp,
    ntpTime,
)
from mediasoup_client.handlers.aiortc.send.video_layer import privateCopy
from mediasoup_client.media.bitstream import annexBUnits
from mediasoup_client.rtp_extensions import URI_ABS_SEND_TIME, URI_TRANSPORT_WIDE_CC
from tests.unit.fake_rtp_port import EXTENSION_IDS, extensionsMap

# Packetizers.


def test_vp8_packets_carry_an_extended_descriptor_and_split_evenly():
    packetizer = Vp8Packetizer()
    frame = bytes(range(256)) * 12  # 3072 bytes: three packets
    payloads = packetizer.packetize(EncodedFrame(frame, True, 320, 240))
    assert len(payloads) == 3 and all(len(p) <= MAX_PAYLOAD for p in payloads)
    assert max(map(len, payloads)) - min(map(len, payloads)) <= 1
    descriptors = [VpxPayloadDescriptor.parse(p) for p in payloads]
    assert [d.partition_start for d, _ in descriptors] == [1, 0, 0]
    assert b"".join(data for _, data in descriptors) == frame
    first, _ = descriptors[0]
    assert first.picture_id is not None and first.tl0picidx is not None and first.tid == (0, 1)
    (second, _), *_ = (
        VpxPayloadDescriptor.parse(p) for p in packetizer.packetize(EncodedFrame(b"x", False, 1, 1))
    )
    assert second.picture_id == (first.picture_id + 1) & 0x7FFF
    assert second.tl0picidx == (first.tl0picidx + 1) & 0xFF


def test_vp9_descriptor_flags():
    packetizer = Vp9Packetizer()
    key = packetizer.packetize(EncodedFrame(b"k" * 2500, True, 640, 360))
    assert len(key) == 3
    assert key[0][0] == 0x80 | 0x20 | 0x08 | 0x02  # I L B V, not P
    assert key[1][0] == 0x80 | 0x20  # middle packet
    assert key[2][0] == 0x80 | 0x20 | 0x04  # E
    assert struct.unpack("!HH", key[0][6:10]) == (640, 360)
    (inter,) = packetizer.packetize(EncodedFrame(b"p" * 100, False, 640, 360))
    assert inter[0] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04
    pid_key = struct.unpack("!H", key[0][1:3])[0] & 0x7FFF
    assert struct.unpack("!H", inter[1:3])[0] & 0x7FFF == (pid_key + 1) & 0x7FFF


def _annexB(*nals: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def test_h264_aggregates_small_nal_units_and_fragments_large_ones():
    sps = bytes([0x67]) + b"\x42\xe0\x1f" + b"s" * 10
    pps = bytes([0x68]) + b"p" * 4
    sei = bytes([0x06]) + b"e" * 50
    idr = bytes([0x65]) + bytes(range(256)) * 10
    payloads = H264Packetizer().packetize(EncodedFrame(_annexB(sps, pps, sei, idr), True, 320, 240))
    assert payloads[0][0] & 0x1F == 24  # STAP-A: SPS + PPS (SEI dropped)
    assert payloads[0][3] & 0x1F == 7
    assert all(p[0] & 0x1F == 28 for p in payloads[1:])  # FU-A
    assert all(len(p) <= MAX_PAYLOAD for p in payloads)
    rebuilt = b"".join(h264_depayload(p) for p in payloads)
    assert list(annexBUnits(rebuilt)) == [sps, pps, idr]


def test_h264_small_frame_is_a_single_nal_unit_packet():
    nal = bytes([0x41]) + b"x" * 100
    assert H264Packetizer().packetize(EncodedFrame(_annexB(nal), False, 1, 1)) == [nal]


# RTP header and extensions.


def test_rtp_header_and_extensions_parse_with_aiortc():
    writer = ExtensionWriter(EXTENSION_IDS, mid="3", rid="r1")
    ntp = ntpTime()
    data = (
        writer.header(
            payloadType=101,
            marker=True,
            sequenceNumber=70000,
            timestamp=(1 << 32) + 5,
            ssrc=1234,
            ntp=ntp,
            audioLevel=30,
            voice=True,
        )
        + b"payload"
    )
    packet = RtpPacket.parse(data, extensionsMap())
    assert (packet.payload_type, packet.marker, packet.sequence_number) == (101, 1, 70000 & 0xFFFF)
    assert (packet.timestamp, packet.ssrc, packet.payload) == (5, 1234, b"payload")
    assert packet.extensions.mid == "3" and packet.extensions.rtp_stream_id == "r1"
    assert packet.extensions.abs_send_time == (ntp >> 14) & 0xFFFFFF
    assert packet.extensions.audio_level == (True, 30)
    assert packet.extensions.transport_sequence_number is None
    rtx = ExtensionWriter(EXTENSION_IDS, mid="3", rid=None, repairedRid="r1")
    header = rtx.header(
        payloadType=1, marker=False, sequenceNumber=1, timestamp=1, ssrc=1, ntp=ntp,
        transportSequence=65536 + 9, padding=True,
    )  # fmt: skip
    assert header[0] & 0x20  # the P bit (the caller appends the padding)
    parsed = RtpPacket.parse(header + bytes(3) + b"\x04", extensionsMap())
    assert parsed.extensions.repaired_rtp_stream_id == "r1"
    assert parsed.extensions.rtp_stream_id is None
    assert parsed.extensions.transport_sequence_number == 9
    assert parsed.padding_size == 4 and parsed.payload == b""


def test_unknown_or_out_of_range_extensions_are_not_written():
    plain = {"payloadType": 96, "marker": False, "sequenceNumber": 1, "timestamp": 2, "ssrc": 3}
    assert len(ExtensionWriter({}, mid="0", rid="r0").header(**plain, ntp=ntpTime())) == 12
    writer = ExtensionWriter({"urn:ietf:params:rtp-hdrext:sdes:mid": 15}, mid="0", rid=None)
    header = writer.header(**plain, ntp=ntpTime(), audioLevel=10)
    assert len(header) == 12 and not header[0] & 0x10  # no X bit: nothing to write


# History.


def test_history_is_bounded_by_count_and_age():
    history = SendHistory(maxPackets=3, maxAge=1.0)
    for seq in range(5):
        history.add(SentPacket(seq, 0, False, b"", sentAt=10.0 + seq * 0.1))
    assert len(history) == 3
    assert history.get(1, 10.5) is None and history.get(4, 10.5) is not None
    assert history.get(2, 11.25) is None  # older than a second
    assert history.get(4, 11.35) is not None


# Clock and frame rate.


def test_media_clock_keeps_source_spacing_and_never_goes_back():
    clock = MediaClock(90000)
    assert [clock.map(t / 30, 100.0) for t in range(3)] == [0, 3000, 6000]
    clock.discontinuity()
    # A new track whose pts restart at 0, 40 ms of wall time later.
    restarted = clock.map(0.0, 100.04)
    assert restarted == 6000 + 3600
    assert clock.map(1 / 30, 100.07) == restarted + 3000
    # pts going backwards within a run re-anchors forward too.
    assert clock.map(0.0, 100.10) > restarted + 3000
    assert clock.map(None, 100.2) > restarted + 3000


def rateSteps(frames: list[tuple[int, float]], framerate: float = 30) -> list[int]:
    """The encoder pts steps a RateControlClock gives ``(timestamp, wallTime)`` frames."""
    clock = RateControlClock(framerate, 90000)
    pts = [clock.map(timestamp, wall) for timestamp, wall in frames]
    return [b - a for a, b in itertools.pairwise(pts)]


def test_rate_clock_keeps_a_real_time_source_s_spacing_through_jitter():
    # 30 fps handed over with +-8 ms of event-loop jitter: every step is the media step.
    frames = [(i * 3000, i / 30 + (0.008 if i % 2 else -0.008)) for i in range(300)]
    assert rateSteps(frames) == [3000] * 299


def test_rate_clock_gives_no_budget_for_a_stall_or_the_catch_up_after_it():
    steady = [(i * 3000, i / 30) for i in range(60)]
    # A camera's frames during a 0.7 s stall of the loop are lost: the next one is 0.7 s on
    # in both clocks, and counts two intervals.
    camera = [*steady, (59 * 3000 + 63000, 59 / 30 + 0.7)]
    assert rateSteps(camera) == [3000] * 59 + [6000]
    # A paced test source catches up instead: its frames of the missed 0.7 s come at once,
    # the encoder keeping every third one, 5 ms apart, until it is back in real time.
    index, wall = 60, 59 / 30 + 0.7
    frames = list(steady)
    while index / 30 < wall:
        frames.append((index * 3000, wall))
        index += 3
        wall += 0.005
    caughtUp = len(frames)
    frames += [(index * 3000 + k * 3000, wall + k / 30) for k in range(60)]
    steps = rateSteps(frames)
    assert caughtUp - 60 >= 8  # the catch-up was a run of frames
    # The catch-up frames carry 0.7 s of media time in 40 ms; together they count that wall
    # time and the two intervals saved up before the stall, nothing more.
    catchUp = sum(steps[59 : caughtUp - 1])
    took = frames[caughtUp - 1][1] - frames[59][1]
    assert catchUp <= round(took * 90000) + 6000, steps[59:caughtUp]
    assert steps[-40:] == [3000] * 40
    # So the encoder's timeline ends 0.4 s and more behind the wire's wall time, where with
    # the media time's steps it would end level with it.
    assert sum(steps) / 90000 < frames[-1][1] - frames[0][1] - 0.4


def test_rate_clock_follows_an_encoder_keeping_some_frames_and_a_slower_source():
    # An encoder too slow for 30 fps (45 ms a frame) starts each job when the last is done:
    # it keeps every other frame, then the next, so media steps are 1 or 2 frames while the
    # wall time between jobs is even. Each frame still counts its whole media step.
    frames, index = [], 0
    for job in range(200):
        frames.append((index * 3000, job * 0.045))
        index = int((job + 1) * 0.045 * 30)
    steps = rateSteps(frames)
    media = [b[0] - a[0] for a, b in itertools.pairwise(frames)]
    assert sum(steps[20:]) >= 0.99 * sum(media[20:])
    # A source dropping from 30 to 10 fps for good: followed within a few frames.
    frames = [(i * 3000, i / 30) for i in range(30)]
    frames += [(29 * 3000 + k * 9000, 29 / 30 + k / 10) for k in range(1, 40)]
    steps = rateSteps(frames)
    assert steps[-30:] == [9000] * 30


def test_framerate_limiter_keeps_the_requested_rate():
    limiter = FramerateLimiter(90000)
    kept = sum(limiter.accept(i * 3000, 20) for i in range(300))
    assert kept == 200
    limiter.reset()
    assert sum(limiter.accept(i * 3000, 15) for i in range(300)) == 150
    assert sum(limiter.accept(i * 3000, None) for i in range(30)) == 30


# Bitrate policy.


def test_allocation_serves_the_lowest_layer_first():
    layers = [LayerDemand(0, 100_000), LayerDemand(1, 300_000), LayerDemand(2, 900_000)]
    assert allocate(layers, None, BudgetOptions()) == {0: 100_000, 1: 300_000, 2: 900_000}
    assert allocate(layers, 2_000_000, BudgetOptions()) == {0: 100_000, 1: 300_000, 2: 900_000}
    assert allocate(layers, 600_000, BudgetOptions()) == {0: 100_000, 1: 300_000, 2: 200_000}
    # 50 kbps is below the top layer's minimum (90 kbps): it is suspended.
    assert allocate(layers, 450_000, BudgetOptions()) == {0: 100_000, 1: 300_000, 2: 0}
    # The lowest layer is never suspended, even below its minimum.
    assert allocate(layers, 10_000, BudgetOptions()) == {0: 30_000, 1: 0, 2: 0}
    # Once a layer is suspended, the ones above it are too.
    wide = [LayerDemand(0, 100_000), LayerDemand(1, 1_000_000), LayerDemand(2, 120_000)]
    assert allocate(wide, 250_000, BudgetOptions())[2] == 0


def test_allocation_honours_google_bitrate_options():
    layers = [LayerDemand(0, 500_000), LayerDemand(1, 1_500_000)]
    assert allocate(layers, None, BudgetOptions(startBitrate=700_000)) == {0: 500_000, 1: 200_000}
    assert allocate(layers, 5_000_000, BudgetOptions(maxBitrate=800_000)) == {
        0: 500_000,
        1: 300_000,
    }
    assert allocate(layers, 100_000, BudgetOptions(minBitrate=200_000))[0] == 200_000


def test_a_layer_needs_more_than_its_minimum_to_come_back():
    layers = [LayerDemand(0, 100_000), LayerDemand(1, 300_000), LayerDemand(2, 900_000, 112_500)]
    # 100 kbps would do for a layer that is on (minimum 90k) but not for one coming back.
    assert allocate(layers, 500_000, BudgetOptions())[2] == 0
    assert allocate(layers, 520_000, BudgetOptions())[2] == 120_000


def test_transport_allocation_serves_audio_then_layers_position_by_position():
    audio = ProducerDemand("audio", reserved=40_000)
    first = ProducerDemand("a", layers=[LayerDemand(0, 100_000), LayerDemand(1, 400_000)])
    second = ProducerDemand("b", layers=[LayerDemand(0, 150_000), LayerDemand(1, 500_000)])
    producers = [audio, first, second]
    # Both lowest layers before anyone's second one.
    assert allocateTransport(290_000, producers) == {"a": 100_000, "b": 150_000}
    assert allocateTransport(690_000, producers) == {"a": 500_000, "b": 150_000}
    assert allocateTransport(10_000_000, producers) == {"a": 500_000, "b": 650_000}
    # Audio is served even when the estimate is below it; video gets its floors.
    assert allocateTransport(20_000, producers) == {"a": 30_000, "b": 30_000}
    assert audio.demand == 40_000 and second.demand == 650_000
    # videoGoogleMaxBitrate caps a producer's share, videoGoogleMinBitrate floors it.
    capped = ProducerDemand(
        "c",
        layers=[LayerDemand(0, 300_000), LayerDemand(1, 900_000)],
        options=BudgetOptions(maxBitrate=500_000, minBitrate=200_000),
    )
    assert allocateTransport(5_000_000, [capped]) == {"c": 500_000}
    assert allocateTransport(50_000, [capped]) == {"c": 200_000}


def test_rebuild_gate_drops_large_steps_soon_and_rises_rarely():
    gate = LayerRateGate()
    assert gate.update(1_000_000, 0.0) and gate.current == 1_000_000
    assert not gate.update(900_000, 10.0)  # a 10 % drop costs a key frame: not worth it
    assert gate.update(900_000, 10.0, congested=True)  # unless the pacer is backed up
    assert not gate.update(850_000, 10.5, congested=True)  # but not twice in a second
    assert gate.update(500_000, 10.6) and gate.current == 500_000  # a big drop: soon
    assert not gate.update(800_000, 11.0)  # a rise waits for the rebuild interval
    assert not gate.update(700_000, 12.0)
    # ...and goes to the lowest target of the last RISE_WINDOW: not 500k any more (it was
    # offered 5.4 s ago), but 700k of 800k, 700k, 900k.
    assert gate.update(900_000, 10.6 + RISE_WINDOW + 0.4) and gate.current == 700_000
    assert gate.update(0, 16.1) and gate.current == 0  # suspend at once
    assert gate.update(500_000, 16.2)  # back (the allocation holds resumes back, not the gate)
    assert gate.update(2_000_000, 16.3, force=True)
    assert gate.changes == 7


def test_in_place_gate_follows_closely_below_the_opening_rate():
    gate = LayerRateGate(inPlace=True)
    assert gate.update(1_000_000, 0.0)
    assert not gate.update(980_000, 1.0)  # noise
    assert gate.update(900_000, 1.0) and gate.update(1_000_000, 1.3)
    assert not gate.update(800_000, 1.4)  # 0.25 s apart at most
    assert gate.update(600_000, 2.0) and gate.current == 600_000
    # Past the rate the encoder was opened at is a rebuild: first back up to it in place,
    # then beyond it only as a rebuilding encoder would (25 %, after the rebuild interval).
    assert gate.update(1_500_000, 2.3) and gate.current == 1_000_000
    assert not gate.update(1_500_000, 2.6)
    assert gate.update(1_500_000, 2.3 + RISE_WINDOW + 0.1) and gate.current == 1_500_000


def test_default_max_bitrate_grows_with_resolution():
    sizes = [(80, 60), (160, 120), (320, 240), (640, 480), (1280, 720), (1920, 1080)]
    rates = [defaultMaxBitrate(w, h) for w, h in sizes]
    assert rates == sorted(rates) and rates[4] == 2_500_000


# RTCP interpretation.


def test_receiver_report_round_trip_time():
    now = ntpTime()
    sent = now - (int(0.25 * (1 << 32)))  # an SR sent 250 ms ago
    report = RtcpReceiverInfo(
        ssrc=7,
        fraction_lost=128,
        packets_lost=10,
        highest_sequence=5,
        jitter=480,
        lsr=compactNtp(sent),
        dlsr=int(0.05 * 65536),
    )
    (block,) = reportBlocks(RtcpRrPacket(ssrc=1, reports=[report]), {7}, now)
    assert block.roundTripTime == pytest.approx(0.2, abs=0.001)
    assert block.fractionLost == 0.5 and block.packetsLost == 10
    assert reportBlocks(RtcpRrPacket(ssrc=1, reports=[report]), {8}, now) == []


def test_fir_entries():
    fci = struct.pack("!IB3xIB3x", 11, 1, 12, 2)
    assert firRequests(RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=0, fci=fci)) == [(11, 1), (12, 2)]
    assert firRequests(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=11)) == []


# Opus options and capabilities.


def test_opus_option_mapping():
    assert [opusFrameDuration(p) for p in (None, 10, 20, 30, 40, 60, 120, 5)] == [
        20, 10, 20, 20, 40, 60, 60, 10
    ]  # fmt: skip
    assert [opusCutoff(r) for r in (None, 8000, 12000, 16000, 24000, 48000)] == [
        None, 4000, 6000, 8000, 12000, 20000
    ]  # fmt: skip


def test_capabilities_offer_opus_vp8_h264_with_rtx_and_transport_cc():
    caps = getSendRtpCapabilities()
    mimes = [c["mimeType"] for c in caps["codecs"]]
    assert mimes[0] == "audio/opus" and "video/VP8" in mimes and "video/H264" in mimes
    for codec in caps["codecs"]:
        feedback = {fb["type"] for fb in codec.get("rtcpFeedback", [])}
        if codec["mimeType"] == "video/rtx":
            apt = codec["parameters"]["apt"]
            assert any(c["preferredPayloadType"] == apt for c in caps["codecs"])
        else:
            # mediasoup sends transport feedback when the producer has both this and the
            # transport-wide sequence number extension.
            assert "transport-cc" in feedback
    h264 = next(c for c in caps["codecs"] if c["mimeType"] == "video/H264")
    assert h264["parameters"]["packetization-mode"] == 1
    assert h264["parameters"]["profile-level-id"] == "42e01f"
    uris = {(e["kind"], e["uri"]) for e in caps["headerExtensions"]}
    assert ("audio", "urn:ietf:params:rtp-hdrext:ssrc-audio-level") in uris
    assert ("video", "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id") in uris
    for kind in ("audio", "video"):
        assert (kind, URI_TRANSPORT_WIDE_CC) in uris and (kind, URI_ABS_SEND_TIME) in uris
    payload_types = [c["preferredPayloadType"] for c in caps["codecs"]]
    assert len(payload_types) == len(set(payload_types))


@pytest.mark.parametrize("size", [(640, 480), (161, 121)])
def test_private_copy_of_a_source_frame(size: tuple[int, int]) -> None:
    width, height = size
    pixels = np.random.default_rng(1).integers(0, 255, (height * 3 // 2, width), dtype=np.uint8)
    if height % 2:
        # Odd sizes: let PyAV lay out the planes (chroma rounds up).
        source = av.VideoFrame.from_ndarray(
            np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8),
            format="rgb24",
        ).reformat(format="yuv420p")
    else:
        source = av.VideoFrame.from_ndarray(pixels, format="yuv420p")
    source.pts = 7
    copy = privateCopy(source)
    assert copy is not source and (copy.width, copy.height) == size
    for mine, theirs in zip(copy.planes, source.planes, strict=True):
        assert bytes(mine) == bytes(theirs)
    copy.pts = 99
    assert source.pts == 7


@pytest.mark.parametrize(("mimeType", "live"), [("video/H264", True), ("video/VP8", False)])
def test_bitrate_changes_on_an_open_encoder(mimeType: str, live: bool) -> None:
    """libx264 follows a new bitrate on the open encoder (no new encoder, no key frame);
    libvpx does not, so there a change means a new encoder and a key frame."""
    from mediasoup_client.handlers.aiortc.send.encoders import VideoEncoder
    from mediasoup_client.media.test_sources import PatternVideoTrack

    track = PatternVideoTrack(320, 240, 30, paced=False)
    encoder = VideoEncoder(mimeType)
    assert encoder.changesBitrateLive is live

    def run(frames: int, bitrate: int, start: int) -> tuple[int, int]:
        size = keys = 0
        for index in range(start, start + frames):
            frame = track.nextFrame().reformat(format="yuv420p")
            encoded = encoder.encode(
                frame, pts=index * 3000, keyFrame=index == 0, bitrate=bitrate, framerate=30
            )
            if encoded is not None:
                size += len(encoded.data)
                keys += encoded.keyFrame
        return size, keys

    high, _ = run(60, 1_000_000, 0)
    low, keys = run(60, 250_000, 60)
    assert encoder.rebuilds == (1 if live else 2)
    assert encoder.liveChanges == (1 if live else 0)
    assert keys == (0 if live else 1)
    assert low < 0.6 * high
