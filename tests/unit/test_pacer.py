"""The pacer and the retransmission budget, on plain values and a hand-moved clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mediasoup_client.handlers.aiortc.send.cc.probing import ProbeCluster
from mediasoup_client.handlers.aiortc.send.pacer import (
    BURST,
    MAX_LEADING_BYTES,
    PACKET_OVERHEAD,
    Pacer,
    Priority,
)
from mediasoup_client.handlers.aiortc.send.retransmission import (
    MAX_HISTORY,
    MIN_HISTORY,
    SHARE,
    RetransmissionBudget,
)


@dataclass(frozen=True)
class Packet:
    name: str
    size: int = 1000 - PACKET_OVERHEAD  # 1000 bytes on the wire


def pacer(rate: float = 800_000) -> Pacer[Packet]:
    return Pacer(lambda p: p.size, pacingRate=rate)


def streamPacer(rate: float = 80_000) -> Pacer[Packet]:
    """Packets named "<stream><n>": the stream is the name's first letter."""
    return Pacer(lambda p: p.size, pacingRate=rate, streamOf=lambda p: p.name[0])


def run(p: Pacer[Packet], until: float, start: float = 0.0) -> list[tuple[float, Packet]]:
    """Call the pacer whenever it asks to, like the scheduler's timer; (time, packet) sent."""
    now = start
    sent: list[tuple[float, Packet]] = []
    while now <= until:
        sent += [(now, s.packet) for s in p.process(now, None)]
        due = p.nextSendTime(now)
        if due is None:
            break
        now = max(due, now + 1e-6)
    return sent


def test_a_burst_is_spread_at_the_pacing_rate():
    p = pacer(800_000)  # 100 bytes per ms
    for index in range(50):
        p.enqueue(Packet(f"v{index}"), Priority.VIDEO, 0.0)
    sent = run(p, 2.0)
    assert len(sent) == 50
    # The first BURST worth leaves at once, the rest one per 10 ms.
    at_once = [t for t, _p in sent if t == 0.0]
    assert len(at_once) == int(800_000 / 8 * BURST / 1000) or len(at_once) == 1
    span = sent[-1][0] - sent[0][0]
    assert span == pytest.approx(49 * 1000 * 8 / 800_000, abs=0.02)
    assert p.queuedPackets == 0 and p.queuedBytes == 0


def test_audio_first_then_retransmissions_then_video():
    p = pacer(80_000)  # 10 bytes per ms: one 1000-byte packet per 100 ms
    p.enqueue(Packet("v1"), Priority.VIDEO, 0.0)
    p.process(0.0, None)  # v1 leaves; the debt now holds the rest back
    p.enqueue(Packet("v2"), Priority.VIDEO, 0.01)
    p.enqueue(Packet("r1"), Priority.RETRANSMISSION, 0.02)
    p.enqueue(Packet("a1", 100), Priority.AUDIO, 0.03)
    # Audio is never held: out at once, although the budget is spent.
    assert [s.packet.name for s in p.process(0.03, None)] == ["a1"]
    order = [packet.name for _t, packet in run(p, 1.0, start=0.03)]
    assert order == ["r1", "v2"]


def test_audio_leaves_at_once_in_arrival_order_whatever_the_budget():
    p = streamPacer(8_000)  # a budget audio alone exceeds 40-fold
    names = [f"{stream}{n}" for n in range(3) for stream in "cab"]
    for name in names:
        p.enqueue(Packet(name, 100), Priority.AUDIO, 0.0)
    assert [s.packet.name for s in p.process(0.0, None)] == names
    assert p.queuedPackets == 0 and p.nextSendTime(0.0) is None


def test_queue_limit_drains_faster_than_the_pacing_rate_but_not_while_congested():
    p = pacer(80_000)
    for index in range(40):  # 40 kB at 10 kB/s is 4 s: over the 1 s limit
        p.enqueue(Packet(f"v{index}"), Priority.VIDEO, 0.0)
    sent = run(p, 10.0)
    assert len(sent) == 40
    # At most MAX_DRAIN_FACTOR x the pacing rate: 15 kB/s.
    assert 40 / 15 - 0.2 <= sent[-1][0] <= 40 / 15 + 0.1
    congested = pacer(80_000)
    congested.drainFaster = False
    for index in range(40):
        congested.enqueue(Packet(f"v{index}"), Priority.VIDEO, 0.0)
    assert run(congested, 10.0)[-1][0] == pytest.approx(3.9, abs=0.05)  # at the pacing rate


def test_stale_video_is_dropped_and_counted():
    p = pacer(8_000)
    p.enqueue(Packet("old"), Priority.VIDEO, 0.0)
    p.enqueue(Packet("r"), Priority.RETRANSMISSION, 0.0)
    p.enqueue(Packet("new"), Priority.VIDEO, 0.9)
    assert [packet.name for packet in p.dropStale(1.0, maxWait=0.5)] == ["old"]
    assert p.queuedPackets == 2 and p.packetsDropped == 1 and p.queuedBytes == 2000


