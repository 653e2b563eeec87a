"""The rich rendering of a tick (the live view) and of the end-of-run summary."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


def renderTick(tick: dict[str, Any], header: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = [_header(tick, header)]
    for producer in tick.get("producers", []):
        parts.append(_producerTable(producer))
    if tick.get("consumers"):
        parts.append(_consumerTable(tick["consumers"]))
    elif header.get("consuming"):
        parts.append(Text("waiting for producers in the room...", style="dim"))
    return Group(*parts)


def renderSummary(summary: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = [
        Text(f"Summary: what the router received in {summary['seconds']:g} s", style="bold")
    ]
    for producer in summary.get("producers", []):
        table = Table(title=f"{producer['kind']} producer {producer['id']}", title_justify="left")
        for column in ("layer", "mean kbps", "max kbps", "seconds", "packets", "lost"):
            table.add_column(column, justify="right")
        table.add_column("score", justify="right")
        table.add_column("frames", justify="right")
        table.add_column("size", justify="right", no_wrap=True)
        for index, layer in enumerate(producer["layers"]):
            table.add_row(
                _layerName(index, layer.get("rid")),
                _kbps(layer["meanBitrate"]),
                _kbps(layer["maxBitrate"]),
                str(layer["secondsReceiving"]),
                str(layer["packetCount"]),
                str(layer["packetsLost"]),
                _text(layer.get("score")),
                _text(layer.get("framesEncoded")),
                _size(layer.get("frameWidth"), layer.get("frameHeight")),
            )
        parts.append(table)
    if summary.get("consumers"):
        table = Table(title="consumers", title_justify="left")
        for column in ("kind", "producer", "frames", "size"):
            table.add_column(column)
        for consumer in summary["consumers"]:
            frames = consumer.get("frames") or {}
            table.add_row(
                consumer["kind"],
                consumer["producerId"][:8],
                str(frames.get("frames", 0)),
                _size(frames.get("width"), frames.get("height")),
            )
        parts.append(table)
    if not summary.get("producers") and not summary.get("consumers"):
        parts.append(Text("nothing was sent or received", style="yellow"))
    return Group(*parts)


def _header(tick: dict[str, Any], header: dict[str, Any]) -> RenderableType:
    text = Text()
    duration = header.get("duration")
    elapsed = f"{tick['time']:.0f} s" + (f" / {duration:g} s" if duration else "")
    text.append("mediasoup-client ", style="bold")
    text.append(f"{header.get('command', '')}  {elapsed}\n")
    text.append(f"room: {header.get('url', '')}\n", style="cyan")
    if header.get("consumeUrl"):
        text.append(f"consume it: mediasoup-client consume '{header['consumeUrl']}'\n", style="dim")
    if header.get("watchUrl"):
        text.append(f"watch it in a browser: {header['watchUrl']}\n", style="bold cyan")
    if header.get("source"):
        text.append(f"source: {header['source']}\n")
    states = tick.get("transports") or {}
    if states:
        text.append("transports: " + ", ".join(f"{k} {v}" for k, v in states.items()) + "\n")
    for direction, link in (tick.get("impairment") or {}).items():
        dropped = ", ".join(f"{k} {v}" for k, v in link["dropped"].items()) or "none"
        text.append(
            f"impaired {direction}: {link['config'] or 'clean'}; packets {link['packetsIn']}, "
            f"dropped {dropped}, queue {link['queueDelayMs']:g} ms\n",
            style="magenta",
        )
    congestion = next(
        (p["congestion"] for p in tick.get("producers", []) if "congestion" in p), None
    )
    if congestion:
        text.append(
            f"send estimate {_kbps(congestion.get('availableOutgoingBitrate'))} kbit/s "
            f"({congestion.get('mode')}), pacer {_kbps(congestion.get('pacingRate'))} kbit/s, "
            f"queue {round(1000 * (congestion.get('pacerQueueDelay') or 0))} ms "
            f"{(congestion.get('pacerQueueBytes') or 0) // 1000} kB, "
            f"resending {_kbps(congestion.get('retransmissionBitrate'))} kbit/s\n"
        )
    if header.get("command") == "produce":
        text.append(
            "kbit/s: target = encoder target (off: suspended), sent = sent here, "
            "router = received\n"
        )
    if header.get("keys"):
        text.append(header["keys"], style="dim")
    return text


def _producerTable(producer: dict[str, Any]) -> Table:
    state = []
    if producer.get("paused"):
        state.append("PAUSED")
    if producer.get("maxSpatialLayer") is not None:
        state.append(f"max layer {producer['maxSpatialLayer']}")
    title = f"{producer['kind']} {producer.get('codec') or ''} producer {producer['id'][:8]}"
    if state:
        title += "  [" + ", ".join(state) + "]"
    table = Table(title=title, title_justify="left")
    video = producer["kind"] == "video"
    # Local encoder figures first, then what the router received (bitrates in kbit/s).
    table.add_column("layer")
    if video:
        table.add_column("size", justify="right", no_wrap=True, min_width=9)
        table.add_column("fps", justify="right")
        table.add_column("frames", justify="right")
    table.add_column("target", justify="right")
    table.add_column("sent", justify="right")
    table.add_column("router", justify="right", style="bold")
    table.add_column("pkts", justify="right")
    table.add_column("lost", justify="right")
    table.add_column("score", justify="right")
    for layer in producer["layers"]:
        local, router = layer["local"], layer["router"]
        row = [_layerName(layer["index"], layer.get("rid"))]
        if video:
            row += [
                _size(local.get("frameWidth"), local.get("frameHeight")),
                _text(_round(local.get("framesPerSecond"))),
                _text(local.get("framesEncoded")),
            ]
        row += [
            "off" if local.get("active") is False else _kbps(local.get("targetBitrate")),
            _kbps(local.get("bitrate")),
            _kbps(router.get("bitrate")),
            _text(router.get("packetCount")),
            _text(router.get("packetsLost")),
            _text(router.get("score")),
        ]
        table.add_row(*row)
    return table


def _consumerTable(consumers: list[dict[str, Any]]) -> Table:
    table = Table(title="consumers (what this peer receives)", title_justify="left")
    for column in ("kind", "producer", "router", "score", "layer"):
        table.add_column(column)
    for column in ("recv", "pkts", "frames", "size"):
        table.add_column(column, justify="right")
    for consumer in consumers:
        frames, local, router = consumer["frames"], consumer["local"], consumer["router"]
        layers = consumer.get("layers") or {}
        score = consumer.get("score") or {}
        table.add_row(
            f"{consumer['kind']} {(consumer.get('codec') or '').split('/')[-1]}",
            consumer["producerId"][:8],
            _kbps(router.get("bitrate")),
            _text(score.get("score", router.get("score"))),
            _text(layers.get("spatialLayer")) if layers else "",
            _kbps(local.get("bitrate")),
            _text(local.get("packetsReceived")),
            _text(frames.get("frames")),
            _size(frames.get("width"), frames.get("height")),
        )
    return table


def _layerName(index: int, rid: str | None) -> str:
    return f"{index} {rid}" if rid else str(index)


def _size(width: Any, height: Any) -> str:
    return f"{width}x{height}" if width and height else ""


def _kbps(value: Any) -> str:
    return f"{value / 1000:.0f}" if isinstance(value, int | float) else ""


def _round(value: Any) -> Any:
    return round(value) if isinstance(value, float) else value


def _text(value: Any) -> str:
    return "" if value is None else str(value)
