"""Impairment specs: what one direction of the link does to packets, and its text form.

Pure: no I/O. A spec names, per direction (``up`` = client to router, ``down`` = router to
client), a plan: one or more phases, each a full :class:`LinkConfig` and how long it lasts.

Text form (the CLI's ``--impair``)::

    spec   := part (";" part)*
    part   := [("up" | "down" | "both") ":"] phase (" then " phase)*
    phase  := [item ("," item)*] [" for " DURATION]
    item   := KEY "=" VALUE | "outage" | "clean"

    loss=5%,delay=40ms,jitter=10ms,rate=600k,queue=100ms     both directions
    up:rate=600k;down:loss=2%                                per direction
    up:rate=3M,queue=100ms for 10s then rate=600k            a change mid-run
    down:for 5s then outage for 3s                           clean 5 s, 3 s outage, clean

Phases add up: each one changes the previous one's settings (``clean`` resets them), except
``outage``, which lasts only its own phase. Every phase but the last needs ``for``; a last
phase with ``for`` ends in a clean link. Keys: see ``KEYS``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

DEFAULT_QUEUE_DELAY = 0.100  # a rate cap without a queue size gets 100 ms of queue
DEFAULT_BUCKET = 3000  # token-bucket depth in bytes: about two full-size packets
DEFAULT_OVERHEAD = 28  # IPv4 + UDP header bytes a real link carries with every datagram
DEFAULT_BURST_LENGTH = 3.0  # mean Gilbert-Elliott burst, in packets
DEFAULT_REORDER_DELAY = 0.010

KEYS = {
    "loss": "random loss, e.g. 5%",
    "burst": "Gilbert-Elliott burst loss with this mean, e.g. 2% (mean burst: burstlen)",
    "burstlen": "mean burst length in packets (with burst; default 3)",
    "gilbert": "Gilbert-Elliott p:r[:loss-in-bad[:loss-in-good]], e.g. 1%:30%",
    "delay": "one-way delay, e.g. 40ms",
    "jitter": "delay variation, uniform +-, e.g. 10ms (packets keep their order)",
    "order": "keep (default) or free: with free, jitter reorders packets as netem does",
    "reorder": "share of packets held back by reorderdelay so later ones overtake, e.g. 1%",
    "reorderdelay": "how long a reordered packet is held (default 10ms)",
    "rate": "token-bucket rate cap in bit/s, e.g. 600k, 1.5M (none: no cap)",
    "queue": "bottleneck queue before the cap: a delay (100ms, default) or a size (30kB)",
    "bucket": "token-bucket depth in bytes (default 3000B)",
    "overhead": "bytes the cap counts per datagram besides its payload (default 28B)",
    "outage": "drop everything (lasts its phase only)",
    "clean": "reset every setting",
}


class ImpairmentSpecError(ValueError):
    """A bad impairment spec; the message names the field."""


@dataclass(frozen=True)
class GilbertElliott:
    """Two-state loss: good -> bad with probability ``p`` per packet, bad -> good with ``r``;
    a packet is lost with ``lossBad`` in the bad state and ``lossGood`` in the good one."""

    p: float
    r: float
    lossBad: float = 1.0
    lossGood: float = 0.0

    @property
    def meanLoss(self) -> float:
        bad = self.p / (self.p + self.r) if self.p + self.r > 0 else 0.0
        return bad * self.lossBad + (1 - bad) * self.lossGood

    @classmethod
    def fromMean(cls, loss: float, burstLength: float) -> GilbertElliott:
        """Simple Gilbert model (all lost in bad, none in good) with this mean loss and mean
        burst length: r = 1 / length, p = loss * r / (1 - loss)."""
        r = 1.0 / burstLength
        return cls(p=loss * r / (1.0 - loss), r=r)


@dataclass(frozen=True)
class LinkConfig:
    """One direction's behaviour (all times in seconds, rates in bit/s, sizes in bytes)."""

    loss: float = 0.0
    gilbert: GilbertElliott | None = None
    delay: float = 0.0
    jitter: float = 0.0
    reorderByJitter: bool = False
    reorder: float = 0.0
    reorderDelay: float = DEFAULT_REORDER_DELAY
    rate: float | None = None
    queueBytes: int | None = None
    queueDelay: float | None = None
    bucket: int = DEFAULT_BUCKET
    overhead: int = DEFAULT_OVERHEAD
    outage: bool = False
    # Keys given explicitly in the text (describe() shows those, in the canonical form).
    given: tuple[str, ...] = field(default=(), compare=False)

    @property
    def clean(self) -> bool:
        return self == LinkConfig()

    def describe(self) -> str:
        """The canonical text of this config ("" for a clean link)."""
        parts: list[str] = []
        if self.outage:
            parts.append("outage")
        if self.loss:
            parts.append(f"loss={formatPercent(self.loss)}")
        if self.gilbert is not None:
            g = self.gilbert
            if g.lossBad == 1 and g.lossGood == 0 and g.r > 0 and g.p < 1:
                parts.append(f"burst={formatPercent(g.meanLoss)},burstlen={1 / g.r:g}")
            else:
                parts.append(
                    f"gilbert={formatPercent(g.p)}:{formatPercent(g.r)}:"
                    f"{formatPercent(g.lossBad)}:{formatPercent(g.lossGood)}"
                )
        if self.delay:
            parts.append(f"delay={formatDuration(self.delay)}")
        if self.jitter:
            parts.append(f"jitter={formatDuration(self.jitter)}")
            if self.reorderByJitter:
                parts.append("order=free")
        if self.reorder:
            parts.append(f"reorder={formatPercent(self.reorder)}")
            parts.append(f"reorderdelay={formatDuration(self.reorderDelay)}")
        if self.rate is not None:
            parts.append(f"rate={formatBitrate(self.rate)}")
            if self.queueBytes is not None:
                parts.append(f"queue={self.queueBytes}B")
            elif self.queueDelay is not None:
                parts.append(f"queue={formatDuration(self.queueDelay)}")
            if self.bucket != DEFAULT_BUCKET:
                parts.append(f"bucket={self.bucket}B")
            if self.overhead != DEFAULT_OVERHEAD:
                parts.append(f"overhead={self.overhead}B")
        return ",".join(parts)


