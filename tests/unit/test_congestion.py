"""Send-side congestion control, part by part, on synthetic inputs: transport feedback (parsed
against our own serializer and hand-made bytes), the send history, inter-arrival grouping, the
trendline on delay ramps, AIMD, the loss-based estimate, probing."""

from __future__ import annotations

import random
import struct

import pytest

from mediasoup_client.handlers.aiortc.send.cc.controller import CongestionController
from mediasoup_client.handlers.aiortc.send.cc.delay_based import (
    AimdRateControl,
    BandwidthUsage,
    DelayBasedBwe,
    GroupDelta,
    InterArrival,
    TrendlineEstimator,
)
from mediasoup_client.handlers.aiortc.send.cc.history import (
    PACKET_OVERHEAD,
    FeedbackReport,
    PacketResult,
    TransportSendHistory,
)
from mediasoup_client.handlers.aiortc.send.cc.loss_based import SendSideEstimate
from mediasoup_client.handlers.aiortc.send.cc.probing import (
    LIMITED_PROBE_INTERVAL,
    MAX_LIMITED_PROBE_INTERVAL,
    ProbeCluster,
    ProbeController,
    ProbeEstimator,
)
from mediasoup_client.handlers.aiortc.send.cc.throughput import ThroughputEstimator
from mediasoup_client.handlers.aiortc.send.cc.transport_feedback import (
    TransportFeedback,
    extractTransportFeedback,
    parseTransportFeedback,
)

# Transport feedback.


def _roundTrip(feedback: TransportFeedback) -> TransportFeedback:
    (parsed,) = extractTransportFeedback(feedback.serialize())
    return parsed


