"""What one transport's send path decides for all its producers, pure: the congestion
controller (transport-wide feedback, REMB, receiver reports), the pacer every packet goes
through, the allocation of the estimate across producers and layers, and the retransmission
budget. The scheduler (``scheduler.py``) feeds it the time, the packets and the RTCP, and sends
what the pacer releases.

- Pacing rate: ``PACING_FACTOR`` x the estimate. libwebrtc paces at 2.5x; here the factor is
  lower because the link's queue may be shallow (a key frame sent at 2.5x a 600 kbit/s link
  overflows a 100 ms queue, and whatever shares that queue — audio — loses with it).
- Allocation: the estimate, minus what retransmissions currently take (at most
  ``RTX_RESERVE_SHARE``), is split by ``bitrate.allocateTransport``: audio first, then video
  layers lowest first across producers.
- When the pacer holds more than ``CONGESTED_QUEUE`` worth of packets, the encoders are over
  budget: they are told so, and come down even by a little.
- Layers suspended for bandwidth come back only within what the link has shown it carries:
  ``PROVEN_HEADROOM`` x the acknowledged rate, or a probe's result the estimate has not backed
  off from since (for ``PROBE_PROOF_AGE``). An estimate that
  only grew while the sender was application-limited is not proof (measured: resuming on it
  sent a layer's key frame into a full link, and the layer went again a second later).
"""

from __future__ import annotations

from typing import Any

from ....types import StatsReport
from . import rtcp
from .bitrate import allocateTransport
from .cc.controller import CongestionController, CongestionOptions
from .cc.probing import ProbeCluster
from .cc.transport_feedback import TransportFeedback
from .pacer import Pacer, Priority, Queued
from .producer_sender import ProducerSender
from .retransmission import SHARE, RetransmissionBudget
from .rtp_stream import OutgoingRtp

PACING_FACTOR = 1.2
CONGESTED_PACING_FACTOR = 1.0  # while overusing or losing: no headroom above the estimate
# Video older than this in the pacer is dropped (and its layer asked for a key frame). Not
# sooner while congested: each drop costs a key frame, and dropping at 0.4 s fed a loop of key
# frames that refilled the queue (measured: 6 key frames a layer in 2.5 s after a cap drop).
STALE_VIDEO_WAIT = 1.0
CONGESTED_QUEUE = 0.15
RTX_RESERVE_SHARE = 0.25
CONGESTED_RTX_SHARE = 0.1  # of the estimate for resends while the link is congested
RTT_SMOOTHING = 0.25
PROVEN_HEADROOM = 1.15
# Seconds a probe's result counts as proof (unless the estimate backed off since). A resumed
# layer starts low and takes its rises later, each ``REBUILD_INTERVAL`` apart, within proof;
# at 5 s a 720p top layer resumed at 750 kbps on a 3.6 Mbps link stayed there at 4-9 fps:
# the proof expired before its first rise was due, and no probe comes while the estimate
# already covers the demand, while its own traffic proves at most 1.15 x what it sends.
PROBE_PROOF_AGE = 30.0


def _payloadSize(packet: OutgoingRtp) -> int:
    return len(packet.payload) + packet.padding


def _ssrc(packet: OutgoingRtp) -> int:
    return packet.ssrc


