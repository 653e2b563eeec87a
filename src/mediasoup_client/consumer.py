"""Consumer: one track received from the router."""

from __future__ import annotations

from typing import Protocol

from .errors import InvalidStateError
from .handlers.handler_interface import MediaTrack
from .media_endpoint import MediaEndpoint
from .types import AppData, RtpParameters, StatsReport


class ConsumerLink(Protocol):
    """What a Consumer asks of its Transport (which queues it to the engine)."""

    async def pauseReceiving(self, localId: str) -> None: ...

    async def resumeReceiving(self, localId: str) -> None: ...

    async def getReceiverStats(self, localId: str) -> StatsReport: ...

    def consumerClosed(self, consumer: Consumer) -> None: ...


class Consumer(MediaEndpoint):
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
        link: ConsumerLink,
        streamId: str | None = None,
    ) -> None:
        super().__init__(
            id=id,
            localId=localId,
            kind="audio" if track.kind == "audio" else "video",
            track=track,
            rtpParameters=rtpParameters,
            appData=appData,
            stopTracks=True,  # the track is the engine's: it ends with the consumer
        )
        self._producerId = producerId
        self._consumerTrack = track
        self._link = link
        self._streamId = streamId or streamIdOf(rtpParameters)

    @property
    def producerId(self) -> str:
        return self._producerId

    @property
    def track(self) -> MediaTrack:
        return self._consumerTrack

    @property
    def streamId(self) -> str | None:
        """The MediaStream this consumer's track belongs to: the ``streamId`` given to
        ``consume()``, else the producer's (the stream part of ``rtpParameters.msid``), else
        its RTCP cname, as mediasoup-client groups them (one peer's audio and video play in
        sync)."""
        return self._streamId

    def _onClose(self) -> None:
        self._link.consumerClosed(self)

    async def getStats(self) -> StatsReport:
        if self._closed:
            raise InvalidStateError("closed")
        return await self._link.getReceiverStats(self._localId)

    def pause(self) -> None:
        """Stop delivering received media to the track. No-op when closed."""
        if self._closed:
            return
        self._paused = True
        self._background.spawn(self._link.pauseReceiving(self._localId), "pause")
        self._observer.safeEmit("pause")

    def resume(self) -> None:
        if self._closed:
            return
        self._paused = False
        self._background.spawn(self._link.resumeReceiving(self._localId), "resume")
        self._observer.safeEmit("resume")


def streamIdOf(rtpParameters: RtpParameters) -> str | None:
    msid = rtpParameters.get("msid")
    if isinstance(msid, str) and msid.split():
        return msid.split()[0]
    cname = (rtpParameters.get("rtcp") or {}).get("cname")
    return cname if isinstance(cname, str) and cname else None
