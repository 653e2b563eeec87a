"""Per-second figures of a run: what the router received per producer and per layer (its
``getProducerStats``) beside what the local encoders did (``producer.getStats()``), what each
consumer received; a summary over the run, and a chart.

Everything is plain JSON-compatible dicts, so the live view, ``--json`` and the summary share it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..consumer import Consumer
from ..producer import Producer
from ..signaling.room_client import RoomClient
from ..types import RtpEncodingParameters, RtpParameters

logger = logging.getLogger(__name__)

# A slow stats answer must not freeze the live view.
STATS_TIMEOUT = 2.0

_ROUTER_FIELDS = (
    "bitrate",
    "packetCount",
    "byteCount",
    "score",
    "packetsLost",
    "fractionLost",
    "nackCount",
    "pliCount",
    "firCount",
    "jitter",
)
_CONGESTION_FIELDS = (
    "mode",
    "availableOutgoingBitrate",
    "pacingRate",
    "pacerQueueBytes",
    "pacerQueueDelay",
    "retransmissionBitrate",
    "retransmittedBytesSent",
    "lossFraction",
    "roundTripTime",
)
_LOCAL_VIDEO_FIELDS = (
    "framesEncoded",
    "keyFramesEncoded",
    "frameWidth",
    "frameHeight",
    "framesPerSecond",
    "targetBitrate",
    "qualityLimitationReason",
    "framesSent",
    "encoderImplementation",  # "passthrough" for a pre-encoded source
)


class Sampler:
    """Takes the per-second samples; remembers byte counters to turn them into bitrates."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # (object id, layer index) -> (monotonic time, byte counter).
        self._counters: dict[tuple[str, int], tuple[float, int]] = {}

    async def producer(self, client: RoomClient, producer: Producer) -> dict[str, Any]:
        """One producer's figures now: ``{"id", "kind", "codec", "paused", "maxSpatialLayer",
        "score", "layers": [{"index", "rid", "ssrc", "router": {...}, "local": {...}}]}``."""
        router, local = await asyncio.gather(
            _quietly(client.routerStats(producer), []),
            _quietly(producer.getStats(), {}),
        )
        routerBy = {_streamKey(e): e for e in router if e.get("type") != "codec"}
        localBy = {
            _streamKey(e): e
            for e in local.values()
            if isinstance(e, dict) and e.get("type") == "outbound-rtp"
        }
        layers = []
        encodings: list[RtpEncodingParameters] = producer.rtpParameters.get("encodings") or [{}]
        for index, encoding in enumerate(encodings):
            rid, ssrc = encoding.get("rid"), encoding.get("ssrc")
            routerEntry = _find(routerBy, rid, ssrc)
            localFigures = _localFigures(_find(localBy, rid, ssrc), producer.kind)
            bitrate = self._rate((producer.id, index), localFigures.get("bytesSent"))
            if bitrate is not None:
                localFigures["bitrate"] = bitrate
            layers.append(
                {
                    "index": index,
                    "rid": rid,
                    "ssrc": ssrc,
                    "router": {k: routerEntry[k] for k in _ROUTER_FIELDS if k in routerEntry},
                    "local": localFigures,
                }
            )
        figures: dict[str, Any] = {
            "id": producer.id,
            "kind": producer.kind,
            "codec": _codecOf(producer.rtpParameters),
            "paused": producer.paused,
            "maxSpatialLayer": producer.maxSpatialLayer,
            "score": client.producerScores.get(producer.id),
            "layers": layers,
        }
        # The send transport's estimate and pacer (the same for every producer on it).
        congestion = next(
            (
                e
                for e in local.values()
                if isinstance(e, dict) and e.get("type") == "congestion-control"
            ),
            None,
        )
        if congestion is not None:
            figures["congestion"] = {
                k: congestion[k] for k in _CONGESTION_FIELDS if k in congestion
            }
        return figures

    async def consumer(
        self, client: RoomClient, consumer: Consumer, frames: dict[str, Any] | None
    ) -> dict[str, Any]:
        """One consumer's figures: what the router forwards to it, what arrived here
        (``inbound-rtp``) and what was decoded (``frames``: the frame reader's counters)."""
        router, local = await asyncio.gather(
            _quietly(client.consumerRouterStats(consumer), []),
            _quietly(consumer.getStats(), {}),
        )
        outbound: dict[str, Any] = next((e for e in router if e.get("type") == "outbound-rtp"), {})
        inbound: dict[str, Any] = next(
            (e for e in local.values() if isinstance(e, dict) and e.get("type") == "inbound-rtp"),
            {},
        )
        localFigures: dict[str, Any] = {
            k: inbound[k]
            for k in ("packetsReceived", "bytesReceived", "packetsLost", "framesDecoded", "jitter")
            if k in inbound
        }
        bitrate = self._rate((consumer.id, 0), localFigures.get("bytesReceived"))
        if bitrate is not None:
            localFigures["bitrate"] = bitrate
        return {
            "id": consumer.id,
            "producerId": consumer.producerId,
            "kind": consumer.kind,
            "codec": _codecOf(consumer.rtpParameters),
            "router": {k: outbound[k] for k in _ROUTER_FIELDS if k in outbound},
            "score": client.consumerScores.get(consumer.id),
            "layers": client.consumerLayers.get(consumer.id),
            "local": localFigures,
            "frames": dict(frames or {}),
        }

    def _rate(self, key: tuple[str, int], counter: Any) -> int | None:
        """Bits per second since the last sample of the same byte counter."""
        if not isinstance(counter, int):
            return None
        now = self._clock()
        last = self._counters.get(key)
        self._counters[key] = (now, counter)
        if last is None or now <= last[0]:
            return None
        return int(max(0, counter - last[1]) * 8 / (now - last[0]))


