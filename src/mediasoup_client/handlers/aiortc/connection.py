"""One mediasoup WebRtcTransport on aiortc's ORTC objects: ICE (controlling, against
mediasoup's ICE-lite), DTLS with the server's fingerprints, SRTP, and SCTP when enabled.

Connection is lazy and in two steps: ``signal()`` gathers and hands our DTLS parameters to the
app's ``connect`` handler (awaited once); ICE and DTLS then run in the background and
``waitConnected()`` waits for them. It is also the ``RtpPort`` of every sender and receiver.

``connectionState`` comes from one place, ``ConnectionStateMachine`` (connection_state.py),
fed with the ICE and DTLS states and the liveness monitor's verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiortc import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
    RTCIceCandidate,
    RTCIceGatherer,
    RTCIceParameters,
    RTCIceServer,
    RTCIceTransport,
    RTCIceTransportPolicy,
    RTCSctpCapabilities,
    RTCSctpTransport,
)

from ...background import BackgroundWork
from ...enhanced_events import EnhancedEventEmitter
from ...types import (
    ConnectionState,
    DtlsParameters,
    IceCandidate,
    IceGatheringState,
    IceParameters,
    IceServer,
    SctpParameters,
    StatsReport,
)
from . import compat, compat_ice, remote_candidates, sctp_compat
from .connection_state import (
    ConnectionStateMachine,
    Liveness,
    LivenessMonitor,
    LivenessPolicy,
)
from .remote_candidates import Resolver, remoteCandidates
from .rtp_port import RawRtcpListener, RtcpListener, RtcpPacket, RtpListener, RtpRoute

logger = logging.getLogger(__name__)

NOMINATION_POLL_INTERVAL = 0.002
# No pair nominated by then: 'failed' (aioice alone gives up only when its last check has
# timed out, about a minute; browsers fail ICE after about 30 s).
ICE_CHECKS_TIMEOUT = 30.0


def toRTCIceServers(iceServers: list[IceServer] | None) -> list[RTCIceServer]:
    # Never aiortc's default (a public STUN server): only what the app configured.
    return [
        RTCIceServer(
            urls=server["urls"],
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in iceServers or []
    ]


class _RtcpRecipient:
    """What aiortc's RTCP router calls for our SSRCs."""

    def __init__(self, listener: RtcpListener) -> None:
        self._listener = listener

    async def _handle_rtcp_packet(self, packet: RtcpPacket) -> None:
        try:
            result = self._listener(packet)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("RTCP listener failed")