def test_probe_cluster_sends_at_its_rate_with_padding_when_nothing_is_queued():
    p = pacer(300_000)
    made: list[int] = []

    def padding(size: int) -> list[Packet]:
        made.append(size)
        return [Packet(f"pad{len(made)}-{i}", 200 - PACKET_OVERHEAD) for i in range(3)]

    cluster = ProbeCluster(id=7, bitrate=2_000_000, minBytes=6250)  # 25 ms at 2 Mbps
    p.addProbe(cluster)
    now = 0.0
    sends = []
    while now < 1.0:
        sends += [(now, s) for s in p.process(now, padding)]
        due = p.nextSendTime(now)
        if due is None:
            break
        now = max(due, now + 1e-6)
    assert all(s.cluster == 7 for _t, s in sends)
    total = sum(200 for _ in sends)
    assert total >= 6250 and len(sends) >= 5
    span = sends[-1][0] - sends[0][0]
    rate = (total - 200) * 8 / span
    assert rate == pytest.approx(2_000_000, rel=0.1)
    assert not p.probing


def test_probe_without_material_is_dropped():
    p = pacer()
    p.addProbe(ProbeCluster(id=1, bitrate=1_000_000, minBytes=3000))
    assert p.process(0.0, lambda size: []) == []
    assert not p.probing and p.nextSendTime(0.0) is None


def test_probe_uses_queued_media_first():
    p = pacer(100_000)
    for index in range(10):
        p.enqueue(Packet(f"v{index}"), Priority.VIDEO, 0.0)
    p.addProbe(ProbeCluster(id=2, bitrate=4_000_000, minBytes=5000))
    sends = []
    now = 0.0
    while len(sends) < 5:
        sends += p.process(now, lambda size: [])
        now = p.nextSendTime(now) or now + 0.001
    assert [s.packet.name for s in sends[:5]] == [f"v{i}" for i in range(5)]
    assert {s.cluster for s in sends[:5]} == {2}


def test_drop_forgets_a_stopped_producers_packets():
    p = pacer(8_000)
    for name in ("a", "b", "a", "b"):
        p.enqueue(Packet(name), Priority.VIDEO, 0.0)
    assert p.drop(lambda packet: packet.name != "a") == 2
    assert p.queuedPackets == 2 and p.queuedBytes == 2000


def test_a_new_stream_does_not_wait_behind_another_streams_burst():
    p = streamPacer()  # one 1000-byte packet per 100 ms
    for index in range(20):  # a key frame of stream a: 2 s of the pacing rate
        p.enqueue(Packet(f"a{index}"), Priority.VIDEO, 0.0)
    k = len(run(p, 0.25))  # a0 .. a(k-1) left
    assert 0 < k < 20
    for index in range(3):  # a second producer's first frame
        p.enqueue(Packet(f"b{index}"), Priority.VIDEO, 0.25)
    order = [packet.name for _t, packet in run(p, 1.5, start=0.25)]
    # b sent nothing yet: it goes first, at most MAX_LEADING_BYTES ahead of a, then they
    # alternate; within each stream the order holds.
    assert MAX_LEADING_BYTES == 1400
    assert order[:6] == ["b0", "b1", f"a{k}", "b2", f"a{k + 1}", f"a{k + 2}"]


def test_streams_take_turns_by_bytes_sent():
    p = streamPacer(8_000_000)
    for index in range(4):
        p.enqueue(Packet(f"a{index}", 2000 - PACKET_OVERHEAD), Priority.VIDEO, 0.0)
        p.enqueue(Packet(f"b{index}"), Priority.VIDEO, 0.0)
        p.enqueue(Packet(f"b{index}x"), Priority.VIDEO, 0.0)
    order = [packet.name for _t, packet in run(p, 1.0)]
    # a's packets are twice b's: b sends two for each of a's.
    assert order == ["a0", "b0", "b0x", "a1", "b1", "b1x", "a2", "b2", "b2x", "a3", "b3", "b3x"]


def test_stale_video_and_drops_reach_every_stream():
    p = streamPacer(8_000)
    p.enqueue(Packet("a-old"), Priority.VIDEO, 0.0)
    p.enqueue(Packet("b-old"), Priority.VIDEO, 0.1)
    p.enqueue(Packet("a-new"), Priority.VIDEO, 0.9)
    p.enqueue(Packet("b-new"), Priority.VIDEO, 0.9)
    assert p.oldestEnqueueTime() == 0.0
    assert [packet.name for packet in p.dropStale(1.0, maxWait=0.5)] == ["a-old", "b-old"]
    assert p.drop(lambda packet: not packet.name.startswith("a")) == 1
    assert [packet.name for _t, packet in run(p, 2.0, start=1.0)] == ["b-new"]
    assert p.queuedPackets == 0 and p.queuedBytes == 0


# The retransmission budget.


def test_history_follows_the_round_trip():
    budget = RetransmissionBudget()
    assert budget.historyAge == 0.7  # 50 ms until measured
    budget.rtt = 0.002
    assert budget.historyAge == MIN_HISTORY
    budget.rtt = 0.2
    assert budget.historyAge == pytest.approx(2.2)
    budget.rtt = 2.0
    assert budget.historyAge == MAX_HISTORY
    assert budget.resendInterval == 2.0


def test_resends_take_at_most_their_share_of_the_estimate():
    budget = RetransmissionBudget(estimate=400_000)  # 30 %: 15 kB a second
    allowed = sum(budget.allow(1000, 0.5) for _ in range(100))
    assert allowed == int(SHARE * 400_000 / 8 / 1000)
    assert budget.refusedBudget == 100 - allowed
    assert budget.allow(1000, 1.6)  # a second later the window is free again
    assert budget.rate(1.6) == 8000