@dataclass
class LayerTotals:
    rid: str | None
    ssrc: int | None
    samples: int = 0
    receiving: int = 0  # samples where the router measured a non-zero bitrate
    bitrateSum: float = 0.0
    bitrateMax: int = 0
    packetCount: int = 0
    byteCount: int = 0
    packetsLost: int = 0
    score: int | None = None
    framesEncoded: int | None = None
    frameWidth: int | None = None
    frameHeight: int | None = None

    def add(self, layer: dict[str, Any], *, rate: bool = True) -> None:
        """``rate``: count this sample's bitrate in the mean (not the one taken at start)."""
        router, local = layer["router"], layer["local"]
        bitrate = int(router.get("bitrate") or 0)
        if rate:
            self.samples += 1
            self.bitrateSum += bitrate
        self.bitrateMax = max(self.bitrateMax, bitrate)
        if bitrate > 0:
            self.receiving += 1
        # Counters only grow; keep the largest seen (a layer may vanish from later stats).
        self.packetCount = max(self.packetCount, int(router.get("packetCount") or 0))
        self.byteCount = max(self.byteCount, int(router.get("byteCount") or 0))
        self.packetsLost = max(self.packetsLost, int(router.get("packetsLost") or 0))
        if router.get("score") is not None:
            self.score = int(router["score"])
        if local.get("framesEncoded") is not None:
            self.framesEncoded = int(local["framesEncoded"])
        if local.get("frameWidth"):
            self.frameWidth, self.frameHeight = local["frameWidth"], local.get("frameHeight")

    def asDict(self) -> dict[str, Any]:
        return {
            "rid": self.rid,
            "ssrc": self.ssrc,
            "meanBitrate": int(self.bitrateSum / self.samples) if self.samples else 0,
            "maxBitrate": self.bitrateMax,
            "secondsReceiving": self.receiving,
            "packetCount": self.packetCount,
            "byteCount": self.byteCount,
            "packetsLost": self.packetsLost,
            "score": self.score,
            "framesEncoded": self.framesEncoded,
            "frameWidth": self.frameWidth,
            "frameHeight": self.frameHeight,
        }


