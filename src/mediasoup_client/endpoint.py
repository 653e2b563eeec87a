"""What every transport, producer, consumer, data producer and data consumer has: an id,
``appData``, an observer, ``closed``, and how its events end when it closes."""

from __future__ import annotations

from .enhanced_events import EnhancedEventEmitter
from .types import AppData


class Endpoint(EnhancedEventEmitter):
    def __init__(self, *, id: str, appData: AppData | None) -> None:
        super().__init__()
        self._id = id
        self._appData: AppData = appData if appData is not None else {}
        self._closed = False
        self._observer = EnhancedEventEmitter()

    @property
    def id(self) -> str:
        return self._id

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def appData(self) -> AppData:
        return self._appData

    @appData.setter
    def appData(self, appData: AppData) -> None:
        self._appData = appData

    @property
    def observer(self) -> EnhancedEventEmitter:
        return self._observer

    def _emitClosed(self, event: str | None) -> None:
        """The last events: ``event`` (e.g. ``transportclose``) if any, then the observer's
        ``close``; no listener hears anything after."""
        if event is not None:
            self.safeEmit(event)
        self._observer.safeEmit("close")
        self.remove_all_listeners()
        self._observer.remove_all_listeners()
