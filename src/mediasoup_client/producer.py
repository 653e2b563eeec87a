"""Producer: one track sent to the router (mediasoup-client's Producer, in Python)."""

from __future__ import annotations

from typing import Any, Protocol

from .errors import InvalidStateError, UnsupportedError
from .handlers.handler_interface import MediaTrack
from .media_endpoint import MediaEndpoint, stopQuietly
from .types import AppData, RtpParameters, StatsReport


class ProducerLink(Protocol):
    """What a Producer asks of its Transport (which queues it to the engine)."""

    async def stopSending(self, localId: str) -> None: ...

    async def pauseSending(self, localId: str) -> None: ...

    async def resumeSending(self, localId: str) -> None: ...

    async def replaceTrack(self, localId: str, track: MediaTrack | None) -> None: ...

    async def setMaxSpatialLayer(self, localId: str, spatialLayer: int) -> None: ...

    async def setRtpEncodingParameters(self, localId: str, params: dict[str, Any]) -> None: ...

    async def getSenderStats(self, localId: str) -> StatsReport: ...

    def producerClosed(self, producer: Producer) -> None: ...


class Producer(MediaEndpoint):
    """Events: ``transportclose``, ``trackended``. Observer: ``close pause resume trackended``.

    Pausing follows ``disableTrackOnPause`` and ``zeroRtpOnPause`` as in mediasoup-client
    (what the wire shows: ``Transport.produce``). A track with an ``enabled`` attribute (the
    library's own sources) is disabled while paused when ``disableTrackOnPause`` is set;
    aiortc's tracks have none, so for them only the engine's behaviour changes."""

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
        link: ProducerLink,
    ) -> None:
        super().__init__(
            id=id,
            localId=localId,
            kind="audio" if track.kind == "audio" else "video",
            track=track,
            rtpParameters=rtpParameters,
            appData=appData,
            stopTracks=stopTracks,
        )
        self._maxSpatialLayer: int | None = None
        self._disableTrackOnPause = disableTrackOnPause
        self._zeroRtpOnPause = zeroRtpOnPause
        self._link = link

    @property
    def track(self) -> MediaTrack | None:
        return self._track

    @property
    def maxSpatialLayer(self) -> int | None:
        return self._maxSpatialLayer

    def _onClose(self) -> None:
        self._link.producerClosed(self)

    async def getStats(self) -> StatsReport:
        if self._closed:
            raise InvalidStateError("closed")
        return await self._link.getSenderStats(self._localId)

    def pause(self) -> None:
        """Pause sending (see the class doc for what the wire shows). No-op when closed."""
        if self._closed:
            return
        self._paused = True
        self._setTrackEnabled(False)
        self._background.spawn(self._link.pauseSending(self._localId), "pause")
        self._observer.safeEmit("pause")

    def resume(self) -> None:
        """Send media again, video starting with a key frame. No-op when closed."""
        if self._closed:
            return
        self._paused = False
        self._setTrackEnabled(True)
        self._background.spawn(self._link.resumeSending(self._localId), "resume")
        self._observer.safeEmit("resume")

    async def replaceTrack(self, *, track: MediaTrack | None) -> None:
        """Send ``track`` instead (no signaling); ``None`` sends nothing."""
        if self._closed:
            # Only chance to stop a track the caller handed over to us.
            if track is not None and self._stopTracks:
                stopQuietly(track)
            raise InvalidStateError("closed")
        if track is not None and track.readyState == "ended":
            raise InvalidStateError("track ended")
        if track is self._track:
            return
        if track is not None and track.kind != self._kind:
            raise TypeError(f"cannot replace a {self._kind} track with a {track.kind} track")
        await self._link.replaceTrack(self._localId, track)
        self._setTrack(track)
        if self._paused:
            self._setTrackEnabled(False)

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
        await self._link.setMaxSpatialLayer(self._localId, spatialLayer)
        self._maxSpatialLayer = spatialLayer

    async def setRtpEncodingParameters(self, params: dict[str, Any]) -> None:
        """Apply encoding fields (``maxBitrate``, ``maxFramerate``, ``active``, ...) to every
        encoding, as ``RTCRtpSender.setParameters`` does in mediasoup-client."""
        if self._closed:
            raise InvalidStateError("closed")
        if not isinstance(params, dict):
            raise TypeError("invalid params")
        await self._link.setRtpEncodingParameters(self._localId, params)

    def _setTrackEnabled(self, enabled: bool) -> None:
        track = self._track
        if self._disableTrackOnPause and track is not None and hasattr(track, "enabled"):
            track.enabled = enabled
