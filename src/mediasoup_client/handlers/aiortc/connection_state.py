"""A transport's ``connectionState``, derived in one place from ICE, DTLS and liveness.

Pure: ``ConnectionStateMachine.update`` takes the newest ICE and DTLS states and the liveness
verdict and returns the state to report, following one table:

    new          -> connecting, failed, closed
    connecting   -> connected, failed, closed
    connected    -> disconnected, failed, closed
    disconnected -> connected, failed, closed
    failed       -> closed                      (final: recovery means a new transport)

``LivenessMonitor`` judges whether the router is still there from every datagram it sends us
and from consent checks (STUN binding requests on the selected pair) sent whenever it has
been quiet for a moment, so the verdict does not depend on how often the router happens to
send RTCP on this transport (every ~5 s on an audio-only send transport, almost never on an
idle data-only one).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ...types import ConnectionState

ALLOWED: dict[ConnectionState, frozenset[ConnectionState]] = {
    "new": frozenset({"connecting", "failed", "closed"}),
    "connecting": frozenset({"connected", "failed", "closed"}),
    "connected": frozenset({"disconnected", "failed", "closed"}),
    "disconnected": frozenset({"connected", "failed", "closed"}),
    "failed": frozenset({"closed"}),
    "closed": frozenset(),
}


class Liveness(Enum):
    ALIVE = "alive"
    QUIET = "quiet"  # nothing heard for a while: the network may be down
    DEAD = "dead"  # nothing heard for long enough to give up


def deriveConnectionState(
    *, ice: str, dtls: str, liveness: Liveness, closed: bool, wasConnected: bool
) -> ConnectionState:
    """The state the inputs describe (before the table's rules about where one may go)."""
    if closed:
        return "closed"
    if ice == "failed" or dtls == "failed" or liveness is Liveness.DEAD:
        return "failed"
    if dtls == "closed" or (ice == "closed" and wasConnected):
        # The router closed the transport (DTLS close_notify) or ICE gave up under us.
        return "failed"
    if dtls == "connected":
        return "disconnected" if liveness is Liveness.QUIET else "connected"
    if ice in ("checking", "connected", "completed") or dtls == "connecting":
        return "connecting"
    return "new"


class ConnectionStateMachine:
    def __init__(self) -> None:
        self.state: ConnectionState = "new"
        self._ice = "new"
        self._dtls = "new"
        self._liveness = Liveness.ALIVE
        self._closed = False
        self._was_connected = False

    def update(
        self,
        *,
        ice: str | None = None,
        dtls: str | None = None,
        liveness: Liveness | None = None,
        closed: bool = False,
    ) -> list[ConnectionState]:
        """Record new inputs; the states passed through to reach the state they describe
        (empty when nothing changed). A jump the table does not allow goes through the
        states in between (new -> connecting -> connected) or, if no path leads there, is
        refused: nothing leaves 'failed' but 'closed'."""
        if ice is not None:
            self._ice = ice
        if dtls is not None:
            self._dtls = dtls
        if liveness is not None:
            self._liveness = liveness
        self._closed = self._closed or closed
        target = deriveConnectionState(
            ice=self._ice,
            dtls=self._dtls,
            liveness=self._liveness,
            closed=self._closed,
            wasConnected=self._was_connected,
        )
        path = _path(self.state, target)
        for state in path:
            self.state = state
            if state == "connected":
                self._was_connected = True
        return path


def _path(source: ConnectionState, target: ConnectionState) -> list[ConnectionState]:
    """The shortest walk along the table from ``source`` to ``target`` (empty if none)."""
    if source == target:
        return []
    frontier: list[list[ConnectionState]] = [[source]]
    seen = {source}
    while frontier:
        walk = frontier.pop(0)
        for following in sorted(ALLOWED[walk[-1]]):
            if following == target:
                return [*walk[1:], following]
            if following not in seen:
                seen.add(following)
                frontier.append([*walk, following])
    return []


@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    probeAfter: float = 1.0  # quiet this long: send consent checks
    probeInterval: float = 0.5  # at most one check in flight, this often
    disconnectedAfter: float = 4.0
    failedAfter: float = 30.0


class LivenessMonitor:
    """Pure: activity and time in, a verdict and "probe now" out."""

    def __init__(self, now: float, policy: LivenessPolicy | None = None) -> None:
        self.policy = policy or LivenessPolicy()
        self._last_heard = now
        self._last_probe = float("-inf")

    @property
    def lastHeard(self) -> float:
        return self._last_heard

    def heard(self, now: float) -> None:
        """A datagram or a consent response arrived."""
        self._last_heard = max(self._last_heard, now)

    def shouldProbe(self, now: float) -> bool:
        quiet = now - self._last_heard >= self.policy.probeAfter
        if quiet and now - self._last_probe >= self.policy.probeInterval:
            self._last_probe = now
            return True
        return False

    def verdict(self, now: float) -> Liveness:
        silence = now - self._last_heard
        if silence >= self.policy.failedAfter:
            return Liveness.DEAD
        if silence >= self.policy.disconnectedAfter:
            return Liveness.QUIET
        return Liveness.ALIVE
