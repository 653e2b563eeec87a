"""What Producer and Consumer share: identity, one track and its ``ended`` event, pause state,
``appData``, the observer, and closing (by the app, or with the transport)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from .background import BackgroundWork
from .endpoint import Endpoint
from .handlers.handler_interface import MediaTrack
from .types import AppData, MediaKind, RtpParameters

logger = logging.getLogger(__name__)


class MediaEndpoint(Endpoint):
    """Events: ``transportclose``, ``trackended``. Observer: ``close pause resume trackended``."""

    def __init__(
        self,
        *,
        id: str,
        localId: str,
        kind: MediaKind,
        track: MediaTrack | None,
        rtpParameters: RtpParameters,
        appData: AppData | None,
        stopTracks: bool,
    ) -> None:
        super().__init__(id=id, appData=appData)
        self._localId = localId
        self._kind: MediaKind = kind
        self._track: MediaTrack | None = track
        self._rtpParameters = rtpParameters
        self._paused = False
        self._stopTracks = stopTracks
        # pause()/resume() are synchronous in mediasoup-client; their engine work is queued.
        self._background = BackgroundWork(f"{type(self).__name__.lower()} {id}")
        self._endedTracks: set[int] = set()
        self._handleTrack()

    @property
    def localId(self) -> str:
        return self._localId

    @property
    def kind(self) -> MediaKind:
        return self._kind

    @property
    def rtpParameters(self) -> RtpParameters:
        return self._rtpParameters

    @property
    def paused(self) -> bool:
        return self._paused

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._destroyTrack()
        self._onClose()
        self._finish(event=None)

    def transportClosed(self) -> None:
        """Called by the Transport when it closes: the engine is going away underneath."""
        if self._closed:
            return
        self._closed = True
        self._destroyTrack()
        self._finish(event="transportclose")

    def trackEnded(self, track: Any = None) -> None:
        """The track ended or failed (its own ``ended`` event, or the engine saw it): emits
        ``trackended`` once per track."""
        current = self._track
        if self._closed or current is None or (track is not None and track is not current):
            return
        if id(current) in self._endedTracks:
            return
        self._endedTracks.add(id(current))
        self.safeEmit("trackended")
        self._observer.safeEmit("trackended")

    def _keepTrackOnClose(self) -> MediaTrack | None:
        """Let the next close leave the track running (a RoomClient moving the track to a
        new producer after a failed transport); returns it."""
        self._stopTracks = False
        return self._track

    # For subclasses.

    def _onClose(self) -> None:
        """The app closed this endpoint: tell the transport."""

    def _setTrack(self, track: MediaTrack | None) -> None:
        self._destroyTrack()
        self._track = track
        self._handleTrack()

    def _finish(self, event: str | None) -> None:
        self._emitClosed(event)

    def _handleTrack(self) -> None:
        if self._track is not None:
            self._track.on("ended", self._onTrackEndedEvent)

    def _onTrackEndedEvent(self) -> None:
        self.trackEnded()

    def _destroyTrack(self) -> None:
        track = self._track
        if track is None:
            return
        with contextlib.suppress(Exception):  # pyee raises when the listener is already gone
            track.remove_listener("ended", self._onTrackEndedEvent)
        if self._stopTracks:
            stopQuietly(track)


def stopQuietly(track: MediaTrack) -> None:
    try:
        track.stop()
    except Exception:
        logger.debug("stopping track %s failed", track.id, exc_info=True)
