"""``--impair SPEC``: this peer's transport through the impairment relay (``netem``), to try a
bot under a bad network. ``up`` is this peer to the router, ``down`` the router to this peer;
``produce`` impairs its send transport, ``consume`` its receive transport."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from ..netem import ImpairmentSpec, ImpairmentSpecError, RelayProcess, parseImpairment
from ..netem.wiring import TransportInfoHook, transportInfoHook
from .options import CliError


def impairSpec(text: str) -> ImpairmentSpec:
    """argparse type of ``--impair``: a bad spec is a usage error naming the field."""
    try:
        return parseImpairment(text)
    except ImpairmentSpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


async def startRelay(
    spec: ImpairmentSpec | None, stack: contextlib.AsyncExitStack, *, direction: str
) -> tuple[RelayProcess | None, TransportInfoHook | None]:
    """The relay (closed by ``stack``) and the RoomClient hook for the ``direction``
    ("send" or "recv") transport; (None, None) without ``--impair``."""
    if spec is None:
        return None, None
    relay = RelayProcess(spec)
    try:
        await relay.start()
    except Exception as error:
        await relay.close()
        raise CliError(f"--impair: the relay did not start: {error}") from None
    stack.push_async_callback(relay.close)
    hook = transportInfoHook(**{direction: relay})
    return relay, hook


async def relayFigures(relay: RelayProcess | None) -> dict[str, Any] | None:
    """Per direction, cumulative: what the relay took in, dropped (by cause) and delivered,
    and the current queue delay (for the live view and the JSON ticks)."""
    if relay is None:
        return None
    stats = await relay.stats()
    figures: dict[str, Any] = {}
    for name in ("up", "down"):
        side = stats[name]
        figures[name] = {
            "config": side["config"],
            "packetsIn": side["packetsIn"],
            "packetsDelivered": side["packetsDelivered"],
            "dropped": {k: v for k, v in side["dropped"].items() if v},
            "queueDelayMs": round(side["queueDelayNow"] * 1000, 1),
        }
    return figures
