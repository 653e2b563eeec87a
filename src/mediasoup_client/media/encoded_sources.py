"""Pre-encoded sources: tracks whose ``recv()`` delivers encoded packets (H264, VP8, Opus)
that a producer sends with no decoder and no encoder (``handlers/aiortc/send/passthrough``).

- ``EncodedVideoSource(*sources)``: one source, or several renditions of one picture
  (simulcast, lowest first). A source is a file path or a stream URL (RTSP, RTMP, HTTP...)
  demuxed by PyAV, or an iterator / async iterator of the application's ``EncodedPacket``s.
- ``EncodedAudioSource(source)``: Opus packets from a file (WebM, Ogg, Matroska, MP4) or an
  iterator.
- ``EncodedMediaPlayer(path)``: one demuxer for a file's video and Opus audio, in sync.

Files are paced in real time by their timestamps (``loop=True`` starts over with timestamps
that keep increasing); live URLs and iterators deliver packets as they come. H264 from MP4,
Matroska or FLV (length-prefixed NAL units, parameter sets in the avcC extradata) becomes
Annex B with SPS and PPS in front of every IDR, which mediasoup needs to see a key frame.
H264 with B-frames is refused: WebRTC receivers decode frames in the order they arrive.

A key-frame request from the router (PLI/FIR, e.g. for a new consumer) is emitted as
``keyframerequested`` (the rendition's index) for an application that controls its encoder; a
file has no encoder to ask, so its next key frame answers (make files with short GOPs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import h264_profile_level_id as h264
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import UnsupportedError
from .bitstream import (
    NAL_PPS,
    NAL_SPS,
    ParameterSets,
    annexBUnits,
    isAnnexB,
    lengthPrefixedUnits,
    nalType,
    opusPacketSamples,
    parseAvcC,
    vp8IsKeyFrame,
)
from .encoded import EncodedPacket, EncodedStreamInfo, Rendition

logger = logging.getLogger(__name__)

# Packets waiting for a track's reader; past this the oldest go (a track nobody reads).
MAX_QUEUED = 300
# Packets read to find the parameter sets of an Annex B stream without extradata.
PRIME_PACKETS = 300

_VIDEO_CODECS = {"h264": "video/H264", "vp8": "video/VP8"}

SourceArg = str | os.PathLike[str] | Iterable[Any] | AsyncIterable[Any]


def _isUrl(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


class _Clock:
    """The wall-clock origin shared by the tracks of one source (renditions, a file's audio
    and video), so they stay together: media time ``t`` is due at ``anchor + (t - origin)``,
    the anchor being the first packet asked for."""

    def __init__(self) -> None:
        self._anchor: float | None = None
        self._origin = 0.0

    def due(self, mediaTime: float) -> float:
        if self._anchor is None:
            self._anchor, self._origin = time.monotonic(), mediaTime
        return self._anchor + (mediaTime - self._origin)


class _Track(MediaStreamTrack):
    """A track fed by feeds: demuxers of local files it reads from itself when it needs a
    packet (on the loop, no thread: a local read takes microseconds), and feeds that push
    (iterators, network streams read in a thread). ``recv()`` returns the earliest packet
    available, at its due time when ``paced``. The track ends when all its feeds ended."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._packets: deque[EncodedPacket] = deque()  # pushed ones
        self._available = asyncio.Event()
        self._feeds: list[_Feed] = []
        self._pulled: list[_Demuxer] = []
        self._open_pushers = 0
        self._started = False
        self._clock: _Clock | None = None  # pacing, when set
        self.packetsDelivered = 0
        self.packetsDropped = 0  # nobody read them in time
        self.packetsRejected = 0  # from an iterator: not a valid packet (see lastError)
        self.lastError: BaseException | None = None

    def _addFeed(self, feed: _Feed, clock: _Clock | None) -> None:
        self._feeds.append(feed)
        if isinstance(feed, _Demuxer) and not feed.threaded:
            self._pulled.append(feed)
        else:
            self._open_pushers += 1
        if clock is not None:
            self._clock = clock

    async def recv(self) -> EncodedPacket:  # type: ignore[override]  # packets, not frames
        if not self._started:
            self._started = True
            loop = asyncio.get_running_loop()
            for feed in {id(f): f for f in self._feeds}.values():
                feed.start(loop)
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            source, timestamp = self._earliest()
            if source is not None:
                break
            if self._open_pushers <= 0:
                MediaStreamTrack.stop(self)  # nothing more will come: "ended"
                raise MediaStreamError
            self._available.clear()
            await self._available.wait()
        if self._clock is not None:
            delay = self._clock.due(timestamp) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.readyState != "live":
                raise MediaStreamError
        self.packetsDelivered += 1
        if source is self._packets:
            return self._packets.popleft()
        assert isinstance(source, _Demuxer)
        return source.take(self)

    def _earliest(self) -> tuple[object | None, float]:
        best: object | None = None
        when = 0.0
        for demuxer in self._pulled:
            head = demuxer.peek(self)
            if head is not None and (best is None or head.timestamp < when):
                best, when = demuxer, head.timestamp
        if self._packets and (best is None or self._packets[0].timestamp < when):
            best, when = self._packets, self._packets[0].timestamp
        return best, when

    def stop(self) -> None:
        super().stop()
        self._packets.clear()
        self._available.set()
        for feed in self._feeds:
            feed.release(self)

    # Pushing feeds (on the loop: threads hop there first).
    def _deliver(self, packet: EncodedPacket) -> None:
        if self.readyState != "live":
            return
        if len(self._packets) >= MAX_QUEUED:
            self._packets.popleft()
            self.packetsDropped += 1
        self._packets.append(packet)
        self._available.set()

    def _feedEnded(self, error: BaseException | None) -> None:
        if error is not None:
            self.lastError = error
        self._open_pushers -= 1
        self._available.set()

    def _rejected(self, error: BaseException) -> None:
        self.packetsRejected += 1
        if self.lastError is None or str(self.lastError) != str(error):
            logger.warning("%s source: packet dropped: %s", self.kind, error)
        self.lastError = error


