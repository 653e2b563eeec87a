"""Per simulcast layer: frame rate, bitrate and picture quality of our VP8 encoder beside
Chromium's (the real mediasoup-client 3.24.1 in headless Chromium), same source, same
encodings, one run (issue 18 item 2).

The source is our ``PatternVideoTrack``, its first ``--source-frames`` frames in a loop: ours
produces it directly (``loop=``); Chromium's fake camera plays the same frames from a .y4m file
(``--use-file-for-fake-video-capture``, which loops). Both
produce 3-layer VP8 simulcast with the same ``encodings`` to the local SFU. One plain RTP
consumer per layer and producer (a recorder: VP8 without RTCP feedback, so no bandwidth
estimation and no repairs) keeps what the router forwards; after the run each layer is
depacketised and decoded, every decoded frame is identified by the pattern's barcode
(``readFrameNumber``) and compared with that source frame, box-downscaled to the layer's size
(both encoders' scalers are box/area filters): luma PSNR and SSIM (8x8 windows, stride 4).

Per layer and encoder it reports: the frame rate the source delivered (our track, Chromium's
media-source) and the encoder produced (its own stats), the frame rate the recorder decoded,
the router's bitrate for that stream (``getProducerStats`` byteCount deltas), mean and
5th-percentile PSNR of the decoded frames, "PSNR held" (every source frame of the window against
the decoded frame a player shows then, so dropped frames count), mean SSIM, the decoded size,
and Chromium's ``qualityLimitationReason``.

    .venv/bin/python bench/layer_quality.py [--width 640 --height 480] [--encodings cli|demo]
        [--warmup 8] [--window 10] [--sfu-port PORT] [--json OUT.json]

Without ``--sfu-port`` it starts the local SFU itself. ``bench/driver.py`` runs it as scenario 6.
The last stdout line is ``RESULT <json>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import av
import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(
    0, str(REPO)
)  # the test peers: tests/browser/peer.py, tests/integration/plain_rtp.py

from mediasoup_client.cli.options import defaultMaxBitrate, simulcastEncodings  # noqa: E402
from mediasoup_client.media.test_sources import PatternVideoTrack, readFrameNumber  # noqa: E402
from mediasoup_client.signaling.local_sfu import LocalSfu  # noqa: E402
from mediasoup_client.signaling.protoo import ProtooPeer  # noqa: E402
from mediasoup_client.signaling.room_client import RoomClient  # noqa: E402
from tests.browser.peer import BrowserPeer, Chromium  # noqa: E402
from tests.integration.plain_rtp import PlainConsumer, vp8Frames  # noqa: E402

FPS = 30
OUT = BENCH / "out"


def encodingsFor(kind: str, width: int, height: int) -> list[dict[str, Any]]:
    """``cli``: what ``mediasoup-client produce --simulcast 3`` sends (a quarter of the bitrate per
    step down from about 0.1 bit/pixel); ``demo``: mediasoup-demo's 100k/300k/900k."""
    if kind == "cli":
        encodings = simulcastEncodings(
            3, defaultMaxBitrate(width, height, FPS), width=width, height=height
        )
        return [dict(e) for e in encodings]
    if kind == "demo":
        return [
            {"maxBitrate": 100_000, "scaleResolutionDownBy": 4},
            {"maxBitrate": 300_000, "scaleResolutionDownBy": 2},
            {"maxBitrate": 900_000},
        ]
    raise ValueError(f"unknown encodings {kind!r}")