def test_feedback_round_trips_runs_vectors_and_large_deltas():
    rng = random.Random(7)
    for _ in range(200):
        count = rng.randint(1, 300)
        packets: list[tuple[int, int | None]] = []
        base = rng.randint(0, 0xFFFF)
        style = rng.choice(["runs", "mixed", "large"])
        for index in range(count):
            roll = rng.random()
            if style == "runs":
                delta: int | None = 4 if (index // 20) % 2 else None
            elif style == "large":
                delta = rng.choice([None, rng.randint(-5000, 5000), rng.randint(0, 255)])
            else:
                delta = None if roll < 0.2 else rng.randint(0, 255)
            packets.append(((base + index) & 0xFFFF, delta))
        feedback = TransportFeedback(
            senderSsrc=rng.getrandbits(32), mediaSsrc=rng.getrandbits(32), baseSequence=base,
            referenceTime=rng.randint(-(1 << 23), (1 << 23) - 1), feedbackCount=rng.randint(0, 255),
            packets=packets,
        )  # fmt: skip
        data = feedback.serialize()
        assert len(data) % 4 == 0
        assert _roundTrip(feedback) == feedback


def test_feedback_long_runs_need_several_run_chunks():
    packets: list[tuple[int, int | None]] = [(i & 0xFFFF, None) for i in range(10_000)]
    packets.append((10_000, 8))
    feedback = TransportFeedback(1, 2, 0, 5, 0, packets)
    assert _roundTrip(feedback) == feedback


def test_feedback_parses_the_draft_layout_by_hand():
    # base 100, 4 packets: received (small delta 10 = 2.5 ms), lost, received (large delta
    # -40 = -10 ms), received (small 0). One two-bit vector chunk: 01 00 10 01 then 3 unused.
    chunk = 0xC000 | (1 << 12) | (0 << 10) | (2 << 8) | (1 << 6)
    body = struct.pack("!IIHH", 0x11, 0x22, 100, 4)
    body += ((-3 & 0xFFFFFF) << 8 | 9).to_bytes(4, "big")  # reference -3 x 64 ms, count 9
    body += struct.pack("!H", chunk) + bytes([10]) + struct.pack("!h", -40) + bytes([0])
    padding = -len(body) % 4
    # With the P bit: the last byte says how much padding there is.
    body_padded = body + bytes(padding + 3) + bytes([padding + 4]) if padding else body
    header = struct.pack("!BBH", 0xA0 | 15, 205, len(body_padded) // 4)
    compound = bytes([0x80, 201, 0, 1]) + struct.pack("!I", 5)  # an empty RR first
    (feedback,) = extractTransportFeedback(compound + header + body_padded)
    assert feedback.baseSequence == 100 and feedback.feedbackCount == 9
    assert feedback.referenceTime == -3
    assert feedback.packets == [(100, 10), (101, None), (102, -40), (103, 0)]
    arrivals = list(feedback.arrivals())
    assert arrivals[0][1] == pytest.approx(-0.192 + 0.0025)
    assert arrivals[2][1] == pytest.approx(-0.192 + 0.0025 - 0.010)
    assert arrivals[1] == (101, None)


def test_feedback_malformed_or_foreign_packets_are_skipped():
    good = TransportFeedback(1, 2, 10, 0, 0, [(10, 4), (11, 4)]).serialize()
    truncated = good[:-4]
    truncated = truncated[:2] + struct.pack("!H", len(truncated) // 4 - 1) + truncated[4:]
    nack = bytes([0x81, 205, 0, 3]) + struct.pack("!IIHH", 1, 2, 5, 0)
    assert len(extractTransportFeedback(truncated + nack + good)) == 1
    with pytest.raises(ValueError):
        parseTransportFeedback(b"\x00" * 8)


# The transport's send history.


def test_history_unwraps_sequence_numbers_and_reports_each_packet_once():
    history = TransportSendHistory()
    for _ in range(0x10000 + 10):
        history.allocate()
    # The newest ten went out at t = 1.00 .. 1.09.
    for index, sequence in enumerate(range(0x10000, 0x10000 + 10)):
        history.onSent(sequence, 1000, 1.0 + index * 0.01)
    feedback = TransportFeedback(0, 1, 0, 100, 0, [(0, 4), (1, None), (2, 4)])
    report = history.onFeedback(feedback, now=1.2)
    assert [r.sequence for r in report.results] == [0x10000, 0x10001, 0x10002]
    assert report.results[0].size == 1000 + PACKET_OVERHEAD
    assert [r.received for r in report.results] == [True, False, True]
    assert report.results[2].receiveTime == pytest.approx(100 * 0.064 + 0.002)
    # The same packets again (a duplicate): nothing new; the lost one arriving late counts.
    again = history.onFeedback(TransportFeedback(0, 1, 0, 101, 1, [(0, 4), (1, 4)]), now=1.3)
    assert [(r.sequence, r.received) for r in again.results] == [(0x10001, True)]
    assert history.packetsLost == 1


def test_history_keeps_the_receiver_clock_continuous_across_the_reference_wrap():
    history = TransportSendHistory()
    for sequence in range(3):
        history.allocate()
        history.onSent(sequence, 500, 1.0 + sequence * 0.1)
    first = history.onFeedback(TransportFeedback(0, 1, 0, (1 << 23) - 1, 0, [(0, 0)]), now=1.05)
    # 128 ms later the 24-bit reference wraps from 0x7fffff to -0x800000 (two's complement).
    second = history.onFeedback(TransportFeedback(0, 1, 1, -(1 << 23), 1, [(1, 0)]), now=1.15)
    gap = second.results[0].receiveTime - first.results[0].receiveTime  # type: ignore[operator]
    assert gap == pytest.approx(0.064)
    # A receiver whose clock jumped by hours: carried on from where it was.
    third = history.onFeedback(TransportFeedback(0, 1, 2, 12345, 2, [(2, 0)]), now=1.25)
    gap = third.results[0].receiveTime - second.results[0].receiveTime  # type: ignore[operator]
    assert gap == pytest.approx(0.1)


# Inter-arrival grouping and the trendline.


def test_inter_arrival_groups_by_5_ms_of_sending_and_bursts():
    arrival = InterArrival()
    deltas = []
    # Three packets per 20 ms frame, 1 ms apart: one group per frame.
    for frame in range(4):
        for packet in range(3):
            send = frame * 0.02 + packet * 0.001
            delta = arrival.add(send, send + 0.05, send + 0.05, 1000)
            if delta is not None:
                deltas.append(delta)
    assert len(deltas) == 2  # groups 0-1 and 1-2 (group 3 is still open)
    assert all(d.sendDelta == pytest.approx(0.02) for d in deltas)
    assert all(d.arrivalDelta == pytest.approx(0.02) for d in deltas)
    # A packet sent 8 ms after its group but arriving in a burst right behind it joins it.
    burst = InterArrival()
    burst.add(0.0, 0.1, 0.1, 100)
    burst.add(0.008, 0.101, 0.101, 100)
    assert burst.add(0.03, 0.13, 0.13, 100) is None  # first delta needs a previous group
    delta = burst.add(0.06, 0.16, 0.16, 100)
    assert delta is not None and delta.sendDelta == pytest.approx(0.022)


def _trend(ramp: float, groups: int = 100) -> list[BandwidthUsage]:
    """Groups sent 20 ms apart whose delay grows by ``ramp`` seconds per group."""
    estimator = TrendlineEstimator()
    states = []
    for index in range(groups):
        arrival = 1.0 + index * (0.02 + ramp)
        states.append(estimator.update(GroupDelta(0.02, 0.02 + ramp, arrival, 0)))
    return states


def test_trendline_constant_delay_is_normal():
    assert set(_trend(0.0)) == {BandwidthUsage.NORMAL}
    # Jitter (a noisy delay around a constant) without a trend stays normal too.
    estimator = TrendlineEstimator()
    rng = random.Random(3)
    previous = 0.0
    for index in range(300):
        noise = rng.uniform(0, 0.004)
        arrival = 1.0 + index * 0.02 + noise
        state = estimator.update(GroupDelta(0.02, 0.02 + noise - previous, arrival, 0))
        previous = noise
        assert state is not BandwidthUsage.OVERUSING


def test_trendline_rising_delay_is_overuse_and_falling_is_underuse():
    rising = _trend(0.002)  # the queue grows 2 ms every 20 ms: 10 % over capacity
    first = rising.index(BandwidthUsage.OVERUSING)
    assert 15 <= first <= 40, first  # once the window holds enough points
    falling = _trend(-0.002)
    assert BandwidthUsage.UNDERUSING in falling
    assert BandwidthUsage.OVERUSING not in falling


def test_trendline_threshold_adapts_to_a_persistent_small_trend():
    estimator = TrendlineEstimator()
    start = estimator.threshold
    arrival = 1.0
    for _ in range(500):
        arrival += 0.0201
        estimator.update(GroupDelta(0.02, 0.0201, arrival, 0))
    assert estimator.threshold != start and 6.0 <= estimator.threshold <= 600.0


# AIMD.


def test_aimd_grows_8_percent_a_second_far_from_capacity():
    control = AimdRateControl(500_000)
    control.update(BandwidthUsage.NORMAL, 500_000, 0.0)
    for step in range(1, 11):
        control.update(BandwidthUsage.NORMAL, 10_000_000, step * 0.1)
    assert control.bitrate == pytest.approx(500_000 * 1.08, rel=0.02)


def test_aimd_never_grows_past_1_5x_the_acknowledged_rate():
    control = AimdRateControl(200_000)
    for step in range(200):
        control.update(BandwidthUsage.NORMAL, 300_000, step * 0.1)
    assert control.bitrate == pytest.approx(1.5 * 300_000 + 10_000)


def test_aimd_backs_off_to_85_percent_of_throughput_once_per_rtt_then_adds():
    control = AimdRateControl(1_000_000)
    control.rtt = 0.1
    assert control.update(BandwidthUsage.OVERUSING, 800_000, 10.0) == pytest.approx(680_000)
    assert not control.timeToReduceFurther(10.05, 700_000)
    assert control.timeToReduceFurther(10.11, 700_000)
    assert control.timeToReduceFurther(10.05, 300_000)  # throughput collapsed: at once
    assert control.update(BandwidthUsage.UNDERUSING, 650_000, 10.2) == pytest.approx(680_000)
    # Near the capacity just measured: additive, about a packet per response time.
    control.update(BandwidthUsage.NORMAL, 680_000, 10.3)
    after = control.update(BandwidthUsage.NORMAL, 680_000, 11.3)
    assert 680_000 + 4000 <= after < 680_000 * 1.08


def test_delay_based_backs_off_when_a_queue_builds():
    bwe = DelayBasedBwe(1_000_000)
    send = 0.0
    queue = 0.0
    sequence = 0
    usage = set()
    for _feedback in range(40):
        results = []
        for _ in range(10):  # 10 packets of 1250 bytes per 100 ms: 1 Mbps into 800 kbps
            send += 0.01
            queue += 1250 * 8 / 800_000 - 0.01
            results.append(PacketResult(sequence, send, 1250, send + 0.02 + queue, None, "video"))
            sequence += 1
        result = bwe.onFeedback(FeedbackReport(send + 0.05, results), 800_000, None)
        assert result is not None
        usage.add(result.usage)
    assert BandwidthUsage.OVERUSING in usage
    assert bwe.bitrate < 800_000


# The acknowledged throughput.


def test_throughput_follows_the_arrival_rate():
    estimator = ThroughputEstimator()
    for index in range(400):  # 1000 bytes every 10 ms: 800 kbps
        estimator.add(index * 0.01, 1000)
    assert estimator.bitrate == pytest.approx(800_000, rel=0.08)
    for index in range(400, 800):  # then every 20 ms: 400 kbps
        estimator.add(4.0 + (index - 400) * 0.02, 1000)
    assert estimator.bitrate == pytest.approx(400_000, rel=0.1)


# Loss-based estimate and the one estimate.


def test_loss_based_grows_with_little_loss_and_backs_off_with_much():
    estimate = SendSideEstimate(1_000_000)
    estimate.onLoss(0, 100, 0.0)  # the start phase: nothing else to jump to
    for step in range(1, 6):
        estimate.onLoss(0, 50, 2.0 + step * 0.25)
    assert estimate.bitrate > 1_050_000  # about 8 % a second
    before = estimate.bitrate
    estimate.onLoss(5, 100, 4.0)  # 5 %: hold
    assert estimate.bitrate == before
    estimate.onLoss(30, 100, 4.1)  # 30 %: back off by 15 %
    assert estimate.bitrate == pytest.approx(before * 0.85)
    estimate.onLoss(30, 100, 4.2)  # not again within 300 ms + RTT
    assert estimate.bitrate == pytest.approx(before * 0.85)
    estimate.onLoss(30, 100, 4.5)
    assert estimate.bitrate == pytest.approx(before * 0.85 * 0.85)
    # Reports of fewer than 20 packets are summed first.
    estimate.onLoss(10, 10, 5.0)
    assert estimate.bitrate == pytest.approx(before * 0.85 * 0.85)


def test_remb_is_a_ceiling_from_its_first_value():
    estimate = SendSideEstimate(1_000_000)
    estimate.onRemb(300_000, 0.1)  # the first estimate: a ceiling at once
    assert estimate.bitrate == 300_000
    estimate.onDelayBased(2_000_000, 0.2)
    assert estimate.bitrate == 300_000
    estimate.onRemb(0, 0.3)  # mediasoup's "no limit"
    estimate.onLoss(0, 100, 0.4)  # no loss: it may grow again (8 %), up to the delay-based
    assert estimate.bitrate == pytest.approx(300_000 * 1.08 + 1000)
    estimate.setBitrate(1_500_000, 0.5)  # a probe proved more
    assert estimate.bitrate == 1_500_000


def test_controller_in_remb_mode_limits_by_remb_and_receiver_report_loss():
    controller = CongestionController()
    controller.setTransportCc(False)
    controller.onRemb(500_000, 1.0)
    assert controller.targetBitrate == 300_000  # below the ceiling: the start bitrate
    controller.onReceiverReport(0.0, 100, 1.0)  # no loss in the start phase: up to REMB
    assert controller.targetBitrate == 500_000
    controller.onReceiverReport(0.5, 100, 4.0)
    assert controller.targetBitrate == 375_000
    assert controller.stats()["mode"] == "remb"


# Probing.


def test_initial_probe_is_3x_the_start_then_twice_each_result_capped_by_demand():
    controller = ProbeController(300_000)
    clusters = controller.onDemand(3_000_000, 0.0)
    assert [c.bitrate for c in clusters] == [900_000]
    # At least 40 ms and 8 kB each: past a shaper's burst allowance.
    assert all(c.minBytes == max(8_000, int(c.bitrate * 0.04 / 8)) for c in clusters)
    # A result close to the last probe: probe further at twice it.
    assert controller.onEstimate(850_000, 0.2) == []  # not a probe's result
    assert [c.bitrate for c in controller.onEstimate(850_000, 0.2, probeResult=850_000)] == [
        1_700_000
    ]
    assert [c.bitrate for c in controller.onEstimate(1_700_000, 0.3, probeResult=1_700_000)] == [
        3_400_000
    ]
    # ...until twice the demand caps it, and that is the last.
    assert [c.bitrate for c in controller.onEstimate(3_300_000, 0.6, probeResult=3_300_000)] == [
        6_000_000
    ]
    assert controller.onEstimate(5_900_000, 0.9, probeResult=5_900_000) == []


def test_no_probe_when_the_estimate_covers_the_demand():
    controller = ProbeController(2_000_000)
    assert controller.onDemand(1_000_000, 0.0) == []
    assert controller.process(10.0, healthy=True) == []


def test_limited_probes_only_when_healthy_and_quiet():
    controller = ProbeController(300_000)
    controller.onDemand(2_000_000, 0.0)
    # Well below 70 % of the 900 kbps probe: no probing further.
    controller.onEstimate(600_000, 0.5, probeResult=600_000)
    assert controller.process(1.6, healthy=True) == []  # just probed
    controller.onBackoff(2.0)
    assert controller.process(3.5, healthy=True) == []  # backed off 1.5 s ago
    assert controller.process(4.5, healthy=False) == []  # loss or overuse now
    (cluster,) = controller.process(4.5, healthy=True)
    assert cluster.bitrate == 1_200_000  # twice the estimate
    assert controller.process(4.5 + LIMITED_PROBE_INTERVAL / 2, healthy=True) == []
    # It found nothing new: the next one comes later (x1.5, up to MAX_LIMITED_PROBE_INTERVAL).
    controller.onProbeResult(None, 4.7)
    assert controller.process(4.5 + LIMITED_PROBE_INTERVAL + 0.1, healthy=True) == []
    assert len(controller.process(4.5 + LIMITED_PROBE_INTERVAL * 1.5 + 0.1, healthy=True)) == 1
    controller.onProbeResult(None, 9.5)
    assert controller.process(9.1 + MAX_LIMITED_PROBE_INTERVAL - 0.2, healthy=True) == []
    assert controller.process(9.1 + MAX_LIMITED_PROBE_INTERVAL + 0.1, healthy=True)


def _cluster(estimator: ProbeEstimator, sendRate: float, receiveRate: float,
             packets: int = 10, burst: int = 0) -> float | None:  # fmt: skip
    """A cluster of ``packets`` of 1000 bytes; the first ``burst`` arrive at once (a shaper's
    bucket), the rest at ``receiveRate``."""
    cluster = ProbeCluster(id=1, bitrate=int(sendRate), minBytes=int(sendRate * 0.025 / 8))
    estimator.register(cluster)
    size = 1000
    results = [
        PacketResult(i, 10 + i * size * 8 / sendRate, size,
                     20 + max(0, i - burst) * size * 8 / receiveRate, 1, "padding")
        for i in range(packets)
    ]  # fmt: skip
    for result in results:
        estimator.onSent(1, result.sequence)
    # Part of the cluster reported: not measured yet (it would look too fast).
    assert estimator.onResults(results[: packets // 2]) is None
    estimator.onFinished(1)
    return estimator.onResults(results[packets // 2 :])


def test_probe_estimate_is_the_send_rate_on_a_free_link_and_below_the_arrival_rate_on_a_full_one():
    assert _cluster(ProbeEstimator(), 2_000_000, 2_000_000) == pytest.approx(2_000_000)
    saturated = _cluster(ProbeEstimator(), 2_000_000, 1_000_000)
    assert saturated == pytest.approx(0.95 * 1_000_000)
    assert _cluster(ProbeEstimator(), 2_000_000, 1_000_000, packets=3) is None  # too few
    # A shaper's bucket let the first 3 kB through at once: measured past it.
    shaped = _cluster(ProbeEstimator(), 1_200_000, 600_000, packets=12, burst=3)
    assert shaped == pytest.approx(0.95 * 600_000)