class _Feed:
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        raise NotImplementedError

    def release(self, track: _Track) -> None:
        """``track`` stopped; the feed stops once none of its tracks reads."""
        raise NotImplementedError


# Files and streams.


@dataclass
class _StreamReader:
    """How one demuxed stream becomes EncodedPackets for its track."""

    track: _Track
    layer: int
    convert: Callable[[bytes, bool], tuple[bytes, bool]]
    timeBase: float
    checkKeyFrame: bool = False
    queue: deque[EncodedPacket] | None = None


class _H264Converter:
    """MP4/Matroska/FLV samples (length-prefixed, avcC extradata) or Annex B packets to Annex B
    access units with the parameter sets in front of every IDR."""

    def __init__(self, extradata: bytes | None) -> None:
        self._length_size: int | None = None
        self.parameterSets = ParameterSets()
        if extradata and extradata[0] == 1:
            config = parseAvcC(extradata)
            self._length_size = config.lengthSize
            self.parameterSets = ParameterSets(config.sps, config.pps)
        elif extradata and isAnnexB(extradata):
            units = list(annexBUnits(extradata))
            self.parameterSets = ParameterSets(
                [u for u in units if nalType(u) == NAL_SPS],
                [u for u in units if nalType(u) == NAL_PPS],
            )

    def __call__(self, data: bytes, keyFrame: bool) -> tuple[bytes, bool]:
        if self._length_size is not None:
            units = list(lengthPrefixedUnits(data, self._length_size))
        else:
            units = list(annexBUnits(data))
        return self.parameterSets.accessUnit(units)


def _passThrough(data: bytes, keyFrame: bool) -> tuple[bytes, bool]:
    return data, keyFrame


