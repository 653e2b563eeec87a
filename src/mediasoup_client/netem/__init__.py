"""An impairment test bed: a UDP relay on 127.0.0.1 between our client and the router that
adds loss (random and Gilbert-Elliott bursts), delay and jitter, reordering, a token-bucket
rate cap with a bounded queue and outages, per direction, changeable mid-run.

Outside the library core (the core never imports it). Pure decisions in ``spec`` and
``link`` (fake-clock tested), the asyncio relay in ``relay``, a relay in its own process in
``process``, and the wiring for transports and ``RoomClient`` in ``wiring``.
"""

from __future__ import annotations

from .link import Link
from .process import RelayProcess, RelayProcessError
from .relay import ImpairmentRelay
from .spec import (
    GilbertElliott,
    ImpairmentSpec,
    ImpairmentSpecError,
    LinkConfig,
    Phase,
    parseImpairment,
    parsePlan,
)
from .wiring import relayTransportInfo, transportInfoHook

__all__ = [
    "GilbertElliott",
    "ImpairmentRelay",
    "ImpairmentSpec",
    "ImpairmentSpecError",
    "Link",
    "LinkConfig",
    "Phase",
    "RelayProcess",
    "RelayProcessError",
    "parseImpairment",
    "parsePlan",
    "relayTransportInfo",
    "transportInfoHook",
]
