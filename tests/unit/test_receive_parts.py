"""The receive path's pure parts: unwrapping, depacketizers, NACK, jitter buffers, statistics,
transport-wide feedback, RTCP writers. Time is passed in; nothing sleeps."""

from __future__ import annotations

import random

import pytest
from aiortc.rtp import RtcpPacket, RtcpRrPacket, RtcpRtpfbPacket

from mediasoup_client.handlers.aiortc.receive import rtcp
from mediasoup_client.handlers.aiortc.receive.audio_buffer import AudioJitterBuffer, AudioPacket
from mediasoup_client.handlers.aiortc.receive.depacketizers import (
    H264Depacketizer,
    Vp8Depacketizer,
    Vp9Depacketizer,
)
from mediasoup_client.handlers.aiortc.receive.frame_buffer import BufferedPacket, VideoFrameBuffer
from mediasoup_client.handlers.aiortc.receive.nack import MAX_RETRIES, NackModule
from mediasoup_client.handlers.aiortc.receive.sequence import sequenceUnwrapper, timestampUnwrapper
from mediasoup_client.handlers.aiortc.receive.statistics import FrameCounters, StreamStatistics
from mediasoup_client.handlers.aiortc.receive.transport_feedback import (
    MAX_FEEDBACK_SIZE,
    TransportFeedbackGenerator,
)
from mediasoup_client.handlers.aiortc.send.cc.transport_feedback import (
    TransportFeedback,
    extractTransportFeedback,
)
from mediasoup_client.handlers.aiortc.send.encoders import EncodedFrame
from mediasoup_client.handlers.aiortc.send.packetizers import (
    H264Packetizer,
    Vp8Packetizer,
    Vp9Packetizer,
)

# Unwrapping.


def test_sequence_numbers_unwrap_across_the_wrap_and_back():
    unwrap = sequenceUnwrapper()
    values = [65530, 65534, 2, 65533, 5, 1]
    assert [unwrap.unwrap(v) for v in values] == [65530, 65534, 65538, 65533, 65541, 65537]
    stamps = timestampUnwrapper()
    assert stamps.unwrap(0xFFFFFF00) == 0xFFFFFF00
    assert stamps.unwrap(0x100) == 0x1_0000_0100


# Depacketizers: what our own packetizers send comes back whole.


def test_vp8_frames_come_back_with_start_and_key_flags():
    packetizer, depacketizer = Vp8Packetizer(), Vp8Depacketizer()
    key = b"\x10\x02\x00\x9d\x01\x2a" + bytes(range(256)) * 10  # P bit clear: key frame
    delta = b"\x11" + bytes(3000)
    for frame, is_key in ((key, True), (delta, False)):
        pieces = [
            depacketizer.depacketize(p)
            for p in packetizer.packetize(EncodedFrame(frame, is_key, 1, 1))
        ]
        assert b"".join(p.data for p in pieces) == frame
        assert [p.frameStart for p in pieces] == [True] + [False] * (len(pieces) - 1)
        assert pieces[0].keyFrame is is_key
    # The short descriptor (no X bit) and a 7-bit picture id parse too.
    assert Vp8Depacketizer().depacketize(b"\x10\x00abc").data == b"\x00abc"
    assert Vp8Depacketizer().depacketize(b"\x90\x80\x05xyz").data == b"xyz"
    with pytest.raises(ValueError):
        Vp8Depacketizer().depacketize(b"\x90\x80")


def test_vp9_frames_come_back_and_key_frames_are_the_non_predicted_ones():
    packetizer, depacketizer = Vp9Packetizer(), Vp9Depacketizer()
    for is_key in (True, False):
        frame = bytes(range(200)) * 13
        pieces = [
            depacketizer.depacketize(p)
            for p in packetizer.packetize(EncodedFrame(frame, is_key, 640, 480))
        ]
        assert b"".join(p.data for p in pieces) == frame
        assert pieces[0].frameStart and not any(p.frameStart for p in pieces[1:])
        assert pieces[0].keyFrame is is_key
    # Flexible mode with two reference indices: F|P|B, picture id, P_DIFF with N, P_DIFF.
    piece = depacketizer.depacketize(bytes([0x80 | 0x40 | 0x10 | 0x08, 0x12, 0x03, 0x04]) + b"d")
    assert piece.data == b"d" and piece.frameStart and not piece.keyFrame