class _Demuxer(_Feed):
    """One container and the tracks of its selected streams. A local file is read on the loop
    by the tracks themselves (``peek``/``take``); a network stream (``threaded``) in a thread
    of its own, which pushes what arrives."""

    @classmethod
    def open(
        cls,
        source: str | os.PathLike[str],
        *,
        loop: bool,
        paced: bool | None,
        clock: _Clock,
        format: str | None,
        options: dict[str, str] | None,
    ) -> _Demuxer:
        """A demuxer of a local file (TypeError when there is none) or a URL. A URL is never
        looped and, unless ``paced`` says otherwise, not paced (it arrives in real time)."""
        path = os.fspath(source)
        if not _isUrl(path) and not Path(path).is_file():
            raise TypeError(f"no such media file: {path}")
        return cls(
            path,
            loop=loop and not _isUrl(path),
            paced=paced if paced is not None else not _isUrl(path),
            clock=clock,
            format=format,
            options=options,
        )

    def __init__(
        self,
        url: str,
        *,
        loop: bool,
        paced: bool,
        clock: _Clock,
        format: str | None,
        options: dict[str, str] | None,
    ) -> None:
        self.url = url
        self.threaded = _isUrl(url)
        self.paced = paced
        self.clock = clock
        self._loop_file = loop
        try:
            self.container: Any = av.open(url, format=format, options=options or {})
        except (av.FFmpegError, OSError, ValueError) as error:
            raise TypeError(f"cannot open {url}: {_reason(error)}") from None
        self._readers: dict[int, _StreamReader] = {}
        self._by_track: dict[int, _StreamReader] = {}
        self._primed: deque[Any] = deque()
        self._packets: Iterator[Any] | None = None
        self._offset = 0.0
        self._first: float | None = None
        self._end: float | None = None
        self._sent_this_round = 0
        self.ended = False
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._users: set[int] = set()
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closed = False

    @property
    def trackClock(self) -> _Clock | None:
        return self.clock if self.paced else None

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self.container.close()

    def videoStream(self) -> Any:
        streams = list(self.container.streams.video)
        if not streams:
            self.close()
            raise TypeError(f"{self.url} has no video stream")
        return streams[0]

    def audioStream(self) -> Any | None:
        streams = list(self.container.streams.audio)
        return streams[0] if streams else None

    def addVideo(self, stream: Any, track: _Track, layer: int) -> tuple[str, str | None, Rendition]:
        """Select ``stream`` for ``track``: (mimeType, profile-level-id, size)."""
        codec = stream.codec_context
        name = codec.name
        mime = _VIDEO_CODECS.get(name)
        if mime is None:
            self.close()
            raise UnsupportedError(
                f"{self.url}: its video is {name}; a pre-encoded source sends H264 or VP8"
            )
        convert: Callable[[bytes, bool], tuple[bytes, bool]] = _passThrough
        profile = None
        if name == "h264":
            if codec.has_b_frames:
                self.close()
                raise UnsupportedError(
                    f"{self.url}: H264 with B-frames (frames out of display order) cannot be "
                    "sent to WebRTC receivers; re-encode it without B-frames (x264: -bf 0, or "
                    "the baseline profile)"
                )
            try:
                converter = _H264Converter(bytes(codec.extradata or b""))
            except TypeError as error:
                self.close()
                raise TypeError(f"{self.url}: {error}") from None
            if converter.parameterSets.profileLevelId is None:
                self._prime(stream, converter)
            profile = converter.parameterSets.profileLevelId
            if profile is None:
                self.close()
                raise TypeError(f"{self.url}: no H264 SPS found (no extradata, none in-band)")
            convert = converter
        self._select(stream, _StreamReader(track, layer, convert, 0.0, name == "vp8"))
        return mime, profile, Rendition(codec.width or None, codec.height or None)

    def addAudio(self, stream: Any, track: _Track) -> int:
        codec = stream.codec_context
        if codec.name != "opus":
            self.close()
            raise UnsupportedError(
                f"{self.url}: its audio is {codec.name}; a pre-encoded audio source sends Opus"
            )
        self._select(stream, _StreamReader(track, 0, _passThrough, 0.0))
        channels = int(getattr(codec, "channels", 0) or codec.layout.nb_channels or 1)
        return 2 if channels >= 2 else 1

    def _select(self, stream: Any, reader: _StreamReader) -> None:
        reader.timeBase = float(stream.time_base)
        reader.queue = deque()
        self._readers[stream.index] = reader
        self._by_track[id(reader.track)] = reader
        self._users.add(id(reader.track))

    def _prime(self, stream: Any, converter: _H264Converter) -> None:
        """An Annex B stream without extradata: read until its first SPS (packets kept)."""
        for packet in self.container.demux(stream):
            self._primed.append(packet)
            if packet.size:
                converter(bytes(packet), bool(packet.is_keyframe))
            if converter.parameterSets.profileLevelId is not None:
                return
            if len(self._primed) >= PRIME_PACKETS:
                return

    # Reading on the loop (local files).

    def peek(self, track: _Track) -> EncodedPacket | None:
        """The next packet for ``track`` (reading the file as far as needed), or None at
        the end."""
        queue = self._by_track[id(track)].queue
        assert queue is not None
        while not queue and not self.ended:
            packet = self._next()
            if packet is not None:
                reader, encoded = packet
                assert reader.queue is not None
                if reader.track.readyState != "live":
                    continue  # a stopped track of this file
                if len(reader.queue) >= MAX_QUEUED:
                    reader.queue.popleft()
                    reader.track.packetsDropped += 1
                reader.queue.append(encoded)
        return queue[0] if queue else None

    def take(self, track: _Track) -> EncodedPacket:
        queue = self._by_track[id(track)].queue
        assert queue is not None
        return queue.popleft()

    def _next(self) -> tuple[_StreamReader, EncodedPacket] | None:
        """One packet of the file for a selected stream, or None (skipped, or the end)."""
        if self._closed:
            self.ended = True
            return None
        try:
            if self._primed:
                packet = self._primed.popleft()
            else:
                if self._packets is None:
                    streams = [self.container.streams[index] for index in self._readers]
                    self._packets = iter(self.container.demux(*streams))
                packet = next(self._packets)
        except StopIteration:
            self._rewind()
            return None
        except Exception as failure:  # a broken file or a dropped connection
            self.error = failure
            self.ended = True
            logger.warning("demuxing %s stopped: %s", self.url, _reason(failure))
            return None
        reader = self._readers.get(packet.stream.index)
        when = packet.pts if packet.pts is not None else packet.dts
        if reader is None or when is None or not packet.size:
            return None
        timestamp = when * reader.timeBase + self._offset
        duration = packet.duration * reader.timeBase if packet.duration else 0.0
        if self._first is None or timestamp < self._first:
            self._first = timestamp
        end = timestamp + duration
        if self._end is None or end > self._end:
            self._end = end
        try:
            data, key = reader.convert(bytes(packet), bool(packet.is_keyframe))
        except TypeError as failure:
            logger.warning("%s: packet dropped: %s", self.url, failure)
            return None
        if reader.checkKeyFrame:
            key = key or vp8IsKeyFrame(data)
        self._sent_this_round += 1
        return reader, EncodedPacket(data, timestamp, key, reader.layer)

    def _rewind(self) -> None:
        """The end of the file: start over (``loop``; timestamps go on from the end) or end."""
        if (
            not self._loop_file
            or self._sent_this_round == 0
            or self._first is None
            or self._end is None
        ):
            self.ended = True
            return
        self._offset = self._end - self._first
        self._sent_this_round = 0
        self._packets = None
        try:
            self.container.seek(0)
        except Exception as failure:
            self.error = failure
            self.ended = True

    # A thread (network streams).

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._started or not self.threaded:
            return
        self._started = True
        self._event_loop = loop
        self._thread = threading.Thread(
            target=self._run, name=f"msc-demux {self.url[:40]}", daemon=True
        )
        self._thread.start()

    def release(self, track: _Track) -> None:
        self._users.discard(id(track))
        if not self._users:
            self._stop.set()
            if not self._started:
                self.close()

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._event_loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(callback, *args)

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and not self.ended:
                packet = self._next()
                if packet is not None:
                    self._post(packet[0].track._deliver, packet[1])
        finally:
            self.close()
            for reader in {id(r.track): r for r in self._readers.values()}.values():
                self._post(reader.track._feedEnded, self.error)


