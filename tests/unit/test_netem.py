"""The impairment relay's pure parts: specs, and the link's decisions on a fake clock."""

from __future__ import annotations

import json
import statistics
from typing import Any

import pytest

from mediasoup_client.netem import (
    GilbertElliott,
    ImpairmentSpec,
    ImpairmentSpecError,
    Link,
    LinkConfig,
    parseImpairment,
    parsePlan,
)
from mediasoup_client.netem.packets import DTLS, RTCP, STUN, classify, rtcpKind
from mediasoup_client.netem.process import _planFromJson, _specToJson
from mediasoup_client.netem.spec import describePlan

# ---------------------------------------------------------------- specs


def test_spec_both_directions_by_default() -> None:
    spec = parseImpairment("loss=5%,delay=40ms,jitter=10ms,rate=600k,queue=100ms")
    assert spec.up == spec.down
    assert spec.up is not None
    [phase] = spec.up
    config = phase.config
    assert phase.duration is None
    assert config.loss == pytest.approx(0.05)
    assert config.delay == pytest.approx(0.040)
    assert config.jitter == pytest.approx(0.010)
    assert config.rate == 600_000
    assert config.queueDelay == pytest.approx(0.1) and config.queueBytes is None
    assert not config.reorderByJitter


def test_spec_per_direction() -> None:
    spec = parseImpairment("up:rate=600k;down:loss=2%")
    assert spec.up is not None and spec.down is not None
    assert spec.up[0].config.rate == 600_000 and spec.up[0].config.loss == 0
    assert spec.down[0].config.loss == pytest.approx(0.02) and spec.down[0].config.rate is None
    assert parseImpairment("down:delay=5ms").up is None  # not mentioned: left as it is


def test_spec_units() -> None:
    config = parseImpairment("rate=1.5M,queue=30kB,bucket=1500B,delay=0.5s,jitter=500us").up
    assert config is not None
    c = config[0].config
    assert (c.rate, c.queueBytes, c.bucket) == (1_500_000, 30_000, 1500)
    assert c.delay == pytest.approx(0.5) and c.jitter == pytest.approx(0.0005)
    assert parsePlan("rate=600kbit/s")[0].config.rate == 600_000
    assert parsePlan("rate=600000")[0].config.rate == 600_000
    assert parsePlan("queue=64KiB,rate=1M")[0].config.queueBytes == 65536
    assert parsePlan("loss=0")[0].config.loss == 0


def test_spec_rate_gets_a_default_queue() -> None:
    [phase] = parsePlan("rate=600k")
    assert phase.config.queueDelay == pytest.approx(0.1)


def test_spec_phases_add_up_and_outage_lasts_its_phase() -> None:
    plan = parsePlan("rate=3M,queue=100ms for 10s then rate=600k")
    assert [p.duration for p in plan] == [10, None]
    assert plan[1].config.rate == 600_000 and plan[1].config.queueDelay == pytest.approx(0.1)
    plan = parsePlan("loss=1% for 5s then outage for 3s then delay=10ms")
    assert [p.config.outage for p in plan] == [False, True, False]
    assert plan[1].config.loss == pytest.approx(0.01)  # the outage keeps the rest
    assert plan[2].config.loss == pytest.approx(0.01) and plan[2].config.delay == 0.01


def test_spec_last_phase_with_a_duration_ends_clean() -> None:
    plan = parsePlan("outage for 3s")
    assert [p.duration for p in plan] == [3, None]
    assert plan[0].config.outage and plan[1].config.clean
    plan = parsePlan("for 5s then outage for 3s")
    assert plan[0].config.clean and plan[1].config.outage and plan[2].config.clean


def test_spec_clean_resets() -> None:
    plan = parsePlan("loss=5%,rate=1M for 2s then clean,delay=5ms")
    assert plan[1].config == LinkConfig(delay=0.005)


def test_spec_burst_is_gilbert_elliott() -> None:
    [phase] = parsePlan("burst=2%,burstlen=4")
    gilbert = phase.config.gilbert
    assert gilbert is not None
    assert gilbert.meanLoss == pytest.approx(0.02)
    assert gilbert.r == pytest.approx(0.25)
    [phase] = parsePlan("gilbert=1%:30%:80%:0.1%")
    assert phase.config.gilbert == GilbertElliott(0.01, 0.30, 0.80, 0.001)


