"""Stats sampling, the live view and the run summary, the plot."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mediasoup_client.cli.stats import RunRecord, Sampler, writePlot
from tests.unit.fake_clock import FakeClock


class StubProducer:
    id = "producer-1"
    kind = "video"
    paused = False
    maxSpatialLayer = None
    rtpParameters: ClassVar[Any] = {
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}],
        "encodings": [{"rid": "r0", "ssrc": 11}, {"rid": "r1", "ssrc": 22}],
    }

    def __init__(self) -> None:
        self.bytes = 0

    async def getStats(self) -> dict[str, Any]:
        self.bytes += 1000
        report: dict[str, Any] = {
            f"OT{ssrc}": {
                "type": "outbound-rtp",
                "ssrc": ssrc,
                "rid": rid,
                "bytesSent": self.bytes,
                "framesEncoded": 7,
                "frameWidth": 160 * (i + 1),
                "frameHeight": 120 * (i + 1),
                "active": i == 0,
                "targetBitrate": 100_000 if i == 0 else 0,
            }
            for i, (rid, ssrc) in enumerate((("r0", 11), ("r1", 22)))
        }
        report["CC"] = {
            "type": "congestion-control",
            "mode": "transport-cc",
            "availableOutgoingBitrate": 543_000,
            "pacingRate": 651_600,
            "pacerQueueDelay": 0.042,
            "pacerQueueBytes": 3100,
            "retransmissionBitrate": 12_000,
        }
        return report


class StubStatsClient:
    producerScores: ClassVar[dict[str, Any]] = {"producer-1": [{"score": 10}]}

    async def routerStats(self, producer: Any) -> list[dict[str, Any]]:
        # The router may list a rid stream under an ssrc it learned itself.
        return [
            {"type": "inbound-rtp", "rid": "r1", "ssrc": 999, "bitrate": 500_000, "score": 9},
            {"type": "inbound-rtp", "rid": "r0", "ssrc": 998, "bitrate": 100_000, "score": 10},
        ]


async def test_sampler_matches_layers_by_rid_and_computes_bitrate() -> None:
    clock = FakeClock()
    sampler, client, producer = Sampler(clock.now), StubStatsClient(), StubProducer()
    first = await sampler.producer(client, producer)  # type: ignore[arg-type]
    clock.advance(0.05)
    second = await sampler.producer(client, producer)  # type: ignore[arg-type]
    layers = second["layers"]
    assert [layer["router"]["bitrate"] for layer in layers] == [100_000, 500_000]
    assert [layer["local"]["frameWidth"] for layer in layers] == [160, 320]
    assert "bitrate" not in first["layers"][0]["local"]
    assert layers[0]["local"]["bitrate"] > 0
    assert second["score"] == [{"score": 10}]
    json.dumps(second)  # JSON lines need plain values

    record = RunRecord()
    record.add({"time": 0.0, "producers": [first]})
    record.add({"time": 1.0, "producers": [second]})
    summary = record.summary()
    assert [layer["maxBitrate"] for layer in summary["producers"][0]["layers"]] == [
        100_000,
        500_000,
    ]
    from rich.console import Console

    from mediasoup_client.cli.view import renderSummary, renderTick

    console = Console(file=io.StringIO(), width=100)
    console.print(renderTick({"time": 1.0, "producers": [second]}, {"command": "produce"}))
    console.print(renderSummary(summary))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "r1" in shown
    # The send transport's estimate and pacer, and the suspended layer.
    assert second["congestion"]["availableOutgoingBitrate"] == 543_000
    assert "send estimate 543 kbit/s (transport-cc)" in shown and "queue 42 ms 3 kB" in shown
    assert " off " in shown


def test_write_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    record = RunRecord()
    record.kinds["p"] = "video"
    from mediasoup_client.cli.stats import LayerTotals

    record.totals["p"] = {0: LayerTotals("r0", 1), 1: LayerTotals("r1", 2)}
    record.series[("p", 0)] = [(0.0, 0), (1.0, 100_000)]
    record.series[("p", 1)] = [(0.0, 0), (1.0, 400_000)]
    path = tmp_path / "plot.png"
    writePlot(record, str(path))
    assert path.read_bytes().startswith(b"\x89PNG")
