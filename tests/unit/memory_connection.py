"""An in-memory transport side for the aiortc engine: the real send path (scheduler, encoders,
RTP streams) on a ``FakeRtpPort``, with the connect round trip and states of a real one."""

from __future__ import annotations

from typing import Any

from mediasoup_client.enhanced_events import EnhancedEventEmitter
from mediasoup_client.handlers.handler_interface import HandlerRunOptions
from tests.unit.fake_rtp_port import FakeRtpPort


class MemoryConnection(FakeRtpPort, EnhancedEventEmitter):
    def __init__(self, options: HandlerRunOptions) -> None:
        FakeRtpPort.__init__(self, connected=False)
        EnhancedEventEmitter.__init__(self)
        self._options = options
        self._signalled = False
        self.iceServers = list(options.iceServers or [])
        self.iceRestarts: list[Any] = []
        self.sctpTransport = None
        self.dtlsTransport = None

    async def signal(self) -> None:
        if self._signalled:
            return
        self._signalled = True
        self.emit("icegatheringstatechange", "gathering")
        self.emit("icegatheringstatechange", "complete")
        await self._options.onConnect(
            {"role": "server", "fingerprints": [{"algorithm": "sha-256", "value": "00"}]}
        )
        self.emit("connectionstatechange", "connecting")
        self.connect()
        self.emit("connectionstatechange", "connected")

    def updateIceServers(self, iceServers: list[Any]) -> None:
        self.iceServers = list(iceServers)

    async def restartIce(self, iceParameters: Any) -> None:
        self.iceRestarts.append(iceParameters)

    async def getStats(self) -> dict[str, Any]:
        return {"T01": {"id": "T01", "type": "transport", "dtlsState": "connected"}}

    async def close(self) -> None:  # type: ignore[override]
        FakeRtpPort.close(self)
        self.emit("connectionstatechange", "closed")