def test_h264_single_nal_stap_a_and_fu_a_become_annex_b():
    sps, pps = b"\x67\x42\xe0\x1f\xaa", b"\x68\xce\x3c\x80"
    idr = b"\x65\x88" + bytes(range(256)) * 12  # first_mb_in_slice 0 (bit 1)
    frame = b"".join(b"\x00\x00\x00\x01" + nal for nal in (sps, pps, idr))
    payloads = H264Packetizer().packetize(EncodedFrame(frame, True, 1, 1))
    depacketizer = H264Depacketizer()
    pieces = [depacketizer.depacketize(p) for p in payloads]
    assert b"".join(p.data for p in pieces) == frame
    assert pieces[0].frameStart  # STAP-A with SPS/PPS starts the access unit
    assert all(p.keyFrame for p in pieces[1:])  # FU-A fragments of the IDR
    single = depacketizer.depacketize(b"\x41\x9a\x00")  # a P slice, first_mb 0
    assert single.data == b"\x00\x00\x00\x01\x41\x9a\x00"
    assert single.frameStart and not single.keyFrame
    assert not depacketizer.depacketize(b"\x41\x1a").frameStart  # a later slice
    with pytest.raises(ValueError):
        depacketizer.depacketize(b"\x78\x00\x05ab")  # STAP-A unit longer than the packet


# NACK.


def test_a_gap_is_nacked_at_once_then_once_per_resend_delay_then_given_up():
    nack = NackModule(rtt=0.05)
    delay = nack.resendDelay(0.0)
    assert delay == pytest.approx(0.05 * 1.25 + 0.005)
    nack.onPacket(100, 0.0)
    first = nack.onPacket(103, 0.01)
    assert first.nacks == [101, 102]
    assert nack.process(0.01 + delay - 0.005).nacks == []  # within the resend delay
    now = 0.01 + delay + 0.001
    assert nack.process(now).nacks == [101, 102]
    nack.onPacket(101, now + 0.01, retransmitted=True)
    sent = 2
    while True:
        now += delay + 0.001
        result = nack.process(now)
        if result.gaveUp:
            break
        assert result.nacks == [102]
        sent += 1
    assert sent == MAX_RETRIES and result.gaveUp == [102] and nack.missing == []


def test_the_rtt_comes_from_answered_requests_and_the_slowest_recent_one_paces_retries():
    nack = NackModule()
    nack.onPacket(1, 0.0)
    nack.onPacket(3, 1.0)  # NACK 2 at t=1.0
    nack.onPacket(2, 1.03, retransmitted=True)
    assert nack.rttMeasured and nack.rtt == pytest.approx(0.03)
    nack.onPacket(5, 1.5)  # NACK 4
    nack.onPacket(4, 1.62, retransmitted=True)  # a slow answer: a queue built up
    assert nack.resendDelay(1.7) == pytest.approx(0.12 * 1.25 + 0.005)
    nack.onPacket(7, 2.0)  # NACK 6
    assert nack.process(2.1).nacks == []
    assert nack.process(2.16).nacks == [6]
    # Old answers stop counting after a few seconds.
    assert nack.resendDelay(10.0) < 0.12


def test_requests_stay_within_a_budget_of_the_packets_received():
    nack = NackModule()
    nack.onPacket(0, 0.0)
    result = nack.onPacket(501, 0.0)  # 500 missing at once, two packets received
    assert 0 < len(result.nacks) <= 60 and nack.requestsDeferred > 400
    # Time earns more: a second later, about BUDGET_PER_SECOND more are asked for.
    assert 5 <= len(nack.process(1.0).nacks) <= 15


def test_reordering_delays_the_first_request_but_a_late_packet_is_not_nacked():
    nack = NackModule()
    nack.onPacket(10, 0.0)
    for seq, late in ((12, 11), (15, 14), (18, 17)):  # packets two behind, three times
        nack.onPacket(seq, 0.0)
        nack.onPacket(seq + 1, 0.0)
        nack.onPacket(late, 0.0)
    # Tolerance learned: the first request for 20 waits until 20 + 2 has arrived.
    assert nack.onPacket(21, 0.1).nacks == []
    assert nack.onPacket(22, 0.1).nacks == [20]
    # The periodic pass never holds a request back for longer than one period.
    assert nack.onPacket(24, 0.2).nacks == []
    assert nack.process(0.15).nacks == [23]


