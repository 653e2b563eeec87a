"""Where the CPU time goes: py-spy's raw (collapsed) stacks grouped into the stages of a send path.

py-spy samples only threads that are running (not those blocked in epoll or waiting for the
GIL), so the share of samples in a stage is its share of the process's CPU time. PyAV is
Cython and makes no Python frames, so the innermost Python frame is the line that called into
it; the stage is decided from that frame's function, file and source line text (read back from
the file), e.g. a line calling ``reformat(`` is scaling, ``codec.encode(`` is the encoder.

    python bench/profile_summary.py bench/out/profile-ours-vp8.txt
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sysconfig
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from measure import threadGroup

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]+?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: int


# py-spy names files relative to the sys.path entry they were found under.
_ROOTS = [
    Path(__file__).resolve().parent,
    Path(__file__).resolve().parents[1] / "src",
    *sorted(Path(__file__).resolve().parents[1].glob(".venv/lib/python3*/site-packages")),
    *sorted(Path(__file__).resolve().parent.glob(".venv-*/lib/python3*/site-packages")),
    Path(sysconfig.get_paths()["stdlib"]),
]


@functools.cache
def sourceLine(path: str, line: int) -> str:
    candidates = [Path(path)] if Path(path).is_absolute() else [r / path for r in _ROOTS]
    for candidate in candidates:
        try:
            with candidate.open(errors="replace") as source:
                for number, text in enumerate(source, 1):
                    if number == line:
                        return text.strip()
        except OSError:
            continue
        return ""
    return ""


def parseFrame(text: str) -> Frame | None:
    match = _FRAME.match(text.strip())
    if match is None:
        return None
    return Frame(match["function"], match["file"], int(match["line"] or 0))


# (stage, test) pairs, tried in order on frames from the innermost outwards: the first frame
# some test recognises decides the stage of the whole sample.
def _stage(frame: Frame) -> str | None:
    file, function = frame.file, frame.function
    text = sourceLine(file, frame.line) if frame.line else ""
    if "test_sources.py" in file:
        return "test source (drawing frames)"
    if "reformat(" in text or function == "reformat":
        return "scaling / colour conversion (swscale)"
    if "to_ndarray" in text or "from_ndarray" in text or function == "_privateCopy":
        # Ours copies unscaled frames plane by plane in _privateCopy (30e925a), through numpy
        # before; the plane copies run in PyAV (no Python frame), so the function decides.
        return "frame copies"
    if file.endswith("encoders.py") and ("resample" in text or "audioLevel" in text):
        return "audio resampling + level"
    if file.endswith("encoders.py") or "codecs/vpx.py" in file or "codecs/opus.py" in file:
        return "encoder (libvpx / libopus)"
    if "codecs/" in file and "aiortc" in file:
        return "packetising"
    if file.endswith("packetizers.py"):
        return "packetising"
    if (
        "pylibsrtp" in file
        or "sendto" in function
        or (file.endswith("rtcdtlstransport.py") and "_send_rtp" in function)
    ):
        return "SRTP + UDP send"
    if file.endswith(("rtp_stream.py", "rtp_header.py", "history.py")) or (
        file.endswith("rtcrtpsender.py")
    ):
        return "RTP headers, history, sender loop"
    if file.endswith("rtcp.py") or "rtcp" in function.lower():
        return "RTCP"
    if "contrib/media.py" in file:
        return "MediaRelay"
    if "aioice" in file or file.endswith("rtcicetransport.py"):
        return "ICE (aioice)"
    if "websockets" in file or "protoo.py" in file or file.endswith("json/__init__.py"):
        return "signaling + stats polling"
    if "measure.py" in file:
        return "benchmark instrumentation"
    if "asyncio" in file or "selectors.py" in file or "concurrent/futures" in file:
        return "asyncio + thread pool"
    if "threading.py" in file:
        return "asyncio + thread pool"
    return None


# A thread blocked here is waiting, not working. py-spy's idle detection misses many of these
# (threads that wake and sleep hundreds of times a second), so they are left out.
_WAITING = ("work_queue.get(", "._selector.poll(", "waiter.acquire(", "_sleep(", "lock.acquire(")
WAITING = "waiting (blocked; left out)"


def stageOf(frames: list[Frame]) -> str:
    if frames:
        leaf = frames[-1]
        text = sourceLine(leaf.file, leaf.line) if leaf.line else ""
        if any(marker in text for marker in _WAITING):
            return WAITING
    for frame in reversed(frames):
        stage = _stage(frame)
        if stage is not None:
            return stage
    return "other Python"


def summarise(path: str, threadCpu: dict[str, float] | None = None) -> dict[str, object]:
    """Shares of the working samples per stage, per thread group and overall. With the
    measured CPU per thread group (``/proc``, same run), each stage also gets an estimate in
    cores: its share of its thread group's samples times that group's CPU."""
    perGroup: dict[str, Counter[str]] = {}
    waiting = 0
    with open(path, errors="replace") as raw:
        lines = [line.rstrip("\n").rpartition(" ") for line in raw]
    # With --threads the first part is "thread (TID): NAME", or only "thread (TID)" when py-spy
    # could not read the name at that sample: take the name seen for that TID elsewhere.
    names: dict[str, str] = {}
    for stack, _, _ in lines:
        tid, _, name = stack.split(";", 1)[0].partition(": ")
        if name:
            names[tid] = name
    for stack, _, countText in lines:
        if countText.isdigit():
            parts = stack.split(";")
            tid, _, name = parts[0].partition(": ")
            name = name or names.get(tid, "?")
            frames = [f for f in (parseFrame(p) for p in parts[1:]) if f is not None]
            stage = stageOf(frames)
            if stage == WAITING:
                waiting += int(countText)
            else:
                perGroup.setdefault(threadGroup(name), Counter())[stage] += int(countText)
    overall: Counter[str] = Counter()
    for counts in perGroup.values():
        overall.update(counts)
    working = sum(overall.values())
    result: dict[str, object] = {
        "workingSamples": working,
        "waitingSamples": waiting,
        "stages": {stage: n / working for stage, n in overall.most_common()} if working else {},
        "byThreadGroup": {
            group: {stage: n / sum(c.values()) for stage, n in c.most_common()}
            for group, c in perGroup.items()
        },
    }
    if threadCpu:
        cores: dict[str, float] = {}
        for group, counts in perGroup.items():
            total = sum(counts.values())
            for stage, n in counts.items():
                cores[stage] = cores.get(stage, 0.0) + threadCpu.get(group, 0.0) * n / total
        result["coresByStage"] = dict(sorted(cores.items(), key=lambda item: -item[1]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    args = parser.parse_args()
    print(json.dumps(summarise(args.path), indent=2))


if __name__ == "__main__":
    main()
