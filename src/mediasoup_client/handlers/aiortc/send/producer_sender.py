"""ProducerSender: everything one producer sends, on one ``RtpPort``.

It owns one RTP stream per encoding (simulcast), the pipeline that reads the track and encodes
it (video: one encoder per layer; audio: Opus), the RTCP it answers (NACK over RTX, PLI/FIR,
REMB, receiver reports) and the RTCP it sends (SR + SDES every ~1 s, BYE on stop).

Nothing is read or sent before the port is connected; afterwards frames are dropped, never
queued, while it is not. Paused means no encoding and no media RTP at all (with or without
``zeroRtpOnPause``); resuming starts with a key frame.

Events (pyee): ``trackended`` when the source track ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from pyee.asyncio import AsyncIOEventEmitter

from ....types import (
    ProducerCodecOptions,
    RtpCodecParameters,
    RtpEncodingParameters,
    RtpParameters,
    StatsReport,
)
from ..rtp_port import RtpPort
from . import rtcp, stats
from .audio_pipeline import AudioPipeline
from .bitrate import BudgetOptions
from .encoders import (
    OpusSettings,
    opusCutoff,
    opusDefaultBitrate,
    opusFrameDuration,
)
from .rtp_header import ntpTime
from .rtp_stream import RtpStream, RtxConfig
from .video_pipeline import VideoPipeline

logger = logging.getLogger(__name__)

SR_INTERVAL = 1.0  # seconds, per stream, randomised +-25 %
_RTCP_TICK = 0.25


def _rtxPayloadType(codecs: list[RtpCodecParameters], payloadType: int) -> int | None:
    for codec in codecs:
        if codec["mimeType"].lower().endswith("/rtx"):
            apt = (codec.get("parameters") or {}).get("apt")
            if apt is not None and int(apt) == payloadType:
                return codec["payloadType"]
    return None


def _kbps(value: object) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value * 1000)
    return None


def videoBudget(codec: RtpCodecParameters, options: ProducerCodecOptions | None) -> BudgetOptions:
    """videoGoogle{Start,Max,Min}Bitrate (kbps), from codecOptions or the codec parameters."""
    parameters = codec.get("parameters") or {}
    opts: dict[str, Any] = dict(options or {})

    def pick(option: str, parameter: str) -> int | None:
        return _kbps(opts[option]) if option in opts else _kbps(parameters.get(parameter))

    return BudgetOptions(
        startBitrate=pick("videoGoogleStartBitrate", "x-google-start-bitrate"),
        maxBitrate=pick("videoGoogleMaxBitrate", "x-google-max-bitrate"),
        minBitrate=pick("videoGoogleMinBitrate", "x-google-min-bitrate"),
    )


def opusSettings(
    codec: RtpCodecParameters, options: ProducerCodecOptions | None
) -> tuple[OpusSettings, bool]:
    """The Opus encoder settings and whether DTX is on, from codecOptions (first) or the
    codec parameters they were written into."""
    parameters = codec.get("parameters") or {}
    opts: dict[str, Any] = dict(options or {})

    def flag(option: str, parameter: str, default: bool = False) -> bool:
        if option in opts:
            return bool(opts[option])
        value = parameters.get(parameter)
        return default if value is None else str(value) in ("1", "true", "True")

    def number(option: str, parameter: str) -> int | None:
        value = opts.get(option, parameters.get(parameter))
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return int(value)
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return None

    channels = 2 if flag("opusStereo", "stereo") else 1
    max_playback_rate = number("opusMaxPlaybackRate", "maxplaybackrate")
    max_average = number("opusMaxAverageBitrate", "maxaveragebitrate")
    bitrate = (
        max(6000, min(510000, max_average))
        if max_average
        else opusDefaultBitrate(channels, max_playback_rate)
    )
    settings = OpusSettings(
        channels=channels,
        frameDuration=opusFrameDuration(number("opusPtime", "ptime")),
        bitrate=bitrate,
        fec=flag("opusFec", "useinbandfec"),
        cutoff=opusCutoff(max_playback_rate),
    )
    return settings, flag("opusDtx", "usedtx")


class ProducerSender(AsyncIOEventEmitter):
    def __init__(
        self,
        *,
        port: RtpPort,
        track: Any,
        rtpParameters: RtpParameters,
        codecOptions: ProducerCodecOptions | None = None,
        zeroRtpOnPause: bool = False,
    ) -> None:
        super().__init__()
        codecs = rtpParameters["codecs"]
        if not codecs:
            raise TypeError("rtpParameters has no codecs")
        codec = codecs[0]
        mime_type = codec["mimeType"].lower()
        self.kind = "audio" if mime_type.startswith("audio/") else "video"
        if self.kind == "audio" and mime_type != "audio/opus":
            raise TypeError(f"cannot send {codec['mimeType']}")
        self._port = port
        self._track = track
        self._codec = codec
        self._zero_rtp_on_pause = zeroRtpOnPause
        self._cname = (rtpParameters.get("rtcp") or {}).get("cname")
        encodings: list[RtpEncodingParameters] = copy.deepcopy(
            rtpParameters.get("encodings") or [{}]
        )
        if self.kind == "audio":
            encodings = encodings[:1]
        for encoding in encodings:
            encoding.setdefault("ssrc", random.getrandbits(32))
        self._encodings = encodings
        rtx_payload_type = _rtxPayloadType(codecs, codec["payloadType"])
        extension_ids = {
            ext["uri"]: ext["id"] for ext in rtpParameters.get("headerExtensions") or []
        }
        # One media clock per producer: every layer of one frame has the same RTP timestamp.
        timestamp_offset = random.getrandbits(32)
        self.streams: list[RtpStream] = []
        for encoding in encodings:
            rtx = encoding.get("rtx")
            self.streams.append(
                RtpStream(
                    port=port,
                    ssrc=encoding["ssrc"],
                    payloadType=codec["payloadType"],
                    clockRate=codec["clockRate"],
                    extensionIds=extension_ids,
                    mid=rtpParameters.get("mid"),
                    rid=encoding.get("rid"),
                    rtx=(
                        RtxConfig(ssrc=rtx["ssrc"], payloadType=rtx_payload_type)
                        if rtx is not None and rtx_payload_type is not None
                        else None
                    ),
                    timestampOffset=timestamp_offset,
                )
            )
        self._video: VideoPipeline | None = None
        self._audio: AudioPipeline | None = None
        if self.kind == "video":
            self._video = VideoPipeline(
                port=port,
                track=track,
                encodings=encodings,
                streams=self.streams,
                mimeType=mime_type,
                budget=videoBudget(codec, codecOptions),
                onTrackEnded=self._onTrackEnded,
            )
        else:
            settings, dtx = opusSettings(codec, codecOptions)
            self._audio = AudioPipeline(
                port=port,
                track=track,
                stream=self.streams[0],
                settings=settings,
                dtx=dtx or bool(encodings[0].get("dtx")),
                onTrackEnded=self._onTrackEnded,
            )
        self._paused = False
        self._started = False
        self._closed = False
        self._main: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._ended_tracks: set[int] = set()
        self._watchTrack(track)

    # Properties.

    @property
    def track(self) -> Any:
        return self._track

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def encodings(self) -> list[RtpEncodingParameters]:
        """The encodings as the sender currently applies them (a copy)."""
        return copy.deepcopy(self._encodings)

    @property
    def ssrcs(self) -> list[int]:
        """Media SSRCs then RTX SSRCs."""
        media = [s.ssrc for s in self.streams]
        return media + [s.rtx.ssrc for s in self.streams if s.rtx is not None]

    # Life cycle.

    def start(self) -> None:
        """Begin: wait for the port, then read, encode and send. Idempotent."""
        if self._started or self._closed:
            return
        self._started = True
        self._unsubscribe = self._port.listenRtcp(self.ssrcs, self._onRtcp)
        self._main = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop for good: no more RTP; RTCP BYE for the streams that sent. Does not stop the
        track (the Producer decides that)."""
        if self._closed:
            return
        self._closed = True
        self._unwatchTrack(self._track)
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
            self._main = None
        await self._pipelineStop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        sent = [s.ssrc for s in self.streams if s.hasSent]
        if sent and self._port.connected:
            with contextlib.suppress(ConnectionError):
                await self._port.sendRtcp(rtcp.bye(sent))

    async def _pipelineStop(self) -> None:
        if self._video is not None:
            await self._video.stop()
        if self._audio is not None:
            await self._audio.stop()

    async def _run(self) -> None:
        try:
            await self._port.waitConnected()
        except ConnectionError:
            logger.debug("transport closed before the sender could start")
            return
        if self._closed:
            return
        if self._video is not None:
            self._video.start()
        if self._audio is not None:
            self._audio.start()
        await self._rtcpLoop()

    # Controls.

    def pause(self) -> None:
        self._paused = True
        if self._video is not None:
            self._video.pause()
        if self._audio is not None:
            self._audio.pause()

    def resume(self) -> None:
        self._paused = False
        if self._video is not None:
            self._video.resume()
        if self._audio is not None:
            self._audio.resume()

    async def replaceTrack(self, track: Any) -> None:
        """Send ``track`` from now on (None: send nothing). RTP timestamps keep increasing
        and the next video frame of every layer is a key frame."""
        if self._closed:
            return
        self._unwatchTrack(self._track)
        self._track = track
        self._watchTrack(track)
        if self._video is not None:
            await self._video.replaceTrack(track)
        if self._audio is not None:
            await self._audio.replaceTrack(track)

    def setMaxSpatialLayer(self, spatialLayer: int) -> None:
        """Layers above ``spatialLayer`` stop now; raising it brings them back with key
        frames (the encodings' ``active`` flags change, as in mediasoup-client)."""
        if self._video is not None:
            self._video.setMaxSpatialLayer(spatialLayer)

    def setRtpEncodingParameters(self, params: dict[str, Any]) -> None:
        """Merge ``params`` (maxBitrate, maxFramerate, scaleResolutionDownBy, active, ...)
        into every encoding and apply them at once."""
        if self._video is not None:
            self._video.setEncodingParameters(params)
        elif self._audio is not None:
            self._encodings[0].update(params)  # type: ignore[typeddict-item]
            if "dtx" in params:
                self._audio.dtx = bool(params["dtx"])
            if "active" in params:
                if params["active"] is False:
                    self._audio.pause()
                elif not self._paused:
                    self._audio.resume()

    def requestKeyFrame(self) -> None:
        """Ask every video layer for a key frame (as a PLI would)."""
        if self._video is not None:
            for layer in self._video.layers:
                layer.requestKeyFrame(remote=True)

    # Stats.

    def getStats(self) -> StatsReport:
        now = time.time() * 1000
        report: StatsReport = {}
        codec_stats = stats.codecStats(self._codec, now)
        codec_id = codec_stats["id"]
        report[codec_id] = codec_stats
        if self._video is not None:
            for layer in self._video.layers:
                entry = stats.outboundStats(
                    layer.stream,
                    kind="video",
                    codecId=codec_id,
                    timestamp=now,
                    active=layer.sending,
                )
                limited = layer.gate.current < layer.maxBitrate or (
                    not layer.sending and layer.gate.current == 0 and layer.width > 0
                )
                entry.update(
                    {
                        "framesEncoded": layer.framesEncoded,
                        "keyFramesEncoded": layer.keyFramesEncoded,
                        "framesSent": layer.stream.framesSent,
                        "frameWidth": layer.lastEncodedWidth,
                        "frameHeight": layer.lastEncodedHeight,
                        "framesPerSecond": layer.framesPerSecond,
                        "targetBitrate": layer.gate.current,
                        "totalEncodeTime": layer.totalEncodeTime,
                        "framesDropped": layer.framesDropped,
                        "pliCount": layer.stream.pliCount,
                        "firCount": layer.stream.firCount,
                        "encoderImplementation": layer.implementation,
                        "scaleResolutionDownBy": layer.scale,
                        "qualityLimitationReason": (
                            "bandwidth" if limited and self._video.estimate else "none"
                        ),
                    }
                )
                if layer.maxFramerate:
                    entry["maxFramerate"] = layer.maxFramerate
                report[entry["id"]] = entry
        elif self._audio is not None:
            stream = self._audio.stream
            entry = stats.outboundStats(
                stream,
                kind="audio",
                codecId=codec_id,
                timestamp=now,
                active=not self._paused and not self._audio.paused,
            )
            entry["targetBitrate"] = self._audio.settings.bitrate
            entry["dtxPacketsSuppressed"] = self._audio.packetsSuppressed
            report[entry["id"]] = entry
        for stream in self.streams:
            remote = stats.remoteInboundStats(stream, kind=self.kind, codecId=codec_id)
            if remote is not None:
                report[remote["id"]] = remote
        return report

    # RTCP.

    async def _onRtcp(self, packet: Any) -> None:
        if self._closed:
            return
        by_ssrc = {s.ssrc: s for s in self.streams}
        for block in rtcp.reportBlocks(packet, set(by_ssrc), ntpTime()):
            by_ssrc[block.ssrc].onReportBlock(block)
        nack = rtcp.nackedSequenceNumbers(packet)
        if nack is not None and nack[0] in by_ssrc:
            await by_ssrc[nack[0]].retransmit(nack[1])
            return
        pli = rtcp.pliSsrc(packet)
        if pli is not None and pli in by_ssrc:
            by_ssrc[pli].pliCount += 1
            if self._video is not None:
                self._video.requestKeyFrame(pli)
            return
        for ssrc, _sequence in rtcp.firRequests(packet):
            if ssrc in by_ssrc:
                by_ssrc[ssrc].firCount += 1
                if self._video is not None:
                    self._video.requestKeyFrame(ssrc)
        estimate = rtcp.remb(packet)
        if estimate is not None and self._video is not None:
            self._video.onRemb(*estimate)

    async def _rtcpLoop(self) -> None:
        next_report: dict[int, float] = {}
        while True:
            await asyncio.sleep(_RTCP_TICK)
            if not self._port.connected:
                continue
            now = time.monotonic()
            for stream in self.streams:
                if not stream.hasSent or now < next_report.get(stream.ssrc, 0.0):
                    continue
                packet = stream.senderReport(self._cname)
                if packet is None:
                    continue
                next_report[stream.ssrc] = now + SR_INTERVAL * random.uniform(0.75, 1.25)
                try:
                    await self._port.sendRtcp(packet)
                except ConnectionError:
                    break

    # Track end.

    def _watchTrack(self, track: Any) -> None:
        if track is not None and hasattr(track, "on"):
            track.on("ended", self._onTrackEndedEvent)

    def _unwatchTrack(self, track: Any) -> None:
        if track is not None and hasattr(track, "remove_listener"):
            with contextlib.suppress(Exception):
                track.remove_listener("ended", self._onTrackEndedEvent)

    def _onTrackEndedEvent(self) -> None:
        self._onTrackEnded(self._track)

    def _onTrackEnded(self, track: Any) -> None:
        if track is None or track is not self._track or id(track) in self._ended_tracks:
            return
        self._ended_tracks.add(id(track))
        if not self._closed:
            self.emit("trackended")