# Iterators.


class _IteratorFeed(_Feed):
    """The application's packets, read on the loop (an async iterator may wait for them; a
    plain iterator must not block). Bad packets are dropped, logged and counted on the track
    (``packetsRejected``, ``lastError``)."""

    def __init__(
        self,
        source: Iterable[Any] | AsyncIterable[Any],
        track: _Track,
        layer: int,
        *,
        paced: bool,
        clock: _Clock,
        validate: Callable[[EncodedPacket], EncodedPacket],
    ) -> None:
        self._source = source
        self._track = track
        self._layer = layer
        self._paced = paced
        self._clock = clock
        self._validate = validate
        self._task: asyncio.Task[None] | None = None
        self._last: float | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is None:
            self._task = loop.create_task(self._run())

    def release(self, track: _Track) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _items(self) -> AsyncIterator[Any]:
        source = self._source
        if isinstance(source, AsyncIterable):
            async for item in source:
                yield item
        else:
            for item in source:
                yield item
                await asyncio.sleep(0)  # a long list must not hold the loop

    async def _run(self) -> None:
        error: BaseException | None = None
        try:
            async for item in self._items():
                try:
                    packet = self._check(item)
                except TypeError as failure:
                    self._track._rejected(failure)
                    continue
                if self._paced:
                    delay = self._clock.due(packet.timestamp) - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                self._track._deliver(packet)
        except asyncio.CancelledError:
            return
        except Exception as failure:
            error = failure
            logger.warning("the %s packet iterator failed: %s", self._track.kind, failure)
        self._track._feedEnded(error)

    def _check(self, item: Any) -> EncodedPacket:
        if isinstance(item, av.Packet):
            when = item.pts if item.pts is not None else item.dts
            if when is None or item.time_base is None:
                raise TypeError("an av.Packet without pts/dts and time_base")
            item = EncodedPacket(
                bytes(item), float(when * item.time_base), bool(item.is_keyframe), self._layer
            )
        if not isinstance(item, EncodedPacket):
            raise TypeError(f"expected EncodedPacket or av.Packet items, got {type(item).__name__}")
        if not isinstance(item.data, bytes | bytearray | memoryview) or not item.data:
            raise TypeError("an EncodedPacket needs non-empty bytes as data")
        timestamp = item.timestamp
        if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
            raise TypeError(f"timestamp must be seconds, not {type(timestamp).__name__}")
        if self._last is not None and timestamp < self._last:
            raise TypeError(
                f"timestamp {timestamp:.6f} s goes backwards (previous {self._last:.6f} s)"
            )
        packet = EncodedPacket(bytes(item.data), float(timestamp), item.keyFrame, self._layer)
        packet = self._validate(packet)
        self._last = packet.timestamp
        return packet


