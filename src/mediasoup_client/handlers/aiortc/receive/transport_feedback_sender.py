"""TransportFeedbackSender: one transport's transport-wide congestion control feedback, on
its ``RtpPort`` (the asyncio layer over ``TransportFeedbackGenerator``).

Every consumer receiver of the transport hands it each packet it takes; it also takes the
router's bandwidth probes itself (mediasoup sends them on a fixed SSRC and payload type, as if
to a "probator" consumer). While packets arrive it sends feedback every ``FEEDBACK_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ....ortc import RTP_PROBATOR_CODEC_PAYLOAD_TYPE, RTP_PROBATOR_SSRC
from ..rtp_port import RtcpPacket, RtpPacket, RtpPort, RtpRoute
from .transport_feedback import FEEDBACK_INTERVAL, TransportFeedbackGenerator

logger = logging.getLogger(__name__)


class TransportFeedbackSender:
    def __init__(self, port: RtpPort, rtcpSsrc: int) -> None:
        self._port = port
        self.generator = TransportFeedbackGenerator(rtcpSsrc)
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False

    def start(self, headerExtensions: tuple[tuple[int, str], ...]) -> None:
        """Begin (idempotent): listen for the router's probes and send feedback."""
        if self._closed or self._task is not None:
            return
        self._unsubscribe = self._port.listenRtp(
            RtpRoute(
                ssrcs=(RTP_PROBATOR_SSRC,),
                payloadTypes=(RTP_PROBATOR_CODEC_PAYLOAD_TYPE,),
                headerExtensions=headerExtensions,
            ),
            self,
        )
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def onPacket(self, packet: RtpPacket, arrival: float) -> None:
        """Any packet of the transport (a consumer's, or a probe)."""
        seq = packet.extensions.transport_sequence_number
        if seq is not None:
            self.generator.mediaSsrc = packet.ssrc
            self.generator.onPacket(seq, arrival)

    # RtpListener (the probes).

    def onRtp(self, packet: RtpPacket, arrival: float) -> None:
        self.onPacket(packet, arrival)

    def onRtcp(self, packet: RtcpPacket) -> None:
        pass

    def onTransportClosed(self) -> None:
        pass

    async def _run(self) -> None:
        try:
            await self._port.waitConnected()
        except ConnectionError:
            return
        while not self._closed:
            await asyncio.sleep(FEEDBACK_INTERVAL)
            if not self.generator.pending or not self._port.connected:
                continue
            for packet in self.generator.build():
                try:
                    await self._port.sendRtcp(packet)
                except ConnectionError:
                    break
