"""One transport's send-side bandwidth estimate, from every signal the router gives.

With transport-wide congestion control negotiated (``transport-cc``), every packet the
transport sends has a transport-wide sequence number (``allocateSequence`` at send time,
``onPacketSent`` once it left) and the router's feedback (``onTransportFeedback``) drives the
delay-based estimate, the acknowledged throughput, the loss-based estimate and the probe
results. Without it, the router's REMB is the estimate's ceiling (from its first value) and
the loss in receiver reports the only other input. A REMB that comes with transport-cc (a
router limiting its incoming bitrate) is a ceiling too.

Pure: times in seconds, rates in bits per second (what the link carries: RTP plus the IP,
UDP and SRTP overhead of each packet).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from .delay_based import BandwidthUsage, DelayBasedBwe
from .history import PACKET_OVERHEAD, TransportSendHistory
from .loss_based import LOW_LOSS, SendSideEstimate
from .probing import ProbeCluster, ProbeController, ProbeEstimator
from .throughput import ThroughputEstimator
from .transport_feedback import TransportFeedback

DEFAULT_START_BITRATE = 300_000
MIN_BITRATE = 30_000
MAX_BITRATE = 30_000_000
SEND_RATE_WINDOW = 1.0
ARRIVAL_WINDOW = 0.5


@dataclass(slots=True)
class CongestionOptions:
    startBitrate: int = DEFAULT_START_BITRATE
    minBitrate: int = MIN_BITRATE
    maxBitrate: int = MAX_BITRATE


class CongestionController:
    def __init__(self, options: CongestionOptions | None = None) -> None:
        options = options or CongestionOptions()
        self.options = options
        self.transportCc = False
        self.history = TransportSendHistory()
        self.throughput = ThroughputEstimator()
        self.delayBased = DelayBasedBwe(
            options.startBitrate, minBitrate=options.minBitrate, maxBitrate=options.maxBitrate
        )
        self.estimate = SendSideEstimate(
            options.startBitrate, minBitrate=options.minBitrate, maxBitrate=options.maxBitrate
        )
        self.probeController = ProbeController(options.startBitrate, maxBitrate=options.maxBitrate)
        self.probeController.enabled = False  # until transport-cc is on and padding possible
        self.probeEstimator = ProbeEstimator()
        self.rtt: float | None = None
        self._started = False
        self._first_send = 0.0
        self._sent: deque[tuple[float, int]] = deque()  # (send time, wire bytes), last window
        self._sent_bytes = 0
        self._arrived: deque[tuple[float, int]] = deque()  # (receive time, bytes), media
        self._arrived_bytes = 0
        self._probe_bytes: dict[int, int] = {}
        self._last_probe_result: tuple[float, float] | None = None
        self._shadow_until = 0.0
        self.probeResults = 0
        self.backoffs = 0

    # Configuration.

    def setTransportCc(self, enabled: bool) -> None:
        self.transportCc = enabled

    def setProbing(self, possible: bool) -> None:
        """Whether the pacer can make probe padding (an RTX stream to carry it)."""
        self.probeController.enabled = possible and self.transportCc

    def setStartBitrate(self, bitrate: int, now: float) -> None:
        """Before anything was sent: start from ``bitrate`` instead (videoGoogleStartBitrate)."""
        if self._started:
            return
        bitrate = max(self.options.minBitrate, min(self.options.maxBitrate, bitrate))
        self.options.startBitrate = bitrate
        self.delayBased.rateControl.bitrate = float(bitrate)
        self.estimate.bitrate = float(bitrate)
        self.probeController.setStartBitrate(bitrate)

    # Outputs.

    @property
    def targetBitrate(self) -> int:
        return int(self.estimate.bitrate)

    @property
    def usage(self) -> BandwidthUsage:
        return self.delayBased.usage

    @property
    def healthy(self) -> bool:
        return self.usage is not BandwidthUsage.OVERUSING and self.estimate.lossFraction <= LOW_LOSS

    # Inputs.

    def allocateSequence(self) -> int:
        return self.history.allocate()

    def onPacketSent(
        self, sequence: int | None, size: int, now: float, *, cluster: int | None = None,
        kind: str = "video",
    ) -> None:  # fmt: skip
        if not self._started:
            self._first_send = now
        self._started = True
        if cluster is not None:
            # The probe's bytes hold the bottleneck's queue this long after it.
            self._probe_bytes[cluster] = self._probe_bytes.get(cluster, 0) + size
            drain = self._probe_bytes[cluster] * 8 / max(1.0, self.estimate.bitrate)
            self._shadow_until = max(self._shadow_until, now + drain)
        shadowed = cluster is None and now < self._shadow_until
        if sequence is not None:
            self.history.onSent(sequence, size, now, cluster=cluster, kind=kind, shadowed=shadowed)
        if cluster is None:
            self._sent.append((now, size + PACKET_OVERHEAD))
            self._sent_bytes += size + PACKET_OVERHEAD
        while self._sent and now - self._sent[0][0] > SEND_RATE_WINDOW:
            self._sent_bytes -= self._sent.popleft()[1]

    @property
    def sendBitrate(self) -> float:
        """What left over the last second, probes aside (bps)."""
        return self._sent_bytes * 8 / SEND_RATE_WINDOW

    def onTransportFeedback(self, feedback: TransportFeedback, now: float) -> list[ProbeCluster]:
        report = self.history.onFeedback(feedback, now)
        if not report.results:
            return []
        for packet in report.sortedByReceiveTime():
            assert packet.receiveTime is not None
            self.throughput.add(packet.receiveTime, packet.size)
            if packet.cluster is None:
                self._arrived.append((packet.receiveTime, packet.size))
                self._arrived_bytes += packet.size
        while self._arrived and self._arrived[-1][0] - self._arrived[0][0] > ARRIVAL_WINDOW:
            self._arrived_bytes -= self._arrived.popleft()[1]
        acked = self.throughput.bitrate
        if acked is not None and len(self._arrived) > 1:
            # The smoothed estimate lags a jump of the send rate; on overuse the back-off
            # must start from what the link carries now.
            span = self._arrived[-1][0] - self._arrived[0][0]
            if span > ARRIVAL_WINDOW / 2:
                recent = (self._arrived_bytes - self._arrived[0][1]) * 8 / span
                acked = max(acked, recent)
        measured = self.probeEstimator.onResults(report.results)
        probe = measured
        if probe is not None and probe <= self.estimate.bitrate:
            probe = None  # probes are for finding more; decreases come from delay and loss
        send = self.sendBitrate if now - self._first_send >= SEND_RATE_WINDOW else None
        result = self.delayBased.onFeedback(report, acked, probe, sendBitrate=send)
        if result is None or not result.probe:
            probe = None  # overuse now: the probe's result does not count
        if measured is not None:
            self.probeController.onProbeResult(probe, now)
        if result is not None:
            if result.probe:
                self.probeResults += 1
                self._last_probe_result = (now, result.bitrate)
                self.estimate.setBitrate(result.bitrate, now)
                self.throughput.expectFastChange()
            self.estimate.onDelayBased(result.bitrate, now)
            if result.backedOff:
                self.backoffs += 1
                self._onBackoff(now)
        before = self.estimate.bitrate
        self.estimate.onLoss(report.lostCount, len(report.results), now)
        if self.estimate.bitrate < before * 0.99:
            # Loss backed the estimate off: a queue that is full already shows no delay
            # trend, so the delay-based rate may not have noticed. It starts again from here.
            control = self.delayBased.rateControl
            if control.bitrate > self.estimate.bitrate:
                control.setEstimate(self.estimate.bitrate, now)
            self._onBackoff(now)
        return self.probeController.onEstimate(self.estimate.bitrate, now, probeResult=probe)

    def provenBitrate(self, now: float, headroom: float, probeAge: float) -> float | None:
        """What the link has shown it carries: ``headroom`` x the acknowledged rate, or a
        probe's result younger than ``probeAge`` with no back-off since (a back-off says the
        link no longer carries it); None when there is nothing to go by (without transport
        feedback, or before the first)."""
        acked = self.throughput.bitrate
        if acked is None:
            return None
        proven = headroom * acked
        probe = self._last_probe_result
        if probe is not None and now - probe[0] <= probeAge:
            proven = max(proven, probe[1])
        return proven

    def _onBackoff(self, now: float) -> None:
        self._last_probe_result = None  # the link no longer carries what the probe found
        self.probeController.onBackoff(now)

    def onRemb(self, bitrate: int, now: float) -> None:
        self.estimate.onRemb(float(bitrate), now)

    def onReceiverReport(self, fractionLost: float, packets: int, now: float) -> None:
        """Loss from a receiver report block (used when there is no transport feedback)."""
        if self.transportCc:
            return
        self.estimate.onLoss(round(fractionLost * packets), packets, now)

    def onRtt(self, rtt: float) -> None:
        self.rtt = rtt
        self.delayBased.setRtt(rtt)
        self.estimate.onRtt(rtt)

    def setDemand(self, demand: int, now: float) -> list[ProbeCluster]:
        return self.probeController.onDemand(demand, now)

    def process(self, now: float) -> list[ProbeCluster]:
        return self.probeController.process(now, healthy=self.healthy)

    def onProbeCreated(self, cluster: ProbeCluster) -> None:
        self.probeEstimator.register(cluster)

    def onProbePacketSent(self, clusterId: int, sequence: int | None) -> None:
        self.probeEstimator.onSent(clusterId, sequence)

    def onProbeFinished(self, clusterId: int) -> None:
        self.probeEstimator.onFinished(clusterId)
        self._probe_bytes.pop(clusterId, None)

    def stats(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "mode": "transport-cc" if self.transportCc else "remb",
            "availableOutgoingBitrate": self.targetBitrate,
            "lossFraction": round(self.estimate.lossFraction, 4),
            "sendBitrate": int(self.sendBitrate),
            "probeClustersCreated": self.probeController.clustersCreated,
            "probeResults": self.probeResults,
        }
        if self.transportCc:
            entry["delayBasedBitrate"] = int(self.delayBased.bitrate)
            entry["delayUsage"] = self.usage.value
            entry["delayBackoffs"] = self.backoffs
            entry["transportFeedbackReceived"] = self.history.feedbackCount
            entry["transportPacketsReported"] = self.history.packetsReported
            entry["transportPacketsLost"] = self.history.packetsLost
            acked = self.throughput.bitrate
            if acked is not None:
                entry["acknowledgedBitrate"] = int(acked)
        if self.estimate.remb is not None:
            entry["rembBitrate"] = int(self.estimate.remb)
        if self.rtt is not None:
            entry["roundTripTime"] = self.rtt
        if self.probeEstimator.lastProbe:
            entry["lastProbe"] = dict(self.probeEstimator.lastProbe)
        return entry
