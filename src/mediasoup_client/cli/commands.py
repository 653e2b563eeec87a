"""``produce`` and ``consume``: set up, run the live loop, clean up, summarise."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from ..errors import InvalidStateError, UnsupportedError
from ..netem import RelayProcess
from ..producer import Producer
from ..signaling.protoo import ProtooError
from ..signaling.room_client import RoomClient
from . import local_room
from .controls import NEXT_LAYER
from .impair import relayFigures, startRelay
from .options import (
    CliError,
    audioCodecOptions,
    jsonDumps,
    pickVideoCodec,
    randomId,
    roomUrl,
    videoEncodings,
    withoutPeer,
)
from .receiving import Receiver, checkOutputPath
from .session import Outcome, RunLoop, engineFactory, joinRoom, startLocalSfu
from .sources import Sources, openSources
from .stats import RunRecord, Sampler, writePlot

logger = logging.getLogger(__name__)

# Exit status when the run worked but the router received nothing at all.
EXIT_NOTHING_RECEIVED = 3


async def produce(args: argparse.Namespace) -> int:
    # Everything that can be checked without a network fails here, before anything starts.
    sourceSize = _size(args)
    encodings = videoEncodings(
        simulcast=args.simulcast,
        encodings=args.encodings,
        maxBitrate=args.max_bitrate,
        width=sourceSize[0],
        height=sourceSize[1],
        fps=sourceSize[2],
    )
    codecOptions = audioCodecOptions(
        stereo=args.opus_stereo, fec=args.opus_fec, dtx=args.opus_dtx, ptime=args.opus_ptime
    )
    if (args.record or args.snapshot) and not args.loopback:
        raise CliError("--record and --snapshot on produce need --loopback (or use consume)")
    for option, path in (("--plot", args.plot), ("--record", args.record)):
        if path:
            checkOutputPath(path, option)
    if args.snapshot:
        checkOutputPath(args.snapshot, "--snapshot")
    if args.plot:
        _requireMatplotlib()
    url = roomUrl(args.url, roomId=args.room) if args.url else None
    handlerFactory = engineFactory(args.engine)
    sources = openSources(
        file=args.file,
        device=args.device,
        videoDevice=args.video_device,
        audioDevice=args.audio_device,
        audio=not args.no_audio,
        video=not args.no_video,
        width=args.width,
        height=args.height,
        fps=args.fps,
        stereo=args.opus_stereo,
        loop=args.loop,
    )

    async with contextlib.AsyncExitStack() as stack:
        stack.callback(sources.stop)
        if url is None:
            sfu = await startLocalSfu()
            if not args.debug:
                # Runs after stop() (callbacks unwind in reverse): no log file per run.
                stack.callback(sfu.logPath.unlink, missing_ok=True)
            stack.callback(sfu.stop)
            local_room.publish(sfu.port)
            stack.callback(local_room.unpublish)
            url = sfu.url_for(args.room or randomId(), randomId())
        relay, hook = await startRelay(args.impair, stack, direction="send")
        client = await joinRoom(
            url,
            handlerFactory=handlerFactory,
            displayName=args.display_name,
            consume=False,
            transportInfoHook=hook,
        )
        stack.push_async_callback(client.close)
        receiverClient: RoomClient | None = None
        receiver: Receiver | None = None
        if args.loopback:
            # Joined before producing, so the server hands it our producers as they appear.
            receiverClient = await joinRoom(
                roomUrl(withoutPeer(url)),
                handlerFactory=handlerFactory,
                displayName=f"{args.display_name} (loopback)",
                produce=False,
            )
            stack.push_async_callback(receiverClient.close)
            receiver = Receiver(receiverClient, record=args.record, snapshot=args.snapshot)
            stack.push_async_callback(receiver.close)
        producers = await _produceAll(client, sources, args, encodings, codecOptions)
        outcome = await _runProducers(
            client, producers, sources, args, url, receiverClient, receiver, relay
        )
    # Everything is closed here: the recording is complete, the SFU stopped.
    return _finish(outcome, args, producing=args.engine != "fake", receiver=receiver)


async def consume(args: argparse.Namespace) -> int:
    for option, path in (("--record", args.record), ("--snapshot", args.snapshot)):
        if path:
            checkOutputPath(path, option)
    if args.url:
        url = roomUrl(args.url, roomId=args.room, needRoom=True)
    elif args.room:
        port = local_room.find()
        if port is None:
            raise CliError(
                "no local SFU is running: start `mediasoup-client produce --room "
                f"{args.room}` first, or give the ROOM_URL that produce printed"
            )
        url = roomUrl(f"ws://127.0.0.1:{port}/", roomId=args.room)
    else:
        raise CliError(
            "consume needs a ROOM_URL (mediasoup-client produce prints one) "
            "or --room ID of a running `mediasoup-client produce --room ID`"
        )
    handlerFactory = engineFactory(args.engine)
    async with contextlib.AsyncExitStack() as stack:
        relay, hook = await startRelay(args.impair, stack, direction="recv")
        client = await joinRoom(
            url,
            handlerFactory=handlerFactory,
            displayName=args.display_name,
            produce=False,
            transportInfoHook=hook,
        )
        stack.push_async_callback(client.close)
        receiver = Receiver(client, record=args.record, snapshot=args.snapshot)
        stack.push_async_callback(receiver.close)
        sampler = Sampler()
        preferred: dict[str, int | None] = {"layer": args.layer}

        async def applyLayer(consumer: Any) -> None:
            layer = preferred["layer"]
            if layer is not None and consumer.kind == "video" and not consumer.closed:
                await client.setConsumerPreferredLayers(consumer, layer)

        layerTasks: set[asyncio.Future[None]] = set()

        def onConsumer(consumer: Any) -> None:
            task = asyncio.ensure_future(_quietly(applyLayer(consumer)))
            layerTasks.add(task)
            task.add_done_callback(layerTasks.discard)

        client.on("newconsumer", onConsumer)
        for existing in list(client.consumers.values()):
            onConsumer(existing)

        async def takeTick(elapsed: float) -> dict[str, Any]:
            consumers = list(client.consumers.values())
            samples = await asyncio.gather(
                *(sampler.consumer(client, c, receiver.frames.get(c.id)) for c in consumers)
            )
            tick: dict[str, Any] = {
                "type": "stats",
                "time": round(elapsed, 3),
                "transports": {"recv": client.recvTransport.connectionState},
                "producers": [],
                "consumers": list(samples),
            }
            recording = receiver.recordingStats()
            if recording is not None:
                tick["recording"] = recording
            if relay is not None:
                tick["impairment"] = await relayFigures(relay)
            return tick

        paused = {"value": False}

        async def onKey(key: str) -> None:
            if key.isdigit():
                preferred["layer"] = int(key)
                for consumer in list(client.consumers.values()):
                    await applyLayer(consumer)
                loop.emit({"type": "event", "event": "preferredLayer", "layer": int(key)})
            elif key in ("p", "P"):
                paused["value"] = not paused["value"]
                method = "pauseConsumer" if paused["value"] else "resumeConsumer"
                for consumer in list(client.consumers.values()):
                    if paused["value"]:
                        consumer.pause()
                    else:
                        consumer.resume()
                    await client.request(method, {"consumerId": consumer.id})
                loop.emit({"type": "event", "event": "paused" if paused["value"] else "resumed"})

        header = {"command": "consume", "url": url, "duration": args.duration, "consuming": True}
        loop = RunLoop(takeTick, onKey, header, args.duration, args.json)
        client.on("disconnected", lambda: loop.fail("the connection to the room was lost"))
        _emitJoined(loop, url, None, args.json)
        outcome = await loop.run()
    return _finish(outcome, args, producing=False, receiver=receiver)


async def _produceAll(
    client: RoomClient,
    sources: Sources,
    args: argparse.Namespace,
    encodings: Any,
    codecOptions: Any,
) -> list[Producer]:
    producers = []
    if sources.video is not None:
        options: dict[str, Any] = {"encodings": encodings, "appData": {"source": sources.label}}
        if args.codec:
            options["codec"] = pickVideoCodec(client.device.sendRtpCapabilities, args.codec)
        producers.append(await _produceOne(client, sources.video, "video", options))
    if sources.audio is not None:
        options = {"codecOptions": codecOptions, "appData": {"source": sources.label}}
        producers.append(await _produceOne(client, sources.audio, "audio", options))
    return producers


async def _produceOne(
    client: RoomClient, track: Any, kind: str, options: dict[str, Any]
) -> Producer:
    try:
        return await client.produce(track, **options)
    except ProtooError as error:
        raise CliError(f"the room refused the {kind} producer: {error.reason}") from None
    except (ConnectionError, TimeoutError) as error:
        raise CliError(f"cannot produce {kind}: {_firstLine(error)}") from None
    except (UnsupportedError, InvalidStateError, TypeError, ValueError) as error:
        raise CliError(f"cannot produce {kind}: {_firstLine(error)}") from None


async def _runProducers(
    client: RoomClient,
    producers: list[Producer],
    sources: Sources,
    args: argparse.Namespace,
    url: str,
    receiverClient: RoomClient | None,
    receiver: Receiver | None,
    relay: RelayProcess | None = None,
) -> Outcome:
    sampler = Sampler()
    video = [p for p in producers if p.kind == "video"]

    async def takeTick(elapsed: float) -> dict[str, Any]:
        samples = await asyncio.gather(*(sampler.producer(client, p) for p in producers))
        tick: dict[str, Any] = {
            "type": "stats",
            "time": round(elapsed, 3),
            "transports": {"send": client.sendTransport.connectionState},
            "producers": list(samples),
        }
        if receiverClient is not None and receiver is not None:
            consumers = list(receiverClient.consumers.values())
            tick["consumers"] = list(
                await asyncio.gather(
                    *(
                        sampler.consumer(receiverClient, c, receiver.frames.get(c.id))
                        for c in consumers
                    )
                )
            )
            recording = receiver.recordingStats()
            if recording is not None:
                tick["recording"] = recording
        if relay is not None:
            tick["impairment"] = await relayFigures(relay)
        return tick

    async def onKey(key: str) -> None:
        if key in ("p", "P"):
            pause = not any(p.paused for p in producers)
            for producer in producers:
                if pause:
                    await client.pauseProducer(producer)
                else:
                    await client.resumeProducer(producer)
            loop.emit({"type": "event", "event": "paused" if pause else "resumed"})
        elif key.isdigit() or key == NEXT_LAYER:
            for producer in video:
                layers = len(producer.rtpParameters.get("encodings") or [{}])
                if key == NEXT_LAYER:
                    current = producer.maxSpatialLayer
                    layer = 0 if current is None or current + 1 >= layers else current + 1
                else:
                    layer = min(int(key), layers - 1)
                await producer.setMaxSpatialLayer(layer)
                loop.emit({"type": "event", "event": "maxSpatialLayer", "layer": layer})

    consumeUrl = withoutPeer(url)
    header = {
        "command": "produce",
        "url": url,
        "consumeUrl": consumeUrl,
        "source": sources.label,
        "duration": args.duration,
        "consuming": receiverClient is not None,
    }
    loop = RunLoop(takeTick, onKey, header, args.duration, args.json)
    client.on("disconnected", lambda: loop.fail("the connection to the room was lost"))

    def onConnectionState(state: str) -> None:
        if state == "failed":
            loop.fail("the media connection to the router failed")

    client.sendTransport.on("connectionstatechange", onConnectionState)
    ended: set[str] = set()

    def onTrackEnded(producer: Producer) -> None:
        ended.add(producer.id)
        if len(ended) == len(producers):
            loop.finish()  # the file or device has nothing more

    for producer in producers:
        producer.on("trackended", lambda p=producer: onTrackEnded(p))
    _emitJoined(loop, url, consumeUrl, args.json, [p.id for p in producers])
    outcome = await loop.run()
    if args.plot:
        try:
            writePlot(outcome.record, args.plot)
        except Exception as error:
            logger.warning("--plot: cannot write %s: %s", args.plot, _firstLine(error))
    return outcome


def _emitJoined(
    loop: RunLoop,
    url: str,
    consumeUrl: str | None,
    jsonOutput: bool,
    producerIds: list[str] | None = None,
) -> None:
    line: dict[str, Any] = {"type": "joined", "url": url}
    if consumeUrl:
        line["consumeUrl"] = consumeUrl
    if producerIds is not None:
        line["producers"] = producerIds
    if jsonOutput:
        print(jsonDumps(line), flush=True)


def _finish(
    outcome: Outcome, args: argparse.Namespace, *, producing: bool, receiver: Receiver | None
) -> int:
    summary = outcome.record.summary()
    recording = receiver.recordingStats() if receiver is not None else None
    if recording is not None:
        summary["recording"] = recording
    if args.json:
        print(jsonDumps(summary), flush=True)
    else:
        from rich.console import Console

        from .view import renderSummary

        Console().print(renderSummary(summary))
    if outcome.failure:
        raise CliError(outcome.failure)
    plot = getattr(args, "plot", None)  # produce only
    if plot and Path(plot).exists() and not args.json:
        print(f"plot written to {plot}", file=sys.stderr)
    if args.snapshot and receiver is not None and not receiver.snapshotSaved:
        raise CliError("no video frame arrived: no snapshot written")
    if args.record and receiver is not None and not receiver.recording:
        raise CliError("nothing arrived to record: no recording written")
    if recording is not None and sum(recording["framesDropped"].values()):
        dropped = ", ".join(f"{kind} {n}" for kind, n in recording["framesDropped"].items())
        print(
            f"mediasoup-client: the recording dropped frames it could not write in time "
            f"({dropped})",
            file=sys.stderr,
        )
    if producing and _nothingReceived(outcome.record) and not outcome.interrupted:
        print("mediasoup-client: the router received no media", file=sys.stderr)
        return EXIT_NOTHING_RECEIVED
    return 0


def _nothingReceived(record: RunRecord) -> bool:
    layers = [layer for totals in record.totals.values() for layer in totals.values()]
    return bool(layers) and all(layer.packetCount == 0 for layer in layers)


def _size(args: argparse.Namespace) -> tuple[int, int, float]:
    """The video size the encodings are planned for (a file's own size is unknown here)."""
    from .sources import DEFAULT_FPS, DEFAULT_HEIGHT, DEFAULT_WIDTH

    return (
        args.width or DEFAULT_WIDTH,
        args.height or DEFAULT_HEIGHT,
        args.fps or DEFAULT_FPS,
    )


def _requireMatplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CliError("--plot needs matplotlib: pip install 'mediasoup-client[cli]'") from None


async def _quietly(work: Any) -> None:
    try:
        await work
    except Exception as error:
        logger.warning("%s", _firstLine(error))


def _firstLine(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
