"""When our SCTP associations acknowledge (RFC 4960 6.2) and how much they send per turn:
pure logic, driven by a fake clock."""

from __future__ import annotations

import pytest

from mediasoup_client.sctp_policies import (
    SACK_MAX_DELAY,
    SackPolicy,
    SendBudget,
)


def test_every_second_data_packet_is_acknowledged() -> None:
    policy = SackPolicy()
    decisions = []
    for index in range(6):
        send = policy.packetReceived(10.0 + index / 1000, data=True)
        decisions.append(send)
        if send:
            policy.sackSent()
    assert decisions == [False, True] * 3
    assert policy.sacksSent == 3 and policy.sacksDelayed == 3


def test_a_lone_packet_is_acknowledged_within_200_ms_of_its_arrival() -> None:
    policy = SackPolicy()
    assert policy.deadline is None
    assert policy.packetReceived(5.0, data=True) is False
    assert policy.deadline == pytest.approx(5.0 + SACK_MAX_DELAY)
    assert not policy.timerExpired(5.1)
    assert policy.timerExpired(5.2)
    policy.sackSent()
    assert policy.deadline is None and not policy.timerExpired(9.0)


def test_the_deadline_runs_from_the_first_unacknowledged_packet() -> None:
    policy = SackPolicy(everyPackets=4)
    assert policy.packetReceived(1.0, data=True) is False
    assert policy.packetReceived(1.15, data=True) is False
    assert policy.deadline == pytest.approx(1.2)
    assert policy.unackedPackets == 2
    assert policy.packetReceived(1.16, data=True) is False
    assert policy.packetReceived(1.17, data=True) is True


@pytest.mark.parametrize(
    "what",
    [{"gap": True}, {"duplicates": True}, {"forwardTsn": True}, {"established": False}],
)
def test_gaps_duplicates_forward_tsn_and_shutdown_are_acknowledged_at_once(
    what: dict[str, bool],
) -> None:
    policy = SackPolicy()
    assert policy.packetReceived(0.0, data=True, **what) is True


def test_a_gap_is_reported_on_every_packet_until_it_closes_and_when_it_closes() -> None:
    policy = SackPolicy()
    assert policy.packetReceived(0.0, data=True) is False  # in order: delayed
    policy.sackSent()
    assert policy.packetReceived(0.01, data=True, gap=True) is True
    policy.sackSent()
    assert policy.packetReceived(0.02, data=True, gap=True) is True
    policy.sackSent()
    # The retransmission that fills the gap: the sender wants to know at once.
    assert policy.packetReceived(0.03, data=True, gap=False) is True
    policy.sackSent()
    # Back to every second packet.
    assert policy.packetReceived(0.04, data=True) is False
    assert policy.packetReceived(0.05, data=True) is True


def test_packets_without_data_need_no_acknowledgement() -> None:
    policy = SackPolicy()
    assert policy.packetReceived(0.0, data=False) is False
    assert policy.deadline is None
    # A packet without data after a delayed one leaves the delay as it was.
    assert policy.packetReceived(0.1, data=True) is False
    assert policy.packetReceived(0.15, data=False) is False
    assert policy.deadline == pytest.approx(0.3)
    assert policy.unackedPackets == 1


def test_a_burst_read_in_one_go_is_acknowledged_four_packets_at_a_time() -> None:
    # usrsctp sends at most four packets beyond its flight per SACK: never acknowledge more.
    policy = SackPolicy()
    decisions = []
    for index in range(10):
        send = policy.packetReceived(1.0, data=True, moreWaiting=index < 9)
        decisions.append(send)
        if send:
            policy.sackSent()
    # Every fourth while more wait; at the burst's end the rule of two (packets 9 and 10).
    assert decisions == [False, False, False, True] * 2 + [False, True]
    assert policy.sacksSent == 3


def test_a_burst_ending_on_an_odd_packet_leaves_it_to_the_timer() -> None:
    policy = SackPolicy()
    for _ in range(4):
        if policy.packetReceived(1.0, data=True, moreWaiting=True):
            policy.sackSent()
    assert policy.packetReceived(1.001, data=True, moreWaiting=False) is False
    assert policy.unackedPackets == 1
    assert policy.deadline == pytest.approx(1.001 + SACK_MAX_DELAY)
    # A gap inside a burst is still reported at once.
    assert policy.packetReceived(1.002, data=True, gap=True, moreWaiting=True) is True


def test_every_packet_when_asked_to() -> None:
    policy = SackPolicy(everyPackets=1)
    assert policy.packetReceived(0.0, data=True) is True


def test_bad_settings_are_refused() -> None:
    with pytest.raises(TypeError):
        SackPolicy(everyPackets=0)
    with pytest.raises(TypeError):
        SackPolicy(maxDelay=-1)
    with pytest.raises(TypeError, match="burstPackets"):
        SackPolicy(everyPackets=4, burstPackets=3)
    with pytest.raises(TypeError):
        SendBudget(0)


def test_send_budget_per_turn() -> None:
    budget = SendBudget(10_000)
    assert budget.fresh and budget.remaining == 10_000
    budget.spend(4_000)
    assert not budget.fresh and budget.remaining == 6_000
    budget.spend(7_200)  # the last chunk may overshoot: nothing more this turn
    assert budget.remaining == 0 and budget.turnsExhausted == 1
    budget.spend(1_000)
    assert budget.turnsExhausted == 1  # counted once per turn
    budget.newTurn()
    assert budget.fresh and budget.remaining == 10_000