def _iterable(source: object) -> bool:
    return isinstance(source, Iterable | AsyncIterable) and not isinstance(
        source, str | bytes | os.PathLike
    )


def _checkH264Packet(packet: EncodedPacket) -> EncodedPacket:
    if not isAnnexB(packet.data):
        raise TypeError("H264 packets must be Annex B (start codes); MP4 samples are not")
    return packet


def _checkOpusPacket(packet: EncodedPacket) -> EncodedPacket:
    opusPacketSamples(packet.data)  # TypeError when malformed
    return packet


def _normalizeCodec(codec: str | None, allowed: dict[str, str]) -> str:
    if not isinstance(codec, str):
        raise TypeError(f"an iterator source needs codec= ({' or '.join(allowed)})")
    name = codec.lower().removeprefix("video/").removeprefix("audio/")
    if name not in allowed:
        raise UnsupportedError(
            f"codec {codec!r} cannot be sent pre-encoded (use {' or '.join(allowed)})"
        )
    return allowed[name]


# The tracks.


class EncodedVideoSource(_Track):
    """Pre-encoded video: ``EncodedVideoSource("movie.mp4", loop=True)``,
    ``EncodedVideoSource("rtsp://camera/stream")``, ``EncodedVideoSource(packets,
    codec="h264")``, or several renditions ``EncodedVideoSource("180p.mp4", "720p.mp4")``
    for simulcast (lowest first; ``produce()`` gets one encoding per rendition).

    Iterator packets are ``EncodedPacket`` (or ``av.Packet``): H264 as Annex B access units,
    VP8 frames; ``profileLevelId`` is the H264 bitstream's (default constrained baseline
    level 3.1). ``paced``: deliver by timestamps in real time (default: files yes, URLs and
    iterators no). ``format``/``options`` go to ``av.open``.

    Events: ``keyframerequested`` (layer) when the router asks for a key frame."""

    def __init__(
        self,
        *sources: SourceArg,
        codec: str | None = None,
        profileLevelId: str | None = None,
        loop: bool = False,
        paced: bool | None = None,
        format: str | None = None,
        options: dict[str, str] | None = None,
        _demuxer: _Demuxer | None = None,
    ) -> None:
        super().__init__("video")
        if not sources and _demuxer is None:
            raise TypeError("EncodedVideoSource needs a file, a URL or an iterator of packets")
        clock = _demuxer.clock if _demuxer is not None else _Clock()
        renditions: list[Rendition] = []
        mimes: set[str] = set()
        profiles: list[str] = []
        self.keyFrameRequests = 0
        try:
            if _demuxer is not None:
                self._addFeed(_demuxer, _demuxer.trackClock)
                mime, profile, rendition = _demuxer.addVideo(_demuxer.videoStream(), self, 0)
                mimes.add(mime)
                profiles.extend([profile] if profile else [])
                renditions.append(rendition)
            for layer, source in enumerate(sources):
                if _iterable(source):
                    mime = _normalizeCodec(codec, _VIDEO_CODECS)
                    profile = None
                    if mime == "video/H264":
                        profile = profileLevelId or "42e01f"
                        if h264.parseProfileLevelId(profile) is None:
                            raise TypeError(f"profileLevelId {profile!r} is not an H264 profile")
                    check = _checkH264Packet if mime == "video/H264" else _passThroughPacket
                    self._addFeed(
                        _IteratorFeed(
                            source,  # type: ignore[arg-type]
                            self,
                            layer,
                            paced=bool(paced),
                            clock=clock,
                            validate=check,
                        ),
                        None,
                    )
                    rendition = Rendition()
                elif isinstance(source, str | os.PathLike):
                    demuxer = _Demuxer.open(
                        source, loop=loop, paced=paced, clock=clock, format=format, options=options
                    )
                    self._addFeed(demuxer, demuxer.trackClock)
                    mime, profile, rendition = demuxer.addVideo(demuxer.videoStream(), self, layer)
                else:
                    raise TypeError(
                        f"a source is a path, a URL or an iterator of packets, not "
                        f"{type(source).__name__}"
                    )
                mimes.add(mime)
                if profile is not None:
                    profiles.append(profile)
                renditions.append(rendition)
            if len(mimes) > 1:
                raise UnsupportedError(f"renditions of one source must share a codec: {mimes}")
            for profile in profiles[1:]:
                if not h264.isSameProfile(
                    {"profile-level-id": profile}, {"profile-level-id": profiles[0]}
                ):
                    raise UnsupportedError(
                        f"renditions of one source must share an H264 profile: {profiles}"
                    )
        except BaseException:
            self._closeFeeds()
            raise
        self.encodedStream = EncodedStreamInfo(
            kind="video",
            mimeType=mimes.pop(),
            # The highest level among the renditions: what the biggest one needs.
            profileLevelId=max(profiles, key=lambda p: p[4:]) if profiles else None,
            renditions=renditions,
            onKeyFrameRequest=self.requestKeyFrame,
        )

    @property
    def mimeType(self) -> str:
        return self.encodedStream.mimeType

    def requestKeyFrame(self, layer: int | None = None) -> None:
        """The router asked for a key frame of ``layer`` (None: every layer)."""
        self.keyFrameRequests += 1
        try:
            self.emit("keyframerequested", layer)
        except Exception:
            logger.exception("a keyframerequested listener raised")

    def _closeFeeds(self) -> None:
        for feed in self._feeds:
            if isinstance(feed, _Demuxer):
                feed.close()