@dataclass(frozen=True)
class Phase:
    config: LinkConfig
    duration: float | None  # None: until changed


Plan = tuple[Phase, ...]


@dataclass(frozen=True)
class ImpairmentSpec:
    """Plans per direction; ``None`` for a direction the spec does not mention."""

    up: Plan | None = None
    down: Plan | None = None

    def describe(self) -> str:
        parts = []
        for name, plan in (("up", self.up), ("down", self.down)):
            if plan is not None:
                parts.append(f"{name}:{describePlan(plan)}")
        return ";".join(parts)


def describePlan(plan: Plan) -> str:
    phases = []
    for phase in plan:
        text = phase.config.describe() or "clean"
        if phase.duration is not None:
            text += f" for {formatDuration(phase.duration)}"
        phases.append(text)
    return " then ".join(phases)


def cleanPlan() -> Plan:
    return (Phase(LinkConfig(), None),)


def planOf(config: LinkConfig | str | Plan) -> Plan:
    """A plan from a config, a one-direction text ("rate=600k for 10s then ...") or a plan."""
    if isinstance(config, LinkConfig):
        return (Phase(config, None),)
    if isinstance(config, str):
        return parsePlan(config)
    return config


def requestedSpec(
    spec: ImpairmentSpec | str | None,
    up: LinkConfig | str | Plan | None,
    down: LinkConfig | str | Plan | None,
) -> ImpairmentSpec:
    """What a relay's ``configure(spec, up=..., down=...)`` asks for: a whole spec (or its
    text), or the plans of the directions given; TypeError for both at once."""
    if isinstance(spec, str):
        spec = parseImpairment(spec)
    if spec is None:
        return ImpairmentSpec(
            up=None if up is None else planOf(up), down=None if down is None else planOf(down)
        )
    if up is not None or down is not None:
        raise TypeError("give either a spec or up/down, not both")
    return spec


# Parsing.
_THEN = re.compile(r"\s+then\s+", re.IGNORECASE)
_FOR = re.compile(r"(?:^|\s+)for\s+(\S+)\s*$", re.IGNORECASE)
_DIRECTIONS = ("up", "down", "both")


def parseImpairment(text: str) -> ImpairmentSpec:
    """Parse the text form; :class:`ImpairmentSpecError` naming the bad field."""
    if not isinstance(text, str) or not text.strip():
        raise ImpairmentSpecError("empty impairment spec (e.g. loss=5%,delay=40ms)")
    plans: dict[str, Plan] = {}
    for rawPart in text.split(";"):
        part = rawPart.strip()
        if not part:
            continue
        direction = "both"
        head, colon, rest = part.partition(":")
        if colon and head.strip().lower() in _DIRECTIONS:
            direction, part = head.strip().lower(), rest.strip()
        elif colon and "=" not in head and head.strip():
            raise ImpairmentSpecError(f"unknown direction {head.strip()!r} (up, down or both)")
        plan = parsePlan(part, prefix="" if direction == "both" else f"{direction}: ")
        for name in ("up", "down") if direction == "both" else (direction,):
            if name in plans:
                raise ImpairmentSpecError(
                    f"{name}: given twice (an unprefixed or both: part applies to up and down)"
                )
            plans[name] = plan
    if not plans:
        raise ImpairmentSpecError("empty impairment spec (e.g. loss=5%,delay=40ms)")
    return ImpairmentSpec(up=plans.get("up"), down=plans.get("down"))