@dataclass
class RunningSfu:
    """A local SFU someone else started (bench/driver.py): its port is all we need."""

    port: int

    def url_for(self, room_id: str, peer_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/?{urlencode({'roomId': room_id, 'peerId': peer_id})}"


# The source.
def writeY4m(path: Path, width: int, height: int, frames: int) -> None:
    """Frames 0..frames-1 of the pattern as a y4m file (I420), unless it is there already."""
    if path.exists() and path.stat().st_size == _y4mSize(width, height, frames):
        return
    track = PatternVideoTrack(width, height, FPS, paced=False)
    partial = path.with_suffix(".part")
    with partial.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(frames):
            out.write(b"FRAME\n")
            out.write(track.frameAt(index).to_ndarray().tobytes())
    partial.replace(path)


def _y4mSize(width: int, height: int, frames: int) -> int:
    header = len(f"YUV4MPEG2 W{width} H{height} F{FPS}:1 Ip A1:1 C420jpeg\n")
    return header + frames * (6 + width * height * 3 // 2)


class References:
    """Source luma planes, box-downscaled to a layer's size, by frame number."""

    def __init__(self, width: int, height: int) -> None:
        self._track = PatternVideoTrack(width, height, FPS, paced=False)
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}
        self.width, self.height = width, height

    def luma(self, number: int, width: int, height: int) -> np.ndarray:
        key = (number, width, height)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        frame = self._track.frameAt(number)
        full = frame.to_ndarray()[: self.height].astype(np.float64)
        fx, fy = self.width / width, self.height / height
        if fx == fy and fx.is_integer():
            f = int(fx)
            plane = full.reshape(height, f, width, f).mean(axis=(1, 3))
        else:
            plane = (
                frame.reformat(width=width, height=height, interpolation="AREA")
                .to_ndarray()[:height]
                .astype(np.float64)
            )
        plane = np.asarray(np.round(plane), dtype=np.float64)
        if len(self._cache) > 2000:
            self._cache.clear()
        self._cache[key] = plane
        return plane


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    mse = float(np.mean((reference - decoded) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def ssim(reference: np.ndarray, decoded: np.ndarray, window: int = 8, stride: int = 4) -> float:
    """Mean SSIM over window x window blocks every ``stride`` pixels (uniform weights, as
    libvpx's vpx_ssim)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def sums(plane: np.ndarray) -> np.ndarray:
        integral = np.zeros((plane.shape[0] + 1, plane.shape[1] + 1))
        integral[1:, 1:] = plane.cumsum(0).cumsum(1)
        rows = np.arange(0, plane.shape[0] - window + 1, stride)
        cols = np.arange(0, plane.shape[1] - window + 1, stride)
        r, c = np.ix_(rows, cols)
        return np.asarray(
            integral[r + window, c + window]
            - integral[r, c + window]
            - integral[r + window, c]
            + integral[r, c]
        )

    n = window * window
    a, b = reference, decoded
    mu_a, mu_b = sums(a) / n, sums(b) / n
    var_a = sums(a * a) / n - mu_a**2
    var_b = sums(b * b) / n - mu_b**2
    cov = sums(a * b) / n - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(value.mean())


# A decoded frame whose barcode reads this far from the previous one, or whose picture is this
# unlike the source frame it names, is not counted (a misread, or a repeated frame).
MAX_STEP = 90
MIN_PSNR = 15.0


def analyse(
    consumer: PlainConsumer,
    references: References,
    since: float,
    until: float,
    loop: int | None,
) -> dict[str, Any]:
    """Decode what the recorder got; figures for the frames that arrived in [since, until].

    ``psnr*``/``ssim*`` compare each decoded frame with its own source frame; ``psnrHeld``
    compares every source frame of the window with the decoded frame a player would be
    showing then (the last one), so dropped frames count against the encoder."""
    frames, incomplete = vp8Frames(consumer.receiver.packets)
    decoder = av.CodecContext.create("vp8", "r")
    psnrs: list[float] = []
    ssims: list[float] = []
    held: list[float] = []
    sizes: set[tuple[int, int]] = set()
    numbers: list[int] = []
    decoded = unidentified = errors = 0
    last: tuple[int, np.ndarray] | None = None

    def holdUntil(number: int) -> None:
        """PSNR of the source frames after the last decoded one, up to ``number``, against it."""
        assert last is not None
        shown, luma = last
        height, width = luma.shape
        step = number - shown if loop is None else (number - shown) % loop
        for k in range(1, step):
            index = shown + k if loop is None else (shown + k) % loop
            held.append(psnr(references.luma(index, width, height), luma))

    for assembled in frames:
        try:
            pictures = decoder.decode(av.Packet(assembled.data))
        except av.error.FFmpegError:
            errors += 1
            continue
        if not since <= assembled.arrival <= until:
            continue
        for picture in pictures:
            decoded += 1
            number = readFrameNumber(picture)
            if last is not None:
                step = number - last[0]
                if loop is not None:
                    step %= loop
                if not 1 <= step <= MAX_STEP or (loop is not None and number >= loop):
                    unidentified += 1
                    continue
            luma = picture.to_ndarray(format="gray").astype(np.float64)
            height, width = luma.shape
            reference = references.luma(number, width, height)
            quality = psnr(reference, luma)
            if quality < MIN_PSNR:
                unidentified += 1
                continue
            if last is not None:
                holdUntil(number)
            last = (number, luma)
            numbers.append(number)
            sizes.add((width, height))
            psnrs.append(quality)
            held.append(quality)
            ssims.append(ssim(reference, luma))
    window = until - since
    return {
        "decodedFps": round(decoded / window, 1),
        "sourceFramesShown": len(set(numbers)),
        "sizes": sorted(f"{w}x{h}" for w, h in sizes),
        "psnrMean": round(statistics.fmean(psnrs), 2) if psnrs else None,
        "psnrP5": round(float(np.percentile(psnrs, 5)), 2) if psnrs else None,
        "psnrHeld": round(statistics.fmean(held), 2) if held else None,
        "ssimMean": round(statistics.fmean(ssims), 4) if ssims else None,
        "incompleteFrames": incomplete,
        "decodeErrors": errors,
        "unidentified": unidentified,
    }


async def scored(request: Any, producerId: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        streams = await request("getProducerStats", {"producerId": producerId})
        if len(streams) == count and all(s["score"] >= 9 for s in streams):
            return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"producer {producerId}: not {count} scored streams in {timeout:g} s")


def byRid(stats: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(s.get("rid")): s for s in stats}


async def encoderCounts(
    who: str, track: PatternVideoTrack, producer: Any, camera: BrowserPeer, theirs: str
) -> dict[str, dict[str, Any]]:
    """Per rid: framesEncoded (and size, quality limitation) as each encoder reports them;
    under "source", the frames its source delivered (our track's count, Chromium's
    media-source: a starved camera shows there, not in the encoder)."""
    if who == "ours":
        stats = [s for s in (await producer.getStats()).values() if s["type"] == "outbound-rtp"]
        source = {"frames": track.framesGenerated}
    else:
        entries = await camera.stats(theirs)
        stats = [s for s in entries if s["type"] == "outbound-rtp"]
        source = next((s for s in entries if s["type"] == "media-source"), {})
    return {"source": source, **{str(s.get("rid")): s for s in stats}}


async def run(
    args: argparse.Namespace, sfu: LocalSfu | RunningSfu, chromium: Chromium
) -> dict[str, Any]:
    encodings = encodingsFor(args.encodings, args.width, args.height)
    layers = len(encodings)
    roomId = f"quality-{uuid.uuid4().hex[:6]}"
    publisher = await RoomClient.join(sfu.url_for(roomId, "python"), consume=False)
    camera = await BrowserPeer.join(chromium, sfu.port, roomId, consume=False)
    recorder = await ProtooPeer.connect(sfu.url_for(roomId, "recorder"))
    consumers: dict[tuple[str, int], PlainConsumer] = {}
    try:
        # The same frames as Chromium's file, looping as it does.
        track = PatternVideoTrack(args.width, args.height, FPS, loop=args.source_frames)
        producer = await publisher.produce(track, encodings=[dict(e) for e in encodings])
        theirs = (
            await camera.produceVideo(
                encodings=[dict(e) for e in encodings], width=args.width, height=args.height
            )
        )["id"]
        producerIds = {"ours": producer.id, "chromium": theirs}
        requests = {"ours": publisher.request, "chromium": camera.request}
        for who in producerIds:
            await scored(requests[who], producerIds[who], layers)
        await asyncio.sleep(args.warmup)
        for who, producerId in producerIds.items():
            for layer in range(layers):
                consumers[(who, layer)] = await PlainConsumer.create(
                    recorder,
                    producerId,
                    spatialLayer=layer,
                    capabilities="minimal",
                    keepPackets=True,
                    traceEventTypes=(),
                )
        # The router switches each recorder at the layer's next key frame.
        await asyncio.sleep(2.5)
        routerBefore = {
            w: byRid(await requests[w]("getProducerStats", {"producerId": p}))
            for w, p in producerIds.items()
        }
        encoderBefore = {
            w: await encoderCounts(w, track, producer, camera, theirs) for w in producerIds
        }
        since = time.monotonic()
        await asyncio.sleep(args.window)
        until = time.monotonic()
        routerAfter = {
            w: byRid(await requests[w]("getProducerStats", {"producerId": p}))
            for w, p in producerIds.items()
        }
        encoderAfter = {
            w: await encoderCounts(w, track, producer, camera, theirs) for w in producerIds
        }
        layerOf = {
            (who, layer): consumer.currentLayerAt(until)
            for (who, layer), consumer in consumers.items()
        }
    finally:
        for consumer in consumers.values():
            await consumer.close()
        await recorder.close()
        await camera.close()
        await publisher.close()

    # Decoding and comparing, with no media running any more.
    references = References(args.width, args.height)
    elapsed = until - since
    result: dict[str, Any] = {"layers": []}
    for (who, layer), consumer in consumers.items():
        rid = f"r{layer}"
        before, after = routerBefore[who].get(rid, {}), routerAfter[who].get(rid, {})
        encBefore, encAfter = encoderBefore[who].get(rid, {}), encoderAfter[who].get(rid, {})
        sourceFrames = encoderAfter[who]["source"].get("frames", 0) - encoderBefore[who][
            "source"
        ].get("frames", 0)
        entry: dict[str, Any] = {
            "encoder": who,
            "layer": layer,
            "maxBitrate": encodings[layer]["maxBitrate"],
            "routerKbps": round(
                8 * (after.get("byteCount", 0) - before.get("byteCount", 0)) / elapsed / 1000, 1
            ),
            "routerScore": after.get("score"),
            "sourceFps": round(sourceFrames / elapsed, 1),
            "encodedFps": round(
                (encAfter.get("framesEncoded", 0) - encBefore.get("framesEncoded", 0)) / elapsed, 1
            ),
            "encodedSize": f"{encAfter.get('frameWidth')}x{encAfter.get('frameHeight')}",
            "qualityLimitationReason": encAfter.get("qualityLimitationReason"),
            "forwardedLayer": layerOf[(who, layer)],
        }
        entry.update(
            analyse(
                consumer,
                references,
                since,
                until,
                args.source_frames,
            )
        )
        result["layers"].append(entry)
    result.update(
        {
            "width": args.width,
            "height": args.height,
            "encodings": encodings,
            "windowSeconds": round(elapsed, 2),
            "warmupSeconds": args.warmup,
            "chromium": chromium.version,
            "sourceFrames": args.source_frames,
        }
    )
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        "| layer | encoder | maxBitrate kbps | router kbps | source fps | encoded fps "
        "| decoded fps | size | PSNR dB (p5) | PSNR held | SSIM | notes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    rows = sorted(result["layers"], key=lambda e: (e["layer"], e["encoder"] != "ours"))
    for e in rows:
        notes = []
        if e.get("qualityLimitationReason") not in (None, "none"):
            notes.append(f"limited: {e['qualityLimitationReason']}")
        for key, label in (
            ("incompleteFrames", "incomplete"),
            ("decodeErrors", "decode errors"),
            ("unidentified", "unidentified"),
        ):
            if e.get(key):
                notes.append(f"{e[key]} {label}")
        if e.get("forwardedLayer") != e["layer"]:
            notes.append(f"router forwarded layer {e.get('forwardedLayer')}")
        psnrText = "-" if e["psnrMean"] is None else f"{e['psnrMean']:.1f} ({e['psnrP5']:.1f})"
        ssimText = "-" if e["ssimMean"] is None else f"{e['ssimMean']:.3f}"
        heldText = "-" if e["psnrHeld"] is None else f"{e['psnrHeld']:.1f}"
        size = "/".join(e["sizes"]) or e["encodedSize"]
        lines.append(
            f"| {e['layer']} | {e['encoder']} | {e['maxBitrate'] / 1000:.0f} "
            f"| {e['routerKbps']:.0f} | {e['sourceFps']:.1f} | {e['encodedFps']:.1f} "
            f"| {e['decodedFps']:.1f} | {size} | {psnrText} | {heldText} | {ssimText} "
            f"| {', '.join(notes)} |"
        )
    return "\n".join(lines)


def parseArgs(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--encodings", choices=["cli", "demo"], default="cli")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds after all layers scored")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument(
        "--source-frames",
        type=int,
        help="frames of the looping source (default: the window's, so both encoders are "
        "measured over the same pictures)",
    )
    parser.add_argument("--sfu-port", type=int, help="a running local SFU (else one is started)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parseArgs(argv)
    if args.source_frames is None:
        args.source_frames = round(args.window * FPS)
    OUT.mkdir(parents=True, exist_ok=True)
    source = OUT / f"pattern-{args.width}x{args.height}-{args.source_frames}.y4m"
    writeY4m(source, args.width, args.height, args.source_frames)
    own: LocalSfu | None = None
    sfu: LocalSfu | RunningSfu
    if args.sfu_port:
        sfu = RunningSfu(args.sfu_port)
    else:
        own = sfu = LocalSfu().start()
    try:
        with Chromium(extraArgs=[f"--use-file-for-fake-video-capture={source}"]) as chromium:
            result = asyncio.run(run(args, sfu, chromium))
    finally:
        if own is not None:
            own.stop()
    print(table(result), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