class TransportConnection(EnhancedEventEmitter):
    """Events: ``connectionstatechange`` (ConnectionState), ``icegatheringstatechange``."""

    def __init__(
        self,
        *,
        iceParameters: IceParameters,
        iceCandidates: list[IceCandidate],
        dtlsParameters: DtlsParameters,
        sctpParameters: SctpParameters | None,
        iceServers: list[IceServer] | None,
        iceTransportPolicy: str | None,
        onConnect: Callable[[DtlsParameters], Awaitable[None]],
        livenessPolicy: LivenessPolicy | None = None,
        iceChecksTimeout: float = ICE_CHECKS_TIMEOUT,
        resolver: Resolver | None = None,
    ) -> None:
        super().__init__()
        # Host-name candidates: the system's resolver unless a test gives its own.
        self._resolver = resolver or remote_candidates.systemResolver
        self._livenessPolicy = livenessPolicy or LivenessPolicy()
        self._iceChecksTimeout = iceChecksTimeout
        self._remoteIceParameters = iceParameters
        self._remoteCandidates = iceCandidates
        self._remoteDtlsParameters = dtlsParameters
        self._sctpParameters = sctpParameters
        self._onConnect = onConnect
        self._iceServers = list(iceServers or [])
        rtcIceServers = toRTCIceServers(iceServers)
        # Every TURN URL is ours to gather from (aioice would use the first and not say why
        # it failed): compat_ice.gatherRelayCandidates.
        self._turnServers = compat_ice.turnServersFrom(rtcIceServers)
        self._turnErrors: list[compat_ice.TurnGatheringError] = []
        self._gathered = False
        self._gatherer = RTCIceGatherer(
            iceServers=rtcIceServers,
            iceTransportPolicy=(
                RTCIceTransportPolicy.RELAY
                if iceTransportPolicy == "relay"
                else RTCIceTransportPolicy.ALL
            ),
        )
        compat.setIceControlling(self._gatherer, True)
        compat_ice.takeTurnServers(self._gatherer)
        self._ice = RTCIceTransport(self._gatherer)
        self._dtls = RTCDtlsTransport(self._ice, [RTCCertificate.generateCertificate()])
        compat.acceptLargeSrtp(self._dtls)  # mediasoup's RTCP for many streams is longer
        self._sctp = RTCSctpTransport(self._dtls) if sctpParameters is not None else None
        if self._sctp is not None:
            sctp_compat.tuneSctpTransport(self._sctp)
        self._machine = ConnectionStateMachine()
        self._iceGatheringState: IceGatheringState = "new"
        self._signalTask: asyncio.Task[None] | None = None
        self._transportTask: asyncio.Task[None] | None = None
        self._monitorTask: asyncio.Task[None] | None = None
        self._iceStartTask: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._finished = asyncio.Event()  # failed or closed: nothing will connect any more
        self._closed = False
        self._connectedAt: float | None = None
        self._probes = BackgroundWork("consent checks")
        self._arrivals: compat.ArrivalClock | None = None
        self._dtls.on("statechange", self._onDtlsStateChange)
        self._ice.on("statechange", self._onIceStateChange)

    # State.
    @property
    def connectionState(self) -> ConnectionState:
        return self._machine.state

    @property
    def iceGatheringState(self) -> IceGatheringState:
        return self._iceGatheringState

    @property
    def dtlsTransport(self) -> RTCDtlsTransport:
        return self._dtls

    @property
    def sctpTransport(self) -> RTCSctpTransport | None:
        return self._sctp

    @property
    def iceServers(self) -> list[IceServer]:
        return list(self._iceServers)

    def localIceParameters(self) -> RTCIceParameters:
        """Our ICE credentials (a full-ICE peer needs them; mediasoup, ICE-lite, does not)."""
        return self._gatherer.getLocalParameters()

    def localCandidates(self) -> list[RTCIceCandidate]:
        """Our gathered candidates (empty before ``signal()``)."""
        return self._gatherer.getLocalCandidates()

    # Connecting.
    async def signal(self) -> None:
        """Gather, then await the app's ``connect`` with our DTLS parameters (once; a failed
        signal is retried by the next call). ICE and DTLS then start in the background."""
        if self._closed:
            raise ConnectionError("transport closed")
        if self._signalTask is None:
            self._signalTask = asyncio.ensure_future(self._signal())
        try:
            await asyncio.shield(self._signalTask)
        except BaseException:
            if self._signalTask.done():
                self._signalTask = None
            raise

    async def _signal(self) -> None:
        self._setIceGatheringState("gathering")
        await self._gather()
        self._setIceGatheringState("complete")
        fingerprints = self._dtls.getLocalParameters().fingerprints
        # ICE-controlling with DTLS role "auto" makes aiortc the DTLS server.
        local: DtlsParameters = {
            "role": "server",
            "fingerprints": [{"algorithm": f.algorithm, "value": f.value} for f in fingerprints],
        }
        await self._onConnect(local)
        if self._closed:
            raise ConnectionError("transport closed")
        self._transportTask = asyncio.ensure_future(self._connectTransport())

    async def _gather(self) -> None:
        """Host (and STUN) candidates by aioice unless the policy is 'relay', a relay
        candidate from every TURN URL, then an active TCP candidate per host address (for the
        router's passive TCP candidates)."""
        self._gathered = True
        if compat_ice.relayOnly(self._gatherer):
            compat_ice.markGathered(self._gatherer)
        else:
            await self._gatherer.gather()
        self._turnErrors = await compat_ice.gatherRelayCandidates(self._gatherer, self._turnServers)
        for error in self._turnErrors:
            logger.warning("ICE: no relay candidate from %s", error)
        compat_ice.addTcpActiveCandidates(self._gatherer)
        # Arrival stamps first: the batched reads then hand every datagram they drain to the
        # stamping receiver, so each gets the kernel time of its own arrival (host UDP sockets;
        # relayed and TCP packets are stamped when aioice gets them).
        self._arrivals = compat.stampArrivals(self._ice)
        sctp_compat.tuneDatagramSockets(self._gatherer)

    async def _connectTransport(self) -> None:
        started = time.monotonic()
        self._update(ice="checking")
        try:
            candidates = await remoteCandidates(self._remoteCandidates, self._resolver)
            for candidate in candidates:
                await self._ice.addRemoteCandidate(candidate)
            await self._ice.addRemoteCandidate(None)
            remote = self._remoteIceParameters
            self._iceStartTask = asyncio.ensure_future(
                self._ice.start(
                    RTCIceParameters(
                        usernameFragment=remote["usernameFragment"],
                        password=remote["password"],
                        iceLite=remote.get("iceLite", True),
                    )
                )
            )
            # The TCP connections of pairs that lost to the selected one are closed.
            self._iceStartTask.add_done_callback(
                lambda _task: compat_ice.closeUnselectedTcpStreams(self._gatherer)
            )
            await self._waitNominated(self._iceStartTask, candidates)
            await self._dtls.start(
                RTCDtlsParameters(
                    fingerprints=[
                        RTCDtlsFingerprint(algorithm=f["algorithm"], value=f["value"])
                        for f in self._remoteDtlsParameters["fingerprints"]
                    ]
                )
            )
            if self._dtls.state != "connected":
                raise ConnectionError(f"DTLS {self._dtls.state}")
            compat.fastDtlsRecords(self._dtls)
            if self._sctp is not None and self._sctpParameters is not None:
                await self._sctp.start(
                    RTCSctpCapabilities(maxMessageSize=self._sctpParameters["maxMessageSize"]),
                    self._sctpParameters["port"],
                )
            self._connectedAt = time.monotonic()
            logger.debug("transport connected in %.1f ms", (self._connectedAt - started) * 1000)
        except Exception as error:
            if not self._closed:
                logger.warning("transport failed to connect: %s", error)
                self._update(failed=True)
            return
        self._update(dtls=self._dtls.state)
        self._monitorTask = asyncio.ensure_future(self._monitorLiveness())

    async def _waitNominated(
        self, iceStart: asyncio.Task[None], remote: list[RTCIceCandidate]
    ) -> None:
        """Return as soon as ICE has nominated a pair. aioice's ``connect()`` (behind
        ``RTCIceTransport.start()``) paces its checks and returns 20 ms after the nomination,
        while the router starts DTLS at once: waiting for it would delay the first packet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._iceChecksTimeout
        while not iceStart.done():
            if compat.nominatedAddresses(self._ice) is not None:
                return
            if loop.time() >= deadline:
                iceStart.cancel()
                raise ConnectionError(f"ICE: {self._iceFailure(remote, self._iceChecksTimeout)}")
            await asyncio.wait({iceStart}, timeout=NOMINATION_POLL_INTERVAL)
        iceStart.result()
        if self._ice.state != "completed":
            raise ConnectionError(f"ICE {self._ice.state}: {self._iceFailure(remote)}")

    def _iceFailure(self, remote: list[RTCIceCandidate], within: float | None = None) -> str:
        """Why no pair could be nominated, as far as we can tell."""
        reasons = [str(error) for error in self._turnErrors]
        if not self._gatherer.getLocalCandidates():
            relay = compat_ice.relayOnly(self._gatherer)
            policy = " with iceTransportPolicy 'relay'" if relay else ""
            reasons.insert(0, f"no local candidate{policy}")
        elif not remote:
            reasons.insert(0, "no usable candidate of the router")
        else:
            waited = f" within {within:g} s" if within is not None else ""
            reasons.insert(0, f"no candidate pair answered the connectivity checks{waited}")
        return "; ".join(reasons)

    async def _monitorLiveness(self) -> None:
        """Hear the router: every datagram it sends counts, and when it has been quiet for a
        moment, a consent check on the selected pair does too. Its verdict feeds the state:
        quiet for ``disconnectedAfter`` is 'disconnected', for ``failedAfter`` 'failed'."""
        monitor = LivenessMonitor(time.monotonic(), self._livenessPolicy)
        received, _sent = self._packetCounts()
        while not self._closed and self._machine.state in ("connected", "disconnected"):
            await asyncio.sleep(self._livenessPolicy.probeInterval)
            now = time.monotonic()
            nowReceived, _sent = self._packetCounts()
            if nowReceived != received:
                received = nowReceived
                monitor.heard(now)
            if monitor.shouldProbe(now) and not len(self._probes):
                self._probes.spawn(self._probe(monitor), "a consent check")
            self._update(liveness=monitor.verdict(now))
        if self._machine.state == "failed" and not self._closed:
            silence = time.monotonic() - monitor.lastHeard
            if monitor.verdict(time.monotonic()) is Liveness.DEAD:
                logger.warning("the router was silent for %.0f s: the transport failed", silence)
            else:
                # ICE or DTLS ended under us (the router closed, a TURN connection was lost).
                logger.warning(
                    "the transport failed: ICE %s, DTLS %s (selected pair: %s)",
                    self._ice.state,
                    self._dtls.state,
                    compat_ice.describePair(compat_ice.selectedPair(self._gatherer)),
                )
            await self._release()

    async def _probe(self, monitor: LivenessMonitor) -> None:
        if await compat.checkConsent(self._ice):
            monitor.heard(time.monotonic())

    def _packetCounts(self) -> tuple[int, int]:
        """Packets received and sent on the DTLS transport (media, RTCP and SCTP)."""
        entry = next(iter(compat.dtlsStats(self._dtls).values()))
        return entry.packetsReceived, entry.packetsSent

    async def restartIce(self, iceParameters: IceParameters) -> None:
        self._remoteIceParameters = iceParameters
        compat.restartIceCredentials(
            self._ice, iceParameters["usernameFragment"], iceParameters["password"]
        )

    def updateIceServers(self, iceServers: list[IceServer]) -> None:
        """Used by the next gathering. aiortc gathers once per transport (on first use), so
        servers given after that are only recorded (an ICE restart keeps the candidates)."""
        self._iceServers = list(iceServers)
        if not self._gathered:
            rtcIceServers = toRTCIceServers(iceServers)
            self._turnServers = compat_ice.turnServersFrom(rtcIceServers)
            compat.setIceServers(self._gatherer, rtcIceServers)
            compat_ice.takeTurnServers(self._gatherer)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._signalTask, self._transportTask, self._monitorTask, self._iceStartTask):
            if task is not None and not task.done():
                task.cancel()
        self._probes.cancel()
        self._update(closed=True)
        await self._release()

    async def _release(self) -> None:
        """Stop SCTP, DTLS and ICE (closing, or failed for good)."""
        with contextlib.suppress(Exception):
            if self._sctp is not None:
                await self._sctp.stop()
        with contextlib.suppress(Exception):
            await self._dtls.stop()
        with contextlib.suppress(Exception):
            await self._ice.stop()

    # RtpPort.
    @property
    def connected(self) -> bool:
        return compat.dtlsConnected(self._dtls)

    async def waitConnected(self) -> None:
        if self.connected:
            return
        if self._finished.is_set():
            raise ConnectionError(f"transport {self._machine.state}")
        connected = asyncio.ensure_future(self._connected.wait())
        finished = asyncio.ensure_future(self._finished.wait())
        try:
            await asyncio.wait({connected, finished}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            connected.cancel()
            finished.cancel()
        if not self.connected:
            raise ConnectionError(f"transport {self._machine.state}")

    def send(self, packet: bytes) -> None:
        compat.sendRtpNow(self._dtls, packet)

    def sendMany(self, packets: Sequence[bytes]) -> None:
        compat.sendRtpBatchNow(self._dtls, packets)

    async def sendRtp(self, packet: bytes) -> None:
        await compat.sendRtp(self._dtls, packet)

    async def sendRtcp(self, packet: bytes) -> None:
        await compat.sendRtp(self._dtls, packet)

    def listenRtcp(self, ssrcs: Sequence[int], listener: RtcpListener) -> Callable[[], None]:
        recipient = _RtcpRecipient(listener)
        compat.addRtcpRecipient(self._dtls, recipient, ssrcs)
        return lambda: compat.removeRtcpRecipient(self._dtls, recipient)

    def listenRtp(self, route: RtpRoute, listener: RtpListener) -> Callable[[], None]:
        return compat.addRtpListener(self._dtls, route, listener, self._arrivals)

    def listenRawRtcp(self, listener: RawRtcpListener) -> Callable[[], None]:
        return compat.tapRtcp(self._dtls, listener)

    # Stats.
    async def getStats(self) -> StatsReport:
        report: StatsReport = {}
        for stats in compat.dtlsStats(self._dtls).values():
            entry: dict[str, Any] = {k: v for k, v in vars(stats).items() if not k.startswith("_")}
            entry["timestamp"] = entry["timestamp"].timestamp() * 1000
            entry["dtlsState"] = self._dtls.state
            entry["iceState"] = self._ice.state
            entry["connectionState"] = self._machine.state
            report[entry["id"]] = entry
        pair = compat_ice.selectedPair(self._gatherer)
        if pair is not None:
            report["candidate-pair"] = {
                "id": "candidate-pair",
                "type": "candidate-pair",
                "timestamp": time.time() * 1000,
                "state": "succeeded",
                "nominated": True,
                **pair,
            }
        return report

    # Internals.
    def _onDtlsStateChange(self) -> None:
        if self._dtls.state == "connected":
            self._connected.set()
        # "connected" itself is reported once SCTP is up too (_connectTransport).
        if self._dtls.state != "connected":
            self._update(dtls=self._dtls.state)

    def _onIceStateChange(self) -> None:
        self._update(ice=self._ice.state)

    def _update(
        self,
        *,
        ice: str | None = None,
        dtls: str | None = None,
        liveness: Any = None,
        closed: bool = False,
        failed: bool = False,
    ) -> None:
        if failed:
            ice = "failed"
        for state in self._machine.update(ice=ice, dtls=dtls, liveness=liveness, closed=closed):
            if state in ("failed", "closed"):
                self._finished.set()
            self.emit("connectionstatechange", state)

    def _setIceGatheringState(self, state: IceGatheringState) -> None:
        if state != self._iceGatheringState:
            self._iceGatheringState = state
            self.emit("icegatheringstatechange", state)