def parsePlan(text: str, *, prefix: str = "") -> Plan:
    """One direction's phases: ``rate=3M for 10s then rate=600k``."""
    phases: list[Phase] = []
    previous = LinkConfig()
    if re.search(r"(?:^|\s)then$", text.strip(), re.IGNORECASE):
        raise ImpairmentSpecError(f"{prefix}nothing after 'then'")
    rawPhases = _THEN.split(text.strip())
    for index, rawPhase in enumerate(rawPhases):
        where = prefix if len(rawPhases) == 1 else f"{prefix}phase {index + 1}: "
        settings, duration = _splitDuration(rawPhase.strip(), where)
        if duration is None and index < len(rawPhases) - 1:
            raise ImpairmentSpecError(f"{where}every phase but the last needs 'for DURATION'")
        config = _applyItems(previous, settings, where)
        phases.append(Phase(config, duration))
        # The next phase starts from this one, without its outage.
        previous = dataclasses.replace(config, outage=False)
    if phases[-1].duration is not None:
        phases.append(Phase(LinkConfig(), None))
    return tuple(phases)


def _splitDuration(text: str, where: str) -> tuple[str, float | None]:
    match = _FOR.search(text)
    if match is None:
        if re.search(r"(?:^|\s)for(?:\s|$)", text, re.IGNORECASE):
            raise ImpairmentSpecError(f"{where}'for' needs a duration, e.g. for 10s")
        return text, None
    duration = parseDuration(match.group(1), f"{where}for")
    if duration <= 0:
        raise ImpairmentSpecError(f"{where}for: the duration must be positive")
    return text[: match.start()].strip(), duration


def _applyItems(base: LinkConfig, text: str, where: str) -> LinkConfig:
    values: dict[str, object] = {}
    given = list(base.given)
    seen: set[str] = set()
    config = base
    for rawItem in text.split(","):
        item = rawItem.strip()
        if not item:
            if text.strip():
                raise ImpairmentSpecError(f"{where}empty item in {text!r}")
            continue
        key, equals, value = item.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if key not in KEYS:
            raise ImpairmentSpecError(f"{where}unknown field {key!r} (known: {', '.join(KEYS)})")
        if key in seen:
            raise ImpairmentSpecError(f"{where}{key}: given twice")
        seen.add(key)
        name = f"{where}{key}"
        if key in ("outage", "clean"):
            if equals:
                raise ImpairmentSpecError(f"{name}: takes no value")
            if key == "clean":
                config, values, given = LinkConfig(), {}, []
            else:
                values["outage"] = True
            continue
        if not equals or not value:
            raise ImpairmentSpecError(f"{name}: needs a value ({KEYS[key]})")
        given.append(key)
        _parseItem(key, value, name, values)
    burst = values.pop("_burst", None)
    burstLength = values.pop("_burstlen", None)
    config = dataclasses.replace(config, **values)  # type: ignore[arg-type]
    config = _resolve(config, seen, where, burst, burstLength)
    return dataclasses.replace(config, given=tuple(dict.fromkeys(given)))


def _parseItem(key: str, value: str, name: str, values: dict[str, object]) -> None:
    if key == "loss":
        values["loss"] = parsePercent(value, name)
    elif key == "burst":
        loss = parsePercent(value, name)
        if loss >= 1:
            raise ImpairmentSpecError(f"{name}: must be below 100%")
        values["_burst"] = loss
    elif key == "burstlen":
        try:
            length = float(value)
        except ValueError:
            raise ImpairmentSpecError(f"{name}: {value!r} is not a number of packets") from None
        if not length >= 1 or math.isinf(length):
            raise ImpairmentSpecError(f"{name}: must be at least 1 packet")
        values["_burstlen"] = length
    elif key == "gilbert":
        fields = value.split(":")
        if not 2 <= len(fields) <= 4:
            raise ImpairmentSpecError(f"{name}: expected p:r[:loss-in-bad[:loss-in-good]]")
        numbers = [parsePercent(f, name) for f in fields]
        if numbers[0] + numbers[1] <= 0:
            raise ImpairmentSpecError(f"{name}: p and r cannot both be 0%")
        values["gilbert"] = GilbertElliott(*numbers)
    elif key in ("delay", "jitter", "reorderdelay"):
        duration = parseDuration(value, name)
        values["reorderDelay" if key == "reorderdelay" else key] = duration
    elif key == "order":
        if value.lower() not in ("keep", "free"):
            raise ImpairmentSpecError(f"{name}: keep or free (got {value!r})")
        values["reorderByJitter"] = value.lower() == "free"
    elif key == "reorder":
        values["reorder"] = parsePercent(value, name)
    elif key == "rate":
        values["rate"] = None if value.lower() == "none" else parseRate(value, name)
    elif key == "queue":
        if re.fullmatch(r"[\d.]+\s*(us|ms|s)", value, re.IGNORECASE):
            delay = parseDuration(value, name)
            if delay <= 0:
                raise ImpairmentSpecError(f"{name}: must be positive")
            values["queueDelay"], values["queueBytes"] = delay, None
        else:
            values["queueBytes"], values["queueDelay"] = parseBytes(value, name), None
    elif key == "bucket":
        values["bucket"] = parseBytes(value, name)
    elif key == "overhead":
        values["overhead"] = parseBytes(value, name, allowZero=True)


