"""Producer: one track sent to the router (mediasoup-client's Producer, in Python)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from .background import BackgroundWork
from .enhanced_events import EnhancedEventEmitter
from .errors import InvalidStateError, UnsupportedError
from .handlers.handler_interface import MediaTrack
from .types import AppData, MediaKind, RtpParameters, StatsReport

logger = logging.getLogger(__name__)


class ProducerChannel(Protocol):
    """What a Producer asks of its Transport (which queues it to the handler)."""

    async def stopSending(self, localId: str) -> None: ...

    async def pauseSending(self, localId: str) -> None: ...

    async def resumeSending(self, localId: str) -> None: ...

    async def replaceTrack(self, localId: str, track: MediaTrack | None) -> None: ...

    async def setMaxSpatialLayer(self, localId: str, spatialLayer: int) -> None: ...

    async def setRtpEncodingParameters(self, localId: str, params: dict[str, Any]) -> None: ...

    async def getSenderStats(self, localId: str) -> StatsReport: ...

    def producerClosed(self, producer: Producer) -> None: ...


class Producer(EnhancedEventEmitter):
    """Events: ``transportclose``, ``trackended``. Observer: ``close pause resume trackended``."""

    def __init__(
        self,
        *,
        id: str,
        localId: str,
        track: MediaTrack,
        rtpParameters: RtpParameters,
        stopTracks: bool,
        disableTrackOnPause: bool,
        zeroRtpOnPause: bool,
        appData: AppData | None,
        channel: ProducerChannel,
    ) -> None:
        super().__init__()
        self._id = id
        self._localId = localId
        self._track: MediaTrack | None = track
        self._kind: MediaKind = "audio" if track.kind == "audio" else "video"
        self._rtpParameters = rtpParameters
        self._closed = False
        self._paused = False
        self._maxSpatialLayer: int | None = None
        self._stopTracks = stopTracks
        self._disableTrackOnPause = disableTrackOnPause
        self._zeroRtpOnPause = zeroRtpOnPause
        self._appData: AppData = appData if appData is not None else {}
        self._channel = channel
        self._observer = EnhancedEventEmitter()
        # pause()/resume() are synchronous in mediasoup-client; their engine work is queued.
        self._background = BackgroundWork(f"producer {id}")
        self._handleTrack()

    @property
    def id(self) -> str:
        return self._id

    @property
    def localId(self) -> str:
        return self._localId

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def kind(self) -> MediaKind:
        return self._kind

    @property
    def track(self) -> MediaTrack | None:
        return self._track

    @property
    def rtpParameters(self) -> RtpParameters:
        return self._rtpParameters

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def maxSpatialLayer(self) -> int | None:
        return self._maxSpatialLayer

    @property
    def appData(self) -> AppData:
        return self._appData

    @appData.setter
    def appData(self, appData: AppData) -> None:
        self._appData = appData

    @property
    def observer(self) -> EnhancedEventEmitter:
        return self._observer

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._destroyTrack()
        self._channel.producerClosed(self)
        self._observer.safeEmit("close")
        self.remove_all_listeners()
        self._observer.remove_all_listeners()

    def transportClosed(self) -> None:
        """Called by the Transport when it closes: the engine is already gone."""
        if self._closed:
            return
        self._closed = True
        self._destroyTrack()
        self.safeEmit("transportclose")
        self._observer.safeEmit("close")
        self.remove_all_listeners()
        self._observer.remove_all_listeners()

    async def getStats(self) -> StatsReport:
        if self._closed:
            raise InvalidStateError("closed")
        return await self._channel.getSenderStats(self._localId)

    def pause(self) -> None:
        """Stop sending media RTP (nothing is encoded while paused). No-op when closed."""
        if self._closed:
            return
        self._paused = True
        self._background.spawn(self._channel.pauseSending(self._localId), "pause")
        self._observer.safeEmit("pause")

    def resume(self) -> None:
        """Send media again, starting with a key frame. No-op when closed."""
        if self._closed:
            return
        self._paused = False
        self._background.spawn(self._channel.resumeSending(self._localId), "resume")
        self._observer.safeEmit("resume")

    async def replaceTrack(self, *, track: MediaTrack | None) -> None:
        """Send ``track`` instead (no signaling); ``None`` sends nothing."""
        if self._closed:
            # Only chance to stop a track the caller handed over to us.
            if track is not None and self._stopTracks:
                _stopQuietly(track)
            raise InvalidStateError("closed")
        if track is not None and track.readyState == "ended":
            raise InvalidStateError("track ended")
        if track is self._track:
            return
        if track is not None and track.kind != self._kind:
            raise TypeError(f"cannot replace a {self._kind} track with a {track.kind} track")
        await self._channel.replaceTrack(self._localId, track)
        self._destroyTrack()
        self._track = track
        self._handleTrack()

    async def setMaxSpatialLayer(self, spatialLayer: int) -> None:
        """Send only the layers up to ``spatialLayer`` (0 = lowest encoding)."""
        if self._closed:
            raise InvalidStateError("closed")
        if self._kind != "video":
            raise UnsupportedError("not a video Producer")
        if not isinstance(spatialLayer, int) or isinstance(spatialLayer, bool) or spatialLayer < 0:
            raise TypeError("invalid spatialLayer")
        if spatialLayer == self._maxSpatialLayer:
            return
        await self._channel.setMaxSpatialLayer(self._localId, spatialLayer)
        self._maxSpatialLayer = spatialLayer

    async def setRtpEncodingParameters(self, params: dict[str, Any]) -> None:
        """Apply encoding fields (``maxBitrate``, ``maxFramerate``, ``active``, ...) to every
        encoding, as ``RTCRtpSender.setParameters`` does in mediasoup-client."""
        if self._closed:
            raise InvalidStateError("closed")
        if not isinstance(params, dict):
            raise TypeError("invalid params")
        await self._channel.setRtpEncodingParameters(self._localId, params)

    def _onTrackEnded(self) -> None:
        self.safeEmit("trackended")
        self._observer.safeEmit("trackended")

    def _handleTrack(self) -> None:
        if self._track is not None:
            self._track.on("ended", self._onTrackEnded)

    def _destroyTrack(self) -> None:
        track = self._track
        if track is None:
            return
        _removeListenerQuietly(track, "ended", self._onTrackEnded)
        if self._stopTracks:
            _stopQuietly(track)


def _stopQuietly(track: MediaTrack) -> None:
    try:
        track.stop()
    except Exception:
        logger.debug("stopping track %s failed", track.id, exc_info=True)


def _removeListenerQuietly(track: MediaTrack, event: str, f: Callable[..., Any]) -> None:
    with contextlib.suppress(Exception):  # pyee raises when the listener is already gone
        track.remove_listener(event, f)