@pytest.mark.parametrize(
    "text",
    [
        "loss=5%,delay=40ms,jitter=10ms,rate=600k,queue=100ms",
        "up:rate=3M,queue=100ms for 10s then rate=600k;down:burst=2%,burstlen=4",
        "down:for 5s then outage for 3s",
        "jitter=5ms,order=free,reorder=1%,reorderdelay=20ms",
        "rate=800k,queue=20000B,bucket=6000B,overhead=0B",
        "gilbert=1%:30%:80%:0.1%",
    ],
)
def test_spec_describe_parses_back(text: str) -> None:
    spec = parseImpairment(text)
    assert parseImpairment(spec.describe()) == spec
    for plan in (spec.up, spec.down):
        if plan is not None:
            assert parsePlan(describePlan(plan)) == plan


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loss=5", "loss: '5' is not a percentage"),
        ("loss=101%", "loss: '101%' is above 100%"),
        ("delay=40", "delay: '40' needs a unit"),
        ("jitter=fast", "jitter: 'fast' is not a duration"),
        ("rate=lots", "rate: 'lots' is not a bitrate"),
        ("rate=1k", "rate: '1k' is below 8 kbit/s"),
        ("queue=100ms", "queue: needs rate"),
        ("rate=1M,queue=10 apples", "queue: '10 apples' is not a size"),
        ("burstlen=3", "burstlen: needs burst"),
        ("burst=2%,gilbert=1%:30%", "burst: give either burst or gilbert"),
        ("gilbert=1%", "gilbert: expected p:r"),
        ("order=free", "order: needs jitter"),
        ("jitter=1ms,order=random", "order: keep or free"),
        ("reorderdelay=5ms", "reorderdelay: needs reorder"),
        ("outage=3s", "outage: takes no value"),
        ("speed=1", "unknown field 'speed'"),
        ("loss=1%,loss=2%", "loss: given twice"),
        ("loss=", "loss: needs a value"),
        ("up:loss=1%;loss=2%", "up: given twice"),
        ("sideways:loss=1%", "unknown direction 'sideways'"),
        ("rate=3M then rate=600k", "phase 1: every phase but the last needs 'for DURATION'"),
        ("rate=3M for 10 then rate=1M", "for: '10' needs a unit"),
        ("down:rate=1M for 2s then", "down: nothing after 'then'"),
        ("up:loss=1% for 2s then delay=5", "up: phase 2: delay: '5' needs a unit"),
        ("", "empty impairment spec"),
        (";", "empty impairment spec"),
    ],
)
def test_spec_errors_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ImpairmentSpecError) as error:
        parseImpairment(text)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- packet classes


def test_classify() -> None:
    rtp = bytes([0x80, 0x80 | 96, 0, 1]) + b"\0" * 4 + (0x1234ABCD).to_bytes(4, "big") + b"x"
    assert classify(rtp) == (0x1234ABCD, True)
    assert classify(bytes([0x80, 96]) + rtp[2:]) == (0x1234ABCD, False)
    assert classify(bytes([0x81, 200, 0, 6]) + b"\0" * 24) == (RTCP, False)
    assert classify(b"\x00\x01" + b"\0" * 18) == (STUN, False)
    assert classify(b"\x17\xfe\xfd" + b"\0" * 10) == (DTLS, False)


def test_rtcp_kind_reads_the_first_packet_of_srtcp() -> None:
    tag = b"\x80\0\0\x01" + b"\0" * 10  # SRTCP index, 80-bit auth tag
    rr = bytes([0x81, 201, 0, 7]) + b"\0" * 28  # one report block
    assert rtcpKind(rr + tag) == "201/1"
    feedback = bytes([0x8F, 205, 0, 4]) + b"\0" * 16
    assert rtcpKind(feedback + b"\0" * 20) == "205/15"  # an AEAD trailer
    assert rtcpKind(rr + b"\0" * 8 + tag) == "201/1+"  # more than a trailer follows
    assert rtcpKind(bytes([0x8F, 206, 0, 4]) + b"\0" * 30) == "206/15"
    assert rtcpKind(bytes([0x80, 96]) + b"\0" * 20) is None  # RTP
    assert rtcpKind(b"\x00\x01" + b"\0" * 18) is None