class TransportSendCore:
    def __init__(
        self, options: CongestionOptions | None = None, *, pacingFactor: float = PACING_FACTOR
    ) -> None:
        self.congestion = CongestionController(options)
        self.pacingFactor = pacingFactor
        self.pacer: Pacer[OutgoingRtp] = Pacer(
            _payloadSize,
            pacingRate=pacingFactor * self.congestion.targetBitrate,
            streamOf=_ssrc,
        )
        self.retransmissions = RetransmissionBudget(self.congestion.targetBitrate)
        self._senders: list[ProducerSender] = []
        self._videoCount = 0
        self._budgets: dict[ProducerSender, int] = {}
        self._highest: dict[int, int] = {}  # extended highest sequence per reported SSRC
        self.rtt: float | None = None
        self.demand = 0
        self._reallocating = False
        # Wire bytes that left, by kind.
        self.bytesSent: dict[str, int] = {"audio": 0, "video": 0, "rtx": 0, "padding": 0}

    # Producers.

    def addSender(self, sender: ProducerSender, now: float) -> None:
        sender.retransmissionBudget = self.retransmissions
        sender.setAllocator(self.reallocate)
        self._senders.append(sender)
        self._videoCount += sender.kind == "video"
        congestion = self.congestion
        congestion.setTransportCc(any(s.writesTransportSequence for s in self._senders))
        congestion.setProbing(
            any(s.kind == "video" and any(st.rtx for st in s.streams) for s in self._senders)
        )
        start = sender.config.budget.startBitrate if sender.kind == "video" else None
        if start:
            congestion.setStartBitrate(start, now)
            self._applyEstimate(now)
        self.reallocate(now)

    def removeSender(self, sender: ProducerSender, now: float) -> None:
        if sender in self._senders:
            self._senders.remove(sender)
            self._videoCount -= sender.kind == "video"
        self._budgets.pop(sender, None)
        sender.setAllocator(None)
        streams = set(map(id, sender.streams))
        self.pacer.drop(lambda packet: id(packet.stream) not in streams)
        self.reallocate(now)

    @property
    def _hasVideo(self) -> bool:
        return self._videoCount > 0

    # Packets.

    def enqueue(self, packets: list[OutgoingRtp], now: float) -> None:
        pacer = self.pacer
        for packet in packets:
            if packet.retransmission:
                priority = Priority.PADDING if packet.padding else Priority.RETRANSMISSION
            elif packet.stream.kind == "audio":
                priority = Priority.AUDIO
            else:
                priority = Priority.VIDEO
            pacer.enqueue(packet, priority, now)

    def padding(self, size: int) -> list[OutgoingRtp]:
        for sender in self._senders:
            if sender.kind == "video" and sender.canPad:
                packets: list[OutgoingRtp] = sender.paddingPackets(size)
                return packets
        return []

    def onSent(
        self, send: Queued[OutgoingRtp], sequence: int | None, data: bytes, wallTime: float,
        now: float,
    ) -> None:  # fmt: skip
        packet = send.packet
        packet.stream.onSent(packet, len(data) - _payloadSize(packet), wallTime, now)
        kind = packet.kind
        self.congestion.onPacketSent(sequence, len(data), now, cluster=send.cluster, kind=kind)
        if send.cluster is not None:
            self.congestion.onProbePacketSent(send.cluster, sequence)
        self.bytesSent[kind] = self.bytesSent.get(kind, 0) + len(data) + 38

    # RTCP.

    def beforeSending(self, now: float) -> None:
        """Before the pacer releases packets: while the link is congested, no headroom and
        no faster drain of an old queue; stale video is dropped (its layer is asked for a
        key frame, so the receiver recovers without NACKs for packets that never left)."""
        healthy = self.congestion.healthy
        if healthy != self.pacer.drainFaster:
            self.pacer.drainFaster = healthy
            self._applyPacing(now)
        stale = self.pacer.dropStale(now, STALE_VIDEO_WAIT)
        if not stale:
            return
        layers: set[int] = set()
        for packet in stale:
            packet.stream.forget(packet)
            layers.add(packet.stream.ssrc)
        for sender in self._senders:
            for ssrc in layers & {s.ssrc for s in sender.streams}:
                sender.pipeline.requestKeyFrame(ssrc, now)

    def afterSending(self) -> None:
        """Once the pacer's packets of this round left: tell the estimator which probe
        clusters are complete."""
        for cluster in self.pacer.takeFinishedProbes():
            self.congestion.onProbeFinished(cluster)

    def onTransportFeedback(self, feedback: TransportFeedback, now: float) -> None:
        self._startProbes(self.congestion.onTransportFeedback(feedback, now))
        self._applyEstimate(now)

    def onRemb(self, bitrate: int, now: float) -> None:
        self.congestion.onRemb(bitrate, now)
        self._applyEstimate(now)

    def onReportBlocks(self, sender: ProducerSender, packet: Any, ntp: int, now: float) -> bool:
        """Receiver reports about ``sender``'s streams: the round trip and, without
        transport feedback, the loss. True when the estimate may have changed."""
        blocks = rtcp.reportBlocks(packet, {s.ssrc for s in sender.streams}, ntp)
        for block in blocks:
            if block.roundTripTime is not None:
                rtt = block.roundTripTime
                self.rtt = rtt if self.rtt is None else self.rtt + RTT_SMOOTHING * (rtt - self.rtt)
                self.congestion.onRtt(self.rtt)
                self.retransmissions.rtt = self.rtt
            previous = self._highest.get(block.ssrc)
            self._highest[block.ssrc] = block.highestSequence
            if previous is not None and block.highestSequence > previous:
                self.congestion.onReceiverReport(
                    block.fractionLost, block.highestSequence - previous, now
                )
        if blocks:
            self._applyEstimate(now)
        return bool(blocks)

    # Time.

    def process(self, now: float) -> bool:
        """Periodic work (every RTCP tick): probing and a fresh allocation. True when the
        pacer has new work."""
        probes = self.congestion.process(now)
        self._startProbes(probes)
        self.reallocate(now)
        return bool(probes)

    # Allocation.

    def reallocate(self, now: float) -> None:
        if self._reallocating:
            return
        self._reallocating = True
        try:
            self._reallocate(now)
        finally:
            self._reallocating = False

    def _reallocate(self, now: float) -> None:
        demands = [sender.demand(now) for sender in self._senders]
        total = sum(d.demand for d in demands)
        if total != self.demand:
            self.demand = total
            self._startProbes(self.congestion.setDemand(total, now))
        if not self._hasVideo:
            return  # budgets are for video; audio's bitrate is its codec options'
        target = self.congestion.targetBitrate
        reserve = min(RTX_RESERVE_SHARE * target, self.retransmissions.rate(now))
        budgets = allocateTransport(int(target - reserve), demands)
        proven_target = self.congestion.provenBitrate(now, PROVEN_HEADROOM, PROBE_PROOF_AGE)
        proven = (
            allocateTransport(int(min(target, proven_target) - reserve), demands)
            if proven_target is not None
            else budgets
        )
        congested = self.pacer.expectedQueueTime() > CONGESTED_QUEUE
        for sender in self._senders:
            if sender.kind != "video":
                continue
            budget = budgets.get(sender)
            self._budgets[sender] = budget or 0
            sender.setBitrateBudget(
                budget, now, congested=congested, resumeBudget=proven.get(sender)
            )

    # Stats.

    def stats(self, now: float, wallTime: float) -> StatsReport:
        timestamp = wallTime * 1000
        entry = self._congestionStats(now, timestamp)
        return {
            "candidate-pair": {
                "id": "candidate-pair",
                "type": "candidate-pair",
                "timestamp": timestamp,
                "availableOutgoingBitrate": entry["availableOutgoingBitrate"],
            },
            entry["id"]: entry,
        }

    def producerStats(self, now: float, wallTime: float) -> StatsReport:
        entry = self._congestionStats(now, wallTime * 1000)
        return {entry["id"]: entry}

    def _congestionStats(self, now: float, timestamp: float) -> dict[str, Any]:
        pacer = self.pacer
        oldest = pacer.oldestEnqueueTime()
        entry: dict[str, Any] = {
            "id": "CC",
            "type": "congestion-control",
            "timestamp": timestamp,
            **self.congestion.stats(),
            "allocatedBitrate": sum(self._budgets.values()),
            "demandBitrate": self.demand,
            "pacingRate": int(pacer.pacingRate),
            "pacerQueuePackets": pacer.queuedPackets,
            "pacerQueue": pacer.queuedByPriority(),
            "pacerQueueBytes": max(0, pacer.queuedBytes),
            "pacerQueueDelay": 0.0 if oldest is None else max(0.0, now - oldest),
            "pacerPacketsSent": pacer.packetsSent,
            "pacerPacketsDropped": pacer.packetsDropped,
            "retransmissionBitrate": int(self.retransmissions.rate(now)),
            "nacksRefusedTooOld": self.retransmissions.refusedTooOld,
            "nacksRefusedTooRecent": self.retransmissions.refusedTooRecent,
            "nacksRefusedBudget": self.retransmissions.refusedBudget,
            "retransmissionHistory": self.retransmissions.historyAge,
            "mediaBytesSent": self.bytesSent["audio"] + self.bytesSent["video"],
            "retransmittedBytesSent": self.bytesSent["rtx"],
            "paddingBytesSent": self.bytesSent["padding"],
        }
        return entry

    # Internals.

    def _startProbes(self, probes: list[ProbeCluster]) -> None:
        for cluster in probes:
            self.congestion.onProbeCreated(cluster)
            self.pacer.addProbe(cluster)

    def _applyEstimate(self, now: float) -> None:
        self._applyPacing(now)
        if self._hasVideo:
            # (Without video the estimate changes no budget; ``process`` still follows the
            # demand every tick. On every feedback it cost a pass over every producer.)
            self.reallocate(now)

    def _applyPacing(self, now: float) -> None:
        target = self.congestion.targetBitrate
        healthy = self.pacer.drainFaster
        factor = self.pacingFactor if healthy else CONGESTED_PACING_FACTOR
        self.pacer.setPacingRate(factor * target, now)
        self.retransmissions.estimate = target
        self.retransmissions.share = SHARE if healthy else CONGESTED_RTX_SHARE
