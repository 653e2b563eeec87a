"""Consumer: one track received from the router."""

from __future__ import annotations

import contextlib
import logging
from typing import Protocol

from .background import BackgroundWork
from .enhanced_events import EnhancedEventEmitter
from .errors import InvalidStateError
from .handlers.handler_interface import MediaTrack
from .types import AppData, MediaKind, RtpParameters, StatsReport

logger = logging.getLogger(__name__)


class ConsumerChannel(Protocol):
    """What a Consumer asks of its Transport (which queues it to the handler)."""

    async def pauseReceiving(self, localId: str) -> None: ...

    async def resumeReceiving(self, localId: str) -> None: ...

    async def getReceiverStats(self, localId: str) -> StatsReport: ...

    def consumerClosed(self, consumer: Consumer) -> None: ...


class Consumer(EnhancedEventEmitter):
    """Events: ``transportclose``, ``trackended``. Observer: ``close pause resume trackended``."""

    def __init__(
        self,
        *,
        id: str,
        localId: str,
        producerId: str,
        track: MediaTrack,
        rtpParameters: RtpParameters,
        appData: AppData | None,
        channel: ConsumerChannel,
    ) -> None:
        super().__init__()
        self._id = id
        self._localId = localId
        self._producerId = producerId
        self._track = track
        self._kind: MediaKind = "audio" if track.kind == "audio" else "video"
        self._rtpParameters = rtpParameters
        self._closed = False
        self._paused = False
        self._appData: AppData = appData if appData is not None else {}
        self._channel = channel
        self._observer = EnhancedEventEmitter()
        self._background = BackgroundWork(f"consumer {id}")
        track.on("ended", self._onTrackEnded)

    @property
    def id(self) -> str:
        return self._id

    @property
    def localId(self) -> str:
        return self._localId

    @property
    def producerId(self) -> str:
        return self._producerId

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def kind(self) -> MediaKind:
        return self._kind

    @property
    def track(self) -> MediaTrack:
        return self._track

    @property
    def rtpParameters(self) -> RtpParameters:
        return self._rtpParameters

    @property
    def paused(self) -> bool:
        return self._paused

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
        self._channel.consumerClosed(self)
        self._observer.safeEmit("close")
        self.remove_all_listeners()
        self._observer.remove_all_listeners()

    def transportClosed(self) -> None:
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
        return await self._channel.getReceiverStats(self._localId)

    def pause(self) -> None:
        """Stop delivering received media to the track. No-op when closed."""
        if self._closed:
            return
        self._paused = True
        self._background.spawn(self._channel.pauseReceiving(self._localId), "pause")
        self._observer.safeEmit("pause")

    def resume(self) -> None:
        if self._closed:
            return
        self._paused = False
        self._background.spawn(self._channel.resumeReceiving(self._localId), "resume")
        self._observer.safeEmit("resume")

    def _onTrackEnded(self) -> None:
        self.safeEmit("trackended")
        self._observer.safeEmit("trackended")

    def _destroyTrack(self) -> None:
        with contextlib.suppress(Exception):  # already removed
            self._track.remove_listener("ended", self._onTrackEnded)
        try:
            self._track.stop()
        except Exception:
            logger.debug("stopping consumer track failed", exc_info=True)