# ---------------------------------------------------------------- the link, on a fake clock


def run(
    link: Link,
    arrivals: list[tuple[float, int]],
    *,
    pollEvery: float = 0.001,
    until: float | None = None,
    tag: Any = None,
) -> list[tuple[int, float, float]]:
    """Offer packets (time, size) in order, polling on a fake clock; (index, arrival, due)."""
    delivered: list[tuple[int, float, float]] = []
    end = until if until is not None else (arrivals[-1][0] + 5 if arrivals else 5)
    arrivalOf = {}
    now = 0.0
    nextPacket = 0
    while now <= end:
        while nextPacket < len(arrivals) and arrivals[nextPacket][0] <= now:
            at, size = arrivals[nextPacket]
            arrivalOf[nextPacket] = at
            link.offer(at, nextPacket, size, tag)
            nextPacket += 1
        for index, due in link.poll(now):
            delivered.append((index, arrivalOf[index], due))
        now = round(now + pollEvery, 9)
    return delivered


def steady(rate: float, seconds: float, size: int = 1200) -> list[tuple[float, int]]:
    """Packets of ``size`` bytes offered at ``rate`` bit/s for ``seconds``."""
    interval = size * 8 / rate
    count = int(seconds / interval)
    return [(i * interval, size) for i in range(count)]


def linkOf(text: str, seed: int = 1) -> Link:
    return Link(parsePlan(text), seed=seed)


def test_clean_link_delivers_at_arrival() -> None:
    link = Link(seed=1)
    assert link.offer(0.5, "a", 100)
    assert link.poll(0.5) == [("a", 0.5)]
    assert link.nextEventTime() is None
    assert link.counters.packetsDelivered == 1 and link.counters.bytesDelivered == 100


def test_random_loss_rate_and_seed() -> None:
    arrivals = [(i * 0.001, 100) for i in range(20_000)]
    first = run(linkOf("loss=5%", seed=7), arrivals, until=21)
    assert len(first) / len(arrivals) == pytest.approx(0.95, abs=0.006)
    again = run(linkOf("loss=5%", seed=7), arrivals, until=21)
    assert [d[0] for d in again] == [d[0] for d in first]  # the same seed, the same losses
    other = run(linkOf("loss=5%", seed=8), arrivals, until=21)
    assert [d[0] for d in other] != [d[0] for d in first]


def test_burst_loss_mean_and_burst_length() -> None:
    link = linkOf("burst=2%,burstlen=4", seed=3)
    arrivals = [(i * 0.0005, 100) for i in range(40_000)]
    delivered = {d[0] for d in run(link, arrivals, until=21)}
    lost = [i for i in range(len(arrivals)) if i not in delivered]
    assert len(lost) / len(arrivals) == pytest.approx(0.02, abs=0.005)
    bursts, previous = [], -2
    for index in lost:
        if index == previous + 1:
            bursts[-1] += 1
        else:
            bursts.append(1)
        previous = index
    assert statistics.mean(bursts) == pytest.approx(4, rel=0.2)
    assert link.counters.dropped["burst"] == len(lost)


def test_delay_is_exact() -> None:
    link = linkOf("delay=40ms")
    delivered = run(link, [(0.0101, 500), (0.0203, 500)], pollEvery=0.007)
    assert [(i, round(due - at, 9)) for i, at, due in delivered] == [(0, 0.04), (1, 0.04)]


def test_jitter_keeps_order_by_default() -> None:
    link = linkOf("delay=40ms,jitter=10ms", seed=2)
    arrivals = [(i * 0.002, 200) for i in range(2000)]
    delivered = run(link, arrivals)
    assert [d[0] for d in delivered] == list(range(2000))
    delays = [due - at for _, at, due in delivered]
    assert min(delays) >= 0.030 - 1e-9
    assert max(delays) <= 0.050 + 0.002  # a packet may wait for the one before it
    assert statistics.pstdev(delays) > 0.003