def test_an_oversized_gap_asks_for_a_key_frame_and_clear_up_to_forgets():
    nack = NackModule()
    nack.onPacket(0, 0.0)
    assert nack.onPacket(5000, 0.0).keyFrameRequest and nack.missing == []
    nack.onPacket(5010, 0.0)
    assert len(nack.missing) == 9
    nack.clearUpTo(5005)
    assert nack.missing == [5005, 5006, 5007, 5008, 5009]


# Video jitter buffer.


def _packet(
    seq: int,
    ts: int,
    *,
    start: bool = False,
    marker: bool = False,
    key: bool = False,
    data: bytes | None = None,
    padding: bool = False,
) -> BufferedPacket:
    return BufferedPacket(
        seq,
        ts,
        marker,
        start,
        key,
        b"" if padding else (data or bytes([seq & 0xFF])),
        0.0,
        padding=padding,
    )


def _frame(first: int, ts: int, count: int, *, key: bool = False) -> list[BufferedPacket]:
    return [
        _packet(first + i, ts, start=i == 0, marker=i == count - 1, key=key and i == 0)
        for i in range(count)
    ]


def test_frames_come_out_complete_in_order_from_the_first_key_frame():
    buffer = VideoFrameBuffer()
    out = []
    for packet in _frame(1, 0, 2) + _frame(3, 3000, 3, key=True) + _frame(6, 6000, 2):
        out += buffer.insert(packet, 0.0, 0.2).frames
    assert [(f.firstSeq, f.lastSeq, f.keyFrame) for f in out] == [(3, 5, True), (6, 7, False)]
    assert out[0].data == bytes([3, 4, 5])
    assert buffer.framesDropped == 1  # the delta frame before the first key frame


def test_packets_reordered_within_a_frame_wait_without_blocking():
    buffer = VideoFrameBuffer()
    assert len(buffer.insert(_frame(0, 0, 1, key=True)[0], 0.0, 0.2).frames) == 1
    first, second, third = _frame(1, 3000, 3)
    assert buffer.insert(first, 0.0, 0.2).frames == []
    assert not buffer.blocked
    assert buffer.insert(third, 0.0, 0.2).frames == []
    assert buffer.blocked  # packet 2 is missing with newer ones behind it
    assert [f.lastSeq for f in buffer.insert(second, 0.05, 0.2).frames] == [3]
    assert not buffer.blocked


def test_a_repaired_gap_delivers_late_and_an_unrepaired_one_drops_and_asks_for_a_key_frame():
    buffer = VideoFrameBuffer()
    for packet in _frame(1, 0, 2, key=True):
        buffer.insert(packet, 0.0, 0.2)
    lost, *rest = _frame(3, 3000, 3)
    for packet in rest:
        assert buffer.insert(packet, 0.01, 0.2).frames == []
    assert [f.firstSeq for f in buffer.insert(lost, 0.1, 0.2).frames] == [3]
    # Frame 6..7 loses 6 for good: the deadline passes, the buffer gives up.
    for packet in _frame(6, 6000, 2)[1:] + _frame(8, 9000, 2):
        buffer.insert(packet, 0.2, 0.2)
    assert buffer.poll(0.3, 0.2).frames == []
    output = buffer.poll(0.41, 0.2)
    assert output.keyFrameNeeded and output.frames == [] and output.clearNackUpTo == 10
    assert buffer.waitingForKeyFrame and buffer.framesDropped == 2
    # A delta frame does not restart decoding; the next key frame does.
    assert buffer.insert(_frame(10, 12000, 1)[0], 0.5, 0.2).frames == []
    frames = [f for p in _frame(11, 15000, 2, key=True) for f in buffer.insert(p, 0.6, 0.2).frames]
    assert [f.firstSeq for f in frames] == [11]