def _passThroughPacket(packet: EncodedPacket) -> EncodedPacket:
    return packet


class EncodedAudioSource(_Track):
    """Pre-encoded Opus: a file with Opus audio (WebM, Ogg, Matroska, MP4), a stream URL, or an
    iterator of ``EncodedPacket`` (one Opus packet each, timestamps in seconds) with
    ``channels`` 1 or 2."""

    def __init__(
        self,
        source: SourceArg,
        *,
        channels: int | None = None,
        loop: bool = False,
        paced: bool | None = None,
        format: str | None = None,
        options: dict[str, str] | None = None,
        _demuxer: _Demuxer | None = None,
    ) -> None:
        super().__init__("audio")
        clock = _Clock()
        if _demuxer is not None:
            stream = _demuxer.audioStream()
            assert stream is not None
            self._addFeed(_demuxer, _demuxer.trackClock)
            found = _demuxer.addAudio(stream, self)
        elif _iterable(source):
            if channels not in (1, 2):
                raise TypeError("an iterator of Opus packets needs channels=1 or 2")
            self._addFeed(
                _IteratorFeed(
                    source,  # type: ignore[arg-type]
                    self,
                    0,
                    paced=bool(paced),
                    clock=clock,
                    validate=_checkOpusPacket,
                ),
                None,
            )
            found = channels
        elif isinstance(source, str | os.PathLike):
            demuxer = _Demuxer.open(
                source, loop=loop, paced=paced, clock=clock, format=format, options=options
            )
            stream = demuxer.audioStream()
            if stream is None:
                demuxer.close()
                raise TypeError(f"{demuxer.url} has no audio stream")
            self._addFeed(demuxer, demuxer.trackClock)
            found = demuxer.addAudio(stream, self)
        else:
            raise TypeError(
                f"a source is a path, a URL or an iterator of packets, not {type(source).__name__}"
            )
        if channels is not None and channels != found:
            raise TypeError(f"channels={channels} but the source has {found}")
        self.encodedStream = EncodedStreamInfo(kind="audio", mimeType="audio/opus", channels=found)