def test_jitter_may_reorder_with_order_free() -> None:
    link = linkOf("delay=40ms,jitter=10ms,order=free", seed=2)
    delivered = run(link, [(i * 0.002, 200) for i in range(2000)])
    order = [d[0] for d in delivered]
    assert sorted(order) == list(range(2000)) and order != list(range(2000))
    assert all(0.030 - 1e-9 <= due - at <= 0.050 + 1e-9 for _, at, due in delivered)


def test_explicit_reordering() -> None:
    link = linkOf("reorder=5%,reorderdelay=10ms", seed=4)
    delivered = run(link, [(i * 0.001, 200) for i in range(4000)])
    order = [d[0] for d in delivered]
    held = [i for i, at, due in delivered if due - at > 0.005]
    assert len(held) / 4000 == pytest.approx(0.05, abs=0.012)
    # Each held packet comes after the ~10 that arrived in its 10 ms.
    position = {index: p for p, index in enumerate(order)}
    heldSet = set(held)
    for i in (i for i in held if i < 3990):
        # Every packet not held that arrived within the next 9 ms overtakes it.
        later = [j for j in range(i + 1, i + 10) if j not in heldSet]
        assert all(position[j] < position[i] for j in later), i
    others = [i for i in order if i not in heldSet]
    assert others == sorted(others)


def test_rate_cap_delivers_the_rate_and_tail_drops() -> None:
    link = linkOf("rate=600k,queue=100ms")
    arrivals = steady(1_200_000, 10)  # twice the cap
    delivered = run(link, arrivals, until=11)
    wire = 1200 + 28
    inWindow = [d for d in delivered if 2 <= d[2] < 10]
    assert len(inWindow) * wire * 8 / (10 - 2) == pytest.approx(600_000, rel=0.01)
    counters = link.counters
    assert counters.dropped["queue"] == pytest.approx(len(arrivals) / 2, rel=0.03)
    assert counters.queueDelayMax <= 0.100 + 1e-9
    assert counters.queueDelayMax > 0.09  # the queue filled up
    waits = [due - at for _, at, due in delivered]
    assert max(waits) <= 0.100 + 1e-9


def test_rate_cap_below_the_rate_adds_nothing() -> None:
    link = linkOf("rate=3M")
    delivered = run(link, steady(500_000, 3), until=4)
    assert len(delivered) == len(steady(500_000, 3))
    assert max(due - at for _, at, due in delivered) < 1e-9  # the bucket passes each one


def test_queue_in_bytes() -> None:
    link = linkOf("rate=100k,queue=6000B,bucket=1500B")
    for index in range(10):
        link.offer(0.0, index, 1200)
    # 1228 wire bytes each: the bucket passes one, the queue holds 4 (4912 <= 6000).
    assert link.counters.dropped["queue"] == 5
    assert [i for i, _ in link.poll(10)] == [0, 1, 2, 3, 4]


def test_departures_do_not_depend_on_when_poll_runs() -> None:
    arrivals = steady(1_000_000, 2)
    precise = run(linkOf("rate=500k,delay=20ms"), arrivals, pollEvery=0.0001)
    coarse = run(linkOf("rate=500k,delay=20ms"), arrivals, pollEvery=0.013)
    assert [(i, round(due, 9)) for i, _, due in precise] == [
        (i, round(due, 9)) for i, _, due in coarse
    ]


def test_next_event_time() -> None:
    link = linkOf("delay=30ms")
    link.offer(1.0, "a", 100)
    assert link.nextEventTime() == pytest.approx(1.03)
    assert link.poll(1.029) == []
    assert link.poll(1.03) == [("a", pytest.approx(1.03))]
    capped = linkOf("rate=80k,bucket=1500B,overhead=0B")
    capped.offer(0.0, "a", 1500)
    capped.offer(0.0, "b", 1000)
    assert [p for p, _ in capped.poll(0.0)] == ["a"]
    assert capped.nextEventTime() == pytest.approx(0.1)  # 1000 bytes at 10 kB/s
    timed = linkOf("for 2s then loss=1%")
    assert timed.nextEventTime() == pytest.approx(2.0)  # the phase change