def test_a_key_frame_after_a_gap_decodes_at_once():
    buffer = VideoFrameBuffer()
    for packet in _frame(1, 0, 1, key=True):
        buffer.insert(packet, 0.0, 10.0)
    frames = []
    for packet in _frame(5, 9000, 2) + _frame(7, 12000, 3, key=True):  # 2..4 missing
        frames += buffer.insert(packet, 0.01, 10.0).frames
    assert [f.firstSeq for f in frames] == [7]
    assert buffer.framesDropped == 1  # 5..6; how many frames 2..4 held is unknown


def test_after_an_outage_the_media_time_gap_ends_the_wait_at_once():
    buffer = VideoFrameBuffer()
    for packet in _frame(1, 0, 1, key=True):
        buffer.insert(packet, 0.0, 0.2)
    # Three seconds later, packets again; everything in between is gone.
    output = buffer.insert(_frame(300, 3 * 90000, 2)[1], 3.0, 0.2)
    assert output.keyFrameNeeded


def test_padding_keeps_the_sequence_contiguous():
    buffer = VideoFrameBuffer()
    frames = []
    sequence = [*_frame(1, 0, 2, key=True), _packet(3, 0, padding=True), *_frame(4, 3000, 1)]
    for packet in sequence:
        frames += buffer.insert(packet, 0.0, 0.2).frames
    assert [f.firstSeq for f in frames] == [1, 4]


def test_an_h264_frame_start_is_known_from_the_previous_packet():
    buffer = VideoFrameBuffer()
    # A key frame whose first packet carries no start hint, after a packet of another frame.
    buffer.insert(_packet(1, 0, marker=True), 0.0, 0.2)
    frames = []
    for packet in (_packet(2, 3000, key=True), _packet(3, 3000, marker=True, key=True)):
        frames += buffer.insert(packet, 0.0, 0.2).frames
    assert [f.firstSeq for f in frames] == [2]


def test_the_nack_module_giving_up_ends_the_wait():
    buffer = VideoFrameBuffer()
    buffer.insert(_frame(1, 0, 1, key=True)[0], 0.0, 1.0)
    buffer.insert(_frame(3, 6000, 1)[0], 0.0, 1.0)
    assert not buffer.poll(0.1, 1.0).keyFrameNeeded
    assert buffer.unrecoverable([2], 0.11, 1.0).keyFrameNeeded


# Audio jitter buffer.


def test_audio_is_reordered_and_a_lost_packet_is_skipped_after_a_short_wait():
    buffer = AudioJitterBuffer()
    packets = {seq: AudioPacket(seq, seq * 960, b"x", 0.0) for seq in range(1, 7)}
    assert [p.seq for p in buffer.insert(packets[1], 0.0, 0.04).packets] == [1]
    assert buffer.insert(packets[3], 0.0, 0.04).packets == []
    assert [p.seq for p in buffer.insert(packets[2], 0.01, 0.04).packets] == [2, 3]
    buffer.insert(packets[5], 0.02, 0.04)  # 4 is lost
    assert buffer.poll(0.05, 0.04).packets == []
    output = buffer.poll(0.07, 0.04)
    assert [p.seq for p in output.packets] == [5] and output.afterLoss == [True]
    assert output.packetsLost == 1
    buffer.insert(packets[4], 0.08, 0.04)
    assert buffer.packetsLate == 1


# Statistics.


def test_loss_fraction_lost_and_the_extended_highest_sequence():
    stats = StreamStatistics(ssrc=7, clockRate=90000)
    for seq in [65534, 65535, 65536 + 1, 65536 + 3]:  # 65536 and 65538 lost
        stats.onPacket(seq, 0, 0.0, 0.0, 100, False)
    block = stats.reportBlock(1.0)
    assert block.packetsLost == 2 and block.fractionLost == 2 * 256 // 6
    assert block.highestSequence == 65536 + 3
    stats.onPacket(65536, 0, 0.0, 0.0, 100, True)  # repaired
    stats.onPacket(65536, 0, 0.0, 0.0, 100, True)  # a duplicate is not counted
    # Received includes the repair (W3C); lost is what did not arrive on the media SSRC
    # (RFC 3550, as the receiver reports tell the router).
    assert stats.packetsReceived == 5 and stats.retransmittedPacketsReceived == 1
    assert stats.packetsLost == 2 and stats.packetsDuplicated == 1
    assert stats.reportBlock(2.0).fractionLost == 0  # nothing new lost in this interval


