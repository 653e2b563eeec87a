"""Reading the browser's getStats samples (``BrowserPeer.samples``): frame rates, layer
switches and freezes as Chromium itself counts them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any


def inbound(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample's inbound-rtp entry (a consumer has exactly one), or {} before it exists."""
    entries = [s for s in sample["stats"] if s.get("type") == "inbound-rtp"]
    return entries[0] if entries else {}


@dataclass
class Freeze:
    endedAt: float  # page time (ms) of the sample that first counted it
    duration: float  # seconds, Chromium's totalFreezesDuration increase


def freezes(samples: list[dict[str, Any]]) -> list[Freeze]:
    """Every freeze Chromium counted between the samples. A freeze is counted, with its
    duration, when the frame that ends it arrives; samples 100 ms apart never hold two
    (Chromium needs >= 150 ms of silence for one)."""
    found = []
    for before, after in itertools.pairwise(samples):
        a, b = inbound(before), inbound(after)
        if not a or not b:
            continue
        count = b.get("freezeCount", 0) - a.get("freezeCount", 0)
        if count > 0:
            duration = b.get("totalFreezesDuration", 0) - a.get("totalFreezesDuration", 0)
            found.append(Freeze(after["at"], duration / count))
    return found


def decodedRate(samples: list[dict[str, Any]]) -> float:
    """Frames decoded per second from the first sample to the last."""
    first, last = inbound(samples[0]), inbound(samples[-1])
    seconds = (samples[-1]["at"] - samples[0]["at"]) / 1000
    return float(last.get("framesDecoded", 0) - first.get("framesDecoded", 0)) / seconds


def firstSampleWith(
    samples: list[dict[str, Any]], width: int, height: int
) -> dict[str, Any] | None:
    for sample in samples:
        entry = inbound(sample)
        if (entry.get("frameWidth"), entry.get("frameHeight")) == (width, height):
            return sample
    return None


def gaps(frameTimes: list[float], over: float) -> list[tuple[float, float]]:
    """(start, length) in ms of every gap longer than ``over`` ms between rendered frames."""
    return [(a, b - a) for a, b in itertools.pairwise(frameTimes) if b - a > over]