def test_outage_drops_arrivals_and_packets_in_flight() -> None:
    arrivals = [(i * 0.01, 100) for i in range(600)]  # 6 s
    # A long delay puts packets in flight when the outage starts.
    link = Link(parsePlan("delay=200ms for 1s then outage for 3s then delay=200ms"), seed=1)
    delivered = run(link, arrivals, until=7)
    dues = [due for _, _, due in delivered]
    assert not [t for t in dues if 1.0 <= t < 4.0]
    assert min(t for t in dues if t >= 4.0) == pytest.approx(4.2)  # arrivals from 4 s on
    assert max(t for t in dues if t < 1.0) == pytest.approx(0.99)  # due before the outage
    assert link.counters.dropped["outage"] == 320  # 300 arrivals + 20 in flight at 1 s
    phases = [text for _, text in link.phaseLog]
    assert phases == ["delay=200ms", "outage,delay=200ms", "delay=200ms"]


def test_plan_changes_the_rate_mid_run() -> None:
    link = Link(parsePlan("rate=3M,queue=100ms for 10s then rate=600k"), seed=1)
    delivered = run(link, steady(1_500_000, 20), until=21, pollEvery=0.002)
    wire = (1200 + 28) * 8

    def rate(start: float, end: float) -> float:
        return sum(wire for d in delivered if start <= d[2] < end) / (end - start)

    assert rate(1, 10) == pytest.approx(1_500_000 * wire / (1200 * 8), rel=0.01)
    assert rate(11, 20) == pytest.approx(600_000, rel=0.01)
    assert link.phaseLog[1][0] == pytest.approx(10.0)


def test_rate_change_applies_to_the_queued_packets() -> None:
    link = linkOf("rate=100k,queue=1s,bucket=1250B,overhead=0B")
    for index in range(6):
        link.offer(0.0, index, 1250)  # 0.1 s each at 100 kbit/s
    assert [p for p, _ in link.poll(0.0)] == [0]
    link.configure(0.05, parsePlan("rate=1M,queue=1s,bucket=1250B,overhead=0B")[0].config)
    due = [d for _, d in link.poll(1.0)]
    # The head had 0.05 s of tokens at the old rate (625 bytes); 625 more at 1 Mbit/s.
    assert due[0] == pytest.approx(0.05 + 625 * 8 / 1e6)
    assert due[1] - due[0] == pytest.approx(1250 * 8 / 1e6)


def test_counters_per_tag_and_markers() -> None:
    link = linkOf("loss=50%", seed=5)
    for i in range(1000):
        link.offer(i * 0.001, i, 100, tag=1111 if i % 2 else "rtcp", marker=i % 4 == 1)
    link.poll(2)
    tags = link.counters.tags
    assert tags[1111].packetsIn == 500 and tags["rtcp"].packetsIn == 500
    for tag in tags.values():
        assert tag.packetsDropped + tag.packetsDelivered == tag.packetsIn
    assert 0 < tags[1111].markersDelivered < 250
    snapshot = link.snapshot(2)
    assert snapshot["tags"]["1111"]["packetsIn"] == 500
    assert snapshot["packetsDropped"] == snapshot["dropped"]["loss"]
    assert snapshot["packetsIn"] == snapshot["packetsDropped"] + snapshot["packetsDelivered"]


def test_a_packet_larger_than_the_bucket_still_leaves() -> None:
    link = linkOf("rate=100k,bucket=1000B,overhead=0B")
    link.offer(0.0, "big", 1400)
    assert [p for p, _ in link.poll(1.0)] == ["big"]


@pytest.mark.parametrize(
    "text",
    [
        "up:rate=3M,queue=100ms for 10s then rate=600k;down:burst=2%,burstlen=4",
        "down:for 5s then outage for 3s",
        "gilbert=1%:30%:80%:0.1%,jitter=5ms,order=free,reorder=1%",
    ],
)
def test_specs_cross_to_the_relay_process_unchanged(text: str) -> None:
    spec = parseImpairment(text)
    wire = json.loads(json.dumps(_specToJson(spec)))
    assert ImpairmentSpec(up=_planFromJson(wire["up"]), down=_planFromJson(wire["down"])) == spec
