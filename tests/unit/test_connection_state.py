"""Connection state: the pure table and liveness verdicts, then the real ICE/DTLS objects
against an in-process peer (connect, failure, the router closing, an outage and recovery)."""

from __future__ import annotations

import itertools

import pytest

from mediasoup_client.handlers.aiortc.connection import TransportConnection
from mediasoup_client.handlers.aiortc.connection_state import (
    ALLOWED,
    ConnectionStateMachine,
    Liveness,
    LivenessMonitor,
    LivenessPolicy,
    deriveConnectionState,
)
from tests.unit.ice_dtls_peer import RouterSide, StateLog, clientFor, loopbackOnly

__all__ = ["loopbackOnly"]  # the fixture, used by every test here

# The pure table.


def test_a_connection_walks_new_connecting_connected() -> None:
    machine = ConnectionStateMachine()
    assert machine.update(ice="checking") == ["connecting"]
    assert machine.update(ice="completed") == []
    assert machine.update(dtls="connecting") == []
    assert machine.update(dtls="connected") == ["connected"]
    assert machine.update(closed=True) == ["closed"]
    assert machine.update(dtls="connected") == []


def test_a_jump_goes_through_the_states_in_between() -> None:
    machine = ConnectionStateMachine()
    assert machine.update(ice="completed", dtls="connected") == ["connecting", "connected"]


def test_quiet_is_disconnected_and_coming_back_is_connected() -> None:
    machine = ConnectionStateMachine()
    machine.update(ice="completed", dtls="connected")
    assert machine.update(liveness=Liveness.QUIET) == ["disconnected"]
    assert machine.update(liveness=Liveness.ALIVE) == ["connected"]


def test_failed_is_final_and_reported_once() -> None:
    machine = ConnectionStateMachine()
    machine.update(ice="completed", dtls="connected")
    machine.update(liveness=Liveness.QUIET)
    # The ICE layer and the liveness verdict both give up: one 'failed', nothing after it.
    assert machine.update(ice="failed", liveness=Liveness.DEAD) == ["failed"]
    assert machine.update(liveness=Liveness.ALIVE, ice="completed") == []
    assert machine.update(dtls="closed") == []
    assert machine.state == "failed"
    assert machine.update(closed=True) == ["closed"]


def test_the_router_closing_dtls_is_failed_without_a_disconnected_first() -> None:
    machine = ConnectionStateMachine()
    machine.update(ice="completed", dtls="connected")
    assert machine.update(dtls="closed") == ["failed"]


def test_ice_failing_before_connecting_is_failed() -> None:
    machine = ConnectionStateMachine()
    machine.update(ice="checking")
    assert machine.update(ice="failed") == ["failed"]


@pytest.mark.parametrize("source", list(ALLOWED))
def test_every_derived_state_respects_the_table(source: str) -> None:
    # Whatever inputs arrive, a state only ever moves along the table.
    inputs = [
        {"ice": ice, "dtls": dtls, "liveness": liveness}
        for ice in ("new", "checking", "completed", "failed", "closed")
        for dtls in ("new", "connecting", "connected", "failed", "closed")
        for liveness in Liveness
    ]
    for values in inputs:
        machine = ConnectionStateMachine()
        machine.state = source  # type: ignore[assignment]
        walk = [machine.state, *machine.update(**values)]  # type: ignore[arg-type]
        for before, after in itertools.pairwise(walk):
            assert after in ALLOWED[before]  # type: ignore[index]


def test_derivation_ignores_liveness_until_dtls_is_up() -> None:
    assert (
        deriveConnectionState(
            ice="checking", dtls="connecting", liveness=Liveness.QUIET, closed=False,
            wasConnected=False,
        )
        == "connecting"
    )  # fmt: skip


def test_liveness_probes_when_quiet_and_judges_by_silence() -> None:
    policy = LivenessPolicy(probeAfter=1.0, probeInterval=0.5, disconnectedAfter=4, failedAfter=30)
    monitor = LivenessMonitor(0.0, policy)
    assert not monitor.shouldProbe(0.5)
    assert monitor.shouldProbe(1.0)
    assert not monitor.shouldProbe(1.2)  # one check per interval
    assert monitor.shouldProbe(1.5)
    monitor.heard(1.6)  # the check was answered
    assert not monitor.shouldProbe(2.0)
    assert monitor.verdict(5.5) is Liveness.ALIVE
    assert monitor.verdict(5.7) is Liveness.QUIET
    assert monitor.verdict(31.6) is Liveness.DEAD
    monitor.heard(40.0)
    assert monitor.verdict(40.1) is Liveness.ALIVE


# The real objects, in process.

FAST = LivenessPolicy(probeAfter=0.2, probeInterval=0.1, disconnectedAfter=0.6, failedAfter=2.0)


@pytest.fixture
async def router() -> RouterSide:
    side = RouterSide()
    await side.gather()
    yield side  # type: ignore[misc]
    await side.close()


async def connected(router: RouterSide) -> tuple[TransportConnection, StateLog]:
    """A client transport connected to ``router`` (FAST liveness), and the log of its states."""
    client = clientFor(router, policy=FAST)
    log = StateLog(client)
    await client.signal()
    await client.waitConnected()
    await log.waitFor("connected")
    return client, log


async def test_connects_over_ice_and_dtls(router: RouterSide) -> None:
    client, log = await connected(router)
    assert log.states == ["connecting", "connected"]
    await client.close()
    assert log.states == ["connecting", "connected", "closed"]


async def test_a_wrong_fingerprint_fails(router: RouterSide) -> None:
    client = clientFor(router, policy=FAST, wrongFingerprint=True)
    log = StateLog(client)
    await client.signal()
    with pytest.raises(ConnectionError):
        await client.waitConnected()
    await log.waitFor("failed")
    assert log.states == ["connecting", "failed"]
    await client.close()


async def test_the_router_closing_the_transport_fails_it_once(router: RouterSide) -> None:
    client, log = await connected(router)
    await router.closeDtls()
    await log.waitFor("failed")
    assert log.states == ["connecting", "connected", "failed"]
    await client.close()


async def test_an_outage_is_disconnected_then_connected_again(router: RouterSide) -> None:
    client, log = await connected(router)
    router.blackhole(True)
    await log.waitFor("disconnected", timeout=3)
    router.blackhole(False)  # consent checks are answered again
    await log.waitFor("connected", timeout=3, since=len(log.states))
    assert log.states == ["connecting", "connected", "disconnected", "connected"]
    await client.close()


async def test_a_long_outage_fails_for_good(router: RouterSide) -> None:
    client, log = await connected(router)
    router.blackhole(True)
    await log.waitFor("failed", timeout=5)
    router.blackhole(False)
    with pytest.raises(ConnectionError):
        await client.waitConnected()
    assert log.states == ["connecting", "connected", "disconnected", "failed"]
    assert not client.connected  # released: nothing is sent on a failed transport
    await client.close()