def test_jitter_follows_rfc_3550():
    steady = StreamStatistics(ssrc=1, clockRate=90000)
    for frame in range(50):
        steady.onPacket(frame, frame * 3000, 10.0 + frame / 30, 0.0, 100, False)
    assert steady.jitter == pytest.approx(0.0, abs=1e-6)
    noisy = StreamStatistics(ssrc=1, clockRate=90000)
    for frame in range(2000):
        delay = 0.01 if frame % 2 else 0.0  # alternating 10 ms transit difference
        noisy.onPacket(frame, frame * 3000, frame / 30 + delay, 0.0, 100, False)
    assert noisy.jitter == pytest.approx(0.01, rel=0.05)


def test_the_last_sender_report_gives_lsr_and_dlsr():
    stats = StreamStatistics(ssrc=1, clockRate=90000)
    stats.onPacket(1, 0, 0.0, 0.0, 10, False)
    stats.onSenderReport(0x1234_5678_9ABC_DEF0, 0, 1, 10, 5.0, 0.0)
    block = stats.reportBlock(5.5)
    assert block.lsr == 0x5678_9ABC and block.dlsr == 32768


def test_a_freeze_is_a_frame_duration_beyond_three_times_the_average():
    counters = FrameCounters()
    now = 0.0
    for _ in range(30):
        counters.onDecoded(now, 320, 240, False, 0.001)
        now += 1 / 30
    counters.onDecoded(now + 0.5, 320, 240, True, 0.001)
    assert counters.freezeCount == 1 and counters.totalFreezesDuration == pytest.approx(0.533, 0.01)
    assert counters.framesPerSecond(now + 0.5) == pytest.approx(15, abs=2)


# Transport-wide feedback.


def _parse(packet: bytes) -> TransportFeedback:
    (feedback,) = extractTransportFeedback(packet)
    return feedback


def _received(packet: bytes) -> dict[int, int]:
    """Sequence number -> arrival (us, from reference time 0) of what ``packet`` reports."""
    return {
        seq: round(arrival * 1e6)
        for seq, arrival in _parse(packet).arrivals()
        if arrival is not None
    }


def _arrivals(feedback: TransportFeedbackGenerator) -> dict[int, int]:
    received: dict[int, int] = {}
    for packet in feedback.build():
        assert len(packet) <= MAX_FEEDBACK_SIZE and len(packet) % 4 == 0
        received.update(_received(packet))
    return received


def test_feedback_reports_each_arrival_to_250_us_and_the_losses():
    feedback = TransportFeedbackGenerator(senderSsrc=1)
    rng = random.Random(4)
    arrivals = {}
    now = 100.0
    for seq in range(65500, 65500 + 300):
        now += rng.choice([0.0001, 0.002, 0.03, 0.09])  # small, large (2-byte) deltas
        if seq % 7 == 0:
            continue  # lost
        arrivals[seq & 0xFFFF] = now
        feedback.onPacket(seq & 0xFFFF, now)
    received = _arrivals(feedback)
    assert set(received) == set(arrivals)
    origin = min(arrivals.values())
    for seq, at in arrivals.items():
        assert abs(received[seq] - (at - origin) * 1e6) < 250 + 1
    assert not feedback.pending and feedback.build() == []


def test_a_packet_reported_lost_and_arriving_late_is_reported_again():
    feedback = TransportFeedbackGenerator(senderSsrc=1)
    for seq in (1, 2, 4):
        feedback.onPacket(seq, 1.0 + seq / 1000)
    packet = feedback.build()[0]
    first = _parse(packet)
    assert (first.baseSequence, len(first.packets), set(_received(packet))) == (1, 4, {1, 2, 4})
    feedback.onPacket(3, 1.01)
    feedback.onPacket(5, 1.011)
    packet = feedback.build()[0]
    again = _parse(packet)
    assert again.baseSequence == 3 and set(_received(packet)) == {3, 4, 5}
    assert again.feedbackCount == first.feedbackCount + 1