def _resolve(
    config: LinkConfig, seen: set[str], where: str, burst: object, burstLength: object
) -> LinkConfig:
    """Checks across fields, defaults that depend on others, burst -> Gilbert-Elliott."""
    if burstLength is not None and burst is None:
        raise ImpairmentSpecError(f"{where}burstlen: needs burst")
    if isinstance(burst, float):
        if "gilbert" in seen:
            raise ImpairmentSpecError(f"{where}burst: give either burst or gilbert")
        length = float(burstLength) if isinstance(burstLength, float) else DEFAULT_BURST_LENGTH
        config = dataclasses.replace(
            config, gilbert=GilbertElliott.fromMean(burst, length) if burst > 0 else None
        )
    if "reorderdelay" in seen and not config.reorder:
        raise ImpairmentSpecError(f"{where}reorderdelay: needs reorder")
    if "order" in seen and not config.jitter:
        raise ImpairmentSpecError(f"{where}order: needs jitter")
    if config.rate is None:
        for key in ("queue", "bucket", "overhead"):
            if key in seen:
                raise ImpairmentSpecError(f"{where}{key}: needs rate")
        return dataclasses.replace(config, queueBytes=None, queueDelay=None)
    if config.queueBytes is None and config.queueDelay is None:
        config = dataclasses.replace(config, queueDelay=DEFAULT_QUEUE_DELAY)
    return config


# Values.
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parseDuration(text: str, name: str) -> float:
    match = re.fullmatch(r"\s*([\d.]+)\s*(us|ms|s)?\s*", text, re.IGNORECASE)
    number = _number(match.group(1)) if match else None
    if match is None or number is None:
        raise ImpairmentSpecError(f"{name}: {text!r} is not a duration (e.g. 40ms, 1.5s)")
    unit = match.group(2)
    if unit is None:
        if number == 0:
            return 0.0
        raise ImpairmentSpecError(f"{name}: {text!r} needs a unit (us, ms or s)")
    return number * _UNITS[unit.lower()]


def parsePercent(text: str, name: str) -> float:
    match = re.fullmatch(r"\s*([\d.]+)\s*%\s*", text)
    number = _number(match.group(1)) if match else None
    if match is None or number is None:
        if re.fullmatch(r"\s*0*\.?0*\s*", text) and text.strip():
            return 0.0
        raise ImpairmentSpecError(f"{name}: {text!r} is not a percentage (e.g. 5%)")
    if number > 100:
        raise ImpairmentSpecError(f"{name}: {text!r} is above 100%")
    return number / 100.0


def parseRate(text: str, name: str) -> float:
    match = re.fullmatch(r"\s*([\d.]+)\s*([kmg]?)(?:bit/s|bps|bit)?\s*", text, re.IGNORECASE)
    number = _number(match.group(1)) if match else None
    if match is None or number is None:
        raise ImpairmentSpecError(f"{name}: {text!r} is not a bitrate (e.g. 600k, 1.5M)")
    rate = number * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    if rate < 8000:
        raise ImpairmentSpecError(f"{name}: {text!r} is below 8 kbit/s")
    return rate


def parseBytes(text: str, name: str, *, allowZero: bool = False) -> int:
    match = re.fullmatch(r"\s*([\d.]+)\s*(b|kb|kib|mb|mib)\s*", text, re.IGNORECASE)
    number = _number(match.group(1)) if match else None
    if match is None or number is None:
        raise ImpairmentSpecError(f"{name}: {text!r} is not a size (e.g. 3000B, 30kB)")
    scale = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1_000_000, "mib": 1 << 20}
    size = int(number * scale[match.group(2).lower()])
    if size <= 0 and not allowZero:
        raise ImpairmentSpecError(f"{name}: must be positive")
    return size


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# Canonical text of values.
def formatPercent(value: float) -> str:
    return f"{value * 100:g}%"


def formatDuration(seconds: float) -> str:
    if seconds and seconds < 1e-3:
        return f"{seconds * 1e6:g}us"
    if seconds < 1:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds:g}s"


def formatBitrate(rate: float) -> str:
    if rate >= 1e6 and rate % 1e5 == 0:
        return f"{rate / 1e6:g}M"
    if rate >= 1e3:
        return f"{rate / 1e3:g}k"
    return f"{rate:g}"