@dataclass
class RunRecord:
    """Every sample of a run: the summary and the chart come from it."""

    started: float = field(default_factory=time.monotonic)
    # producer id -> kind, layer totals by index.
    kinds: dict[str, str] = field(default_factory=dict)
    totals: dict[str, dict[int, LayerTotals]] = field(default_factory=dict)
    # (producer id, layer index) -> [(seconds since start, router bitrate)].
    series: dict[tuple[str, int], list[tuple[float, int]]] = field(default_factory=dict)
    consumers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def add(self, tick: dict[str, Any]) -> None:
        t = float(tick["time"])
        for producer in tick.get("producers", []):
            self.kinds[producer["id"]] = producer["kind"]
            totals = self.totals.setdefault(producer["id"], {})
            for layer in producer["layers"]:
                index = layer["index"]
                entry = totals.setdefault(index, LayerTotals(layer["rid"], layer["ssrc"]))
                # The tick taken as the run starts has no rate yet: keep it out of the mean.
                entry.add(layer, rate=t >= 0.5)
                bitrate = int(layer["router"].get("bitrate") or 0)
                self.series.setdefault((producer["id"], index), []).append((t, bitrate))
        for consumer in tick.get("consumers", []):
            self.consumers[consumer["id"]] = consumer

    def summary(self) -> dict[str, Any]:
        return {
            "type": "summary",
            "seconds": round(self.elapsed(), 1),
            "producers": [
                {
                    "id": producerId,
                    "kind": self.kinds.get(producerId),
                    "layers": [totals[i].asDict() for i in sorted(totals)],
                }
                for producerId, totals in self.totals.items()
            ],
            "consumers": [
                {
                    "id": c["id"],
                    "kind": c["kind"],
                    "producerId": c["producerId"],
                    "frames": c.get("frames", {}),
                    "router": c.get("router", {}),
                }
                for c in self.consumers.values()
            ],
        }


def writePlot(record: RunRecord, path: str) -> None:
    """A chart of the router's received bitrate per producer layer over the run."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 5))
    try:
        for (producerId, index), points in sorted(record.series.items()):
            if not points:
                continue
            kind = record.kinds.get(producerId, "?")
            rid = record.totals[producerId][index].rid
            label = f"{kind} {producerId[:8]}" + (f" layer {index} ({rid})" if rid else "")
            axes.plot([p[0] for p in points], [p[1] / 1000 for p in points], label=label)
        axes.set_xlabel("seconds")
        axes.set_ylabel("kbit/s received by the router")
        axes.set_title("mediasoup-client produce: router bitrate per layer")
        axes.grid(True, alpha=0.3)
        if record.series:
            axes.legend(loc="upper left", fontsize="small")
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)


def _streamKey(entry: dict[str, Any]) -> tuple[str | None, int | None]:
    return (entry.get("rid"), entry.get("ssrc"))


def _find(
    entries: dict[tuple[str | None, int | None], dict[str, Any]], rid: str | None, ssrc: int | None
) -> dict[str, Any]:
    """The stats entry of one encoding: by rid when it has one (the router may know a
    simulcast stream by rid only), else by ssrc."""
    for (entryRid, _entrySsrc), entry in entries.items():
        if rid is not None and entryRid == rid:
            return entry
    for (_entryRid, entrySsrc), entry in entries.items():
        if ssrc is not None and entrySsrc == ssrc:
            return entry
    if len(entries) == 1 and rid is None:
        return next(iter(entries.values()))
    return {}


def _localFigures(entry: dict[str, Any], kind: str) -> dict[str, Any]:
    figures: dict[str, Any] = {
        k: entry[k]
        for k in ("active", "packetsSent", "bytesSent", "targetBitrate", "retransmittedBytesSent")
        if k in entry
    }
    if kind == "video":
        figures.update({k: entry[k] for k in _LOCAL_VIDEO_FIELDS if k in entry})
    return figures


def _codecOf(rtpParameters: RtpParameters) -> str | None:
    codecs = rtpParameters.get("codecs") or []
    return codecs[0]["mimeType"] if codecs else None


async def _quietly(work: Any, default: Any) -> Any:
    """Stats are best effort: a timeout or a closed object gives ``default``."""
    try:
        return await asyncio.wait_for(work, STATS_TIMEOUT)
    except Exception as error:  # TimeoutError, InvalidStateError('closed'), ProtooError...
        logger.debug("stats request failed: %s", error)
        return default