def test_long_runs_and_many_packets_split_into_packets_that_fit():
    feedback = TransportFeedbackGenerator(senderSsrc=1)
    now = 0.0
    sent = set()
    for seq in range(0, 40000, 3):  # every third packet: vector chunks all the way
        now += 0.00001
        feedback.onPacket(seq & 0xFFFF, now)
        sent.add(seq & 0xFFFF)
    feedback.onPacket(50000, now + 0.001)  # after a run of 10 000 lost
    sent.add(50000)
    packets = feedback.build()
    assert len(packets) > 1
    assert set(_merge(packets)) == sent


def _merge(packets: list[bytes]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for packet in packets:
        merged.update(_received(packet))
    return merged


def test_an_arrival_delta_beyond_16_bits_starts_a_new_packet():
    feedback = TransportFeedbackGenerator(senderSsrc=1)
    feedback.onPacket(1, 0.0)
    feedback.onPacket(2, 10.0)  # 10 s later: 40 000 ticks
    packets = feedback.build()
    assert len(packets) == 2
    assert set(_merge(packets)) == {1, 2}


# RTCP writers.


def test_generic_nack_spans_the_wrap_and_reads_back():
    lost = [65533, 65534, 65536 + 1, 65536 + 40]
    data = rtcp.genericNack(5, 6, lost)
    [packet] = RtcpPacket.parse(data)
    assert isinstance(packet, RtcpRtpfbPacket) and packet.media_ssrc == 6
    assert sorted(s & 0xFFFF for s in packet.lost) == sorted(s & 0xFFFF for s in lost)


def test_receiver_report_carries_the_block():
    stats = StreamStatistics(ssrc=9, clockRate=48000)
    stats.onPacket(10, 0, 0.0, 0.0, 10, False)
    stats.onPacket(12, 960, 0.02, 0.0, 10, False)
    [packet] = RtcpPacket.parse(rtcp.receiverReport(3, [stats.reportBlock(1.0)]))
    assert isinstance(packet, RtcpRrPacket) and packet.ssrc == 3
    [report] = packet.reports
    assert (report.ssrc, report.packets_lost, report.highest_sequence) == (9, 1, 12)


def test_capture_times_map_rtp_onto_our_clock_from_sender_reports_of_any_clock():
    from mediasoup_client.handlers.aiortc.receive.capture_clock import CaptureClock

    clock = CaptureClock(90000)
    assert clock.wallTimeOf(1234) is None  # before any report
    # The sender's clock is not a wall clock (mediasoup: its uptime): 5000 s, RTP 0xFFFFFF00,
    # arriving at our 1.7e9 over a 40 ms round trip.
    sender, ours = 5000.0, 1_700_000_000.0
    rtp = 0xFFFFFF00
    clock.onSenderReport(int(sender * (1 << 32)), rtp, ours + 0.02, 0.04)
    assert clock.wallTimeOf(rtp) == pytest.approx(ours, abs=1e-6)
    # One second later in media time, across the 32-bit wrap, unwrapped or not.
    later = rtp + 90000
    assert clock.wallTimeOf(later) == pytest.approx(ours + 1.0, abs=1e-6)
    assert clock.wallTimeOf(later & 0xFFFFFFFF) == pytest.approx(ours + 1.0, abs=1e-6)
    assert clock.wallTimeOf(rtp - 9000) == pytest.approx(ours - 0.1, abs=1e-6)
    # Reports keep coming, one of them late by 300 ms: the median keeps the frames in place.
    for index, late in enumerate([0.0, 0.3, 0.0, 0.0]):
        step = index + 1
        clock.onSenderReport(
            int((sender + step) * (1 << 32)), (rtp + step * 90000) & 0xFFFFFFFF,
            ours + step + 0.02 + late, 0.04,
        )  # fmt: skip
    assert clock.wallTimeOf(rtp + 5 * 90000) == pytest.approx(ours + 5, abs=1e-6)
    # Without a known round trip the report counts as written when it arrived.
    fresh = CaptureClock(48000)
    fresh.onSenderReport(int(sender * (1 << 32)), 0, ours, None)
    assert fresh.wallTimeOf(48000) == pytest.approx(ours + 1, abs=1e-6)