class EncodedMediaPlayer:
    """A file's (or stream's) video and Opus audio from one demuxer, paced together:
    ``player.video`` (an ``EncodedVideoSource``, None without video) and ``player.audio`` (an
    ``EncodedAudioSource``, None unless the audio is Opus; ``audioCodec`` names what it is)."""

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        loop: bool = False,
        paced: bool | None = None,
        video: bool = True,
        audio: bool = True,
        format: str | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        demuxer = _Demuxer.open(
            source, loop=loop, paced=paced, clock=_Clock(), format=format, options=options
        )
        self.video: EncodedVideoSource | None = None
        self.audio: EncodedAudioSource | None = None
        stream = demuxer.audioStream()
        self.audioCodec: str | None = stream.codec_context.name if stream is not None else None
        has_video = bool(list(demuxer.container.streams.video))
        try:
            if video and has_video:
                self.video = EncodedVideoSource(_demuxer=demuxer)
            if audio and stream is not None and self.audioCodec == "opus":
                self.audio = EncodedAudioSource(demuxer.url, _demuxer=demuxer)
        except BaseException:
            demuxer.close()
            raise
        if self.video is None and self.audio is None:
            demuxer.close()

    def stop(self) -> None:
        for track in (self.video, self.audio):
            if track is not None:
                track.stop()


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
