"""A media engine without a network, for unit tests of the library and of applications.

It behaves like a real handler where the API can see it: it calls ``onConnect`` once on first
use and walks ``connectionState`` through connecting/connected, gives every encoding its own
SSRC (and RTX SSRC) and rid via the same ``buildSendRtpParameters`` as the real engine, keeps
pause/layer state per sender, returns W3C-shaped stats, and opens data channels with stream ids.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import time
import uuid
from typing import Any

from ..enhanced_events import EnhancedEventEmitter
from ..errors import InvalidStateError
from ..rtp_extensions import (
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    URI_RID,
    URI_RRID,
    URI_TOFFSET,
    URI_TRANSPORT_WIDE_CC,
    URI_VIDEO_ORIENTATION,
)
from ..scalability_modes import ENGINE_SCALABILITY_MODES
from ..types import (
    DtlsParameters,
    IceParameters,
    IceServer,
    RtcpFeedback,
    RtpCapabilities,
    RtpEncodingParameters,
    RtpParameters,
    SctpCapabilities,
    StatsReport,
    TransportDirection,
)
from .handler_base import HandlerBase
from .handler_interface import (
    HandlerFactory,
    HandlerReceiveDataChannelOptions,
    HandlerReceiveDataChannelResult,
    HandlerReceiveOptions,
    HandlerReceiveResult,
    HandlerRunOptions,
    HandlerSendDataChannelOptions,
    HandlerSendDataChannelResult,
    HandlerSendOptions,
    HandlerSendResult,
    MediaTrack,
    NamedHandlerFactory,
)
from .native_capabilities import h264Parameters, opusCodec, videoCodecWithRtx

_VIDEO_FEEDBACK: list[RtcpFeedback] = [
    {"type": "goog-remb"},
    {"type": "transport-cc"},
    {"type": "ccm", "parameter": "fir"},
    {"type": "nack"},
    {"type": "nack", "parameter": "pli"},
]


# What a typical WebRTC engine offers; payload types and extension ids are the engine's own.
FAKE_NATIVE_RTP_CAPABILITIES: dict[str, Any] = {
    "codecs": [
        opusCodec([{"type": "transport-cc"}]),
        {
            "kind": "audio",
            "mimeType": "audio/PCMU",
            "preferredPayloadType": 0,
            "clockRate": 8000,
            "channels": 1,
            "rtcpFeedback": [],
        },
        *videoCodecWithRtx("video/VP8", 96, {}, _VIDEO_FEEDBACK),
        *videoCodecWithRtx("video/VP9", 98, {"profile-id": 0}, _VIDEO_FEEDBACK),
        *videoCodecWithRtx("video/H264", 100, h264Parameters("42e01f"), _VIDEO_FEEDBACK),
        *videoCodecWithRtx("video/H264", 102, h264Parameters("4d0032"), _VIDEO_FEEDBACK),
    ],
    "headerExtensions": [
        {"kind": kind, "uri": uri, "preferredId": pid}
        for kind, uri, pid in [
            ("audio", URI_MID, 1),
            ("video", URI_MID, 1),
            ("video", URI_RID, 2),
            ("video", URI_RRID, 3),
            ("audio", URI_ABS_SEND_TIME, 4),
            ("video", URI_ABS_SEND_TIME, 4),
            ("video", URI_TRANSPORT_WIDE_CC, 5),
            ("audio", URI_AUDIO_LEVEL, 10),
            ("video", URI_VIDEO_ORIENTATION, 11),
            ("video", URI_TOFFSET, 12),
        ]
    ],
}

FAKE_SCTP_CAPABILITIES: SctpCapabilities = {"numStreams": {"OS": 1024, "MIS": 1024}}


class FakeMediaTrack(EnhancedEventEmitter):
    """A track that never yields media: what a fake receiver hands to a Consumer. It has the
    shape of aiortc's ``MediaStreamTrack`` (id, kind, readyState, ``ended`` event) without
    needing aiortc."""

    def __init__(self, kind: str, id: str | None = None) -> None:
        super().__init__()
        self.kind = kind
        self._id = id if id is not None else str(uuid.uuid4())
        self._ended = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def readyState(self) -> str:
        return "ended" if self._ended else "live"

    async def recv(self) -> Any:
        try:
            from aiortc.mediastreams import MediaStreamError
        except ImportError:  # pragma: no cover - aiortc is a dependency of the package
            raise EOFError("a fake track carries no media") from None
        raise MediaStreamError("a fake track carries no media")

    def stop(self) -> None:
        if not self._ended:
            self._ended = True
            self.emit("ended")


class FakeDataChannel(EnhancedEventEmitter):
    """An in-memory data channel: opens on the next loop iteration, records what is sent."""

    def __init__(
        self,
        *,
        id: int,
        label: str,
        protocol: str,
        ordered: bool,
        maxPacketLifeTime: int | None,
        maxRetransmits: int | None,
    ) -> None:
        super().__init__()
        self._id = id
        self._label = label
        self._protocol = protocol
        self.ordered = ordered
        self.maxPacketLifeTime = maxPacketLifeTime
        self.maxRetransmits = maxRetransmits
        self._readyState = "connecting"
        self._bufferedAmountLowThreshold = 0
        self.sent: list[str | bytes] = []
        asyncio.get_running_loop().call_soon(self._open)

    @property
    def id(self) -> int:
        return self._id

    @property
    def label(self) -> str:
        return self._label

    @property
    def protocol(self) -> str:
        return self._protocol

    @property
    def readyState(self) -> str:
        return self._readyState

    @property
    def bufferedAmount(self) -> int:
        return 0

    @property
    def bufferedAmountLowThreshold(self) -> int:
        return self._bufferedAmountLowThreshold

    @bufferedAmountLowThreshold.setter
    def bufferedAmountLowThreshold(self, value: int) -> None:
        self._bufferedAmountLowThreshold = value

    def send(self, data: str | bytes) -> None:
        if self._readyState != "open":
            raise InvalidStateError(f"data channel is {self._readyState}")
        self.sent.append(data)

    def receive(self, message: str | bytes) -> None:
        """Test hook: deliver a message as if the router had forwarded it."""
        self.emit("message", message)

    def close(self) -> None:
        if self._readyState in ("closing", "closed"):
            return
        self._readyState = "closed"
        self.emit("close")

    def _open(self) -> None:
        if self._readyState == "connecting":
            self._readyState = "open"
            self.emit("open")


class _FakeSender:
    def __init__(self, track: MediaTrack | None, rtpParameters: RtpParameters) -> None:
        self.track = track
        self.rtpParameters = rtpParameters
        self.paused = False
        self.maxSpatialLayer: int | None = None

    @property
    def encodings(self) -> list[RtpEncodingParameters]:
        return self.rtpParameters.get("encodings", [])


class _FakeReceiver:
    def __init__(self, track: FakeMediaTrack, rtpParameters: RtpParameters) -> None:
        self.track = track
        self.rtpParameters = rtpParameters
        self.paused = False


class FakeHandler(HandlerBase[_FakeSender, _FakeReceiver]):
    scalabilityModes = ENGINE_SCALABILITY_MODES

    @classmethod
    def createFactory(
        cls,
        nativeRtpCapabilities: RtpCapabilities | None = None,
        sctpCapabilities: SctpCapabilities | None = None,
    ) -> HandlerFactory:
        return NamedHandlerFactory(
            "FakeHandler", lambda: cls(nativeRtpCapabilities, sctpCapabilities)
        )

    def __init__(
        self,
        nativeRtpCapabilities: RtpCapabilities | None = None,
        sctpCapabilities: SctpCapabilities | None = None,
    ) -> None:
        super().__init__(copy.deepcopy(sctpCapabilities or FAKE_SCTP_CAPABILITIES))
        native: Any = nativeRtpCapabilities or FAKE_NATIVE_RTP_CAPABILITIES
        self._nativeRtpCapabilities: RtpCapabilities = copy.deepcopy(native)
        self._dataChannels: list[FakeDataChannel] = []
        self._connected = False
        self.iceServers: list[IceServer] = []
        self.iceRestarts: list[IceParameters] = []
        # The DTLS parameters the fake "engine" reports to the app's connect handler.
        self.localDtlsParameters: DtlsParameters = {
            "role": "client",
            "fingerprints": [
                {
                    "algorithm": "sha-256",
                    "value": ":".join(f"{b:02X}" for b in secrets.token_bytes(32)),
                }
            ],
        }

    @property
    def name(self) -> str:
        return "FakeHandler"

    async def getNativeRtpCapabilities(self, direction: TransportDirection) -> RtpCapabilities:
        return copy.deepcopy(self._nativeRtpCapabilities)

    async def getNativeSctpCapabilities(self) -> SctpCapabilities:
        return copy.deepcopy(self._sctpCapabilities)

    def _start(self, options: HandlerRunOptions) -> None:
        self.iceServers = list(options.iceServers or [])

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        if self._options is not None:
            # What a real engine reports once its teardown ran; the fake one has none.
            self.emit("@connectionstatechange", "closed")

    async def _teardown(self) -> None:
        for channel in self._dataChannels:
            channel.close()
        for receiver in self._receivers.values():
            receiver.track.stop()
        self._senders.clear()
        self._receivers.clear()

    async def _connect(self) -> None:
        options = self._runOptions()
        self.emit("@icegatheringstatechange", "gathering")
        self.emit("@icegatheringstatechange", "complete")
        await options.onConnect(copy.deepcopy(self.localDtlsParameters))
        self._checkOpen()
        self._connected = True
        self.emit("@connectionstatechange", "connecting")
        self.emit("@connectionstatechange", "connected")

    async def updateIceServers(self, iceServers: list[IceServer]) -> None:
        self.iceServers = list(iceServers)

    async def restartIce(self, iceParameters: IceParameters) -> None:
        self._checkOpen()
        self.iceRestarts.append(copy.deepcopy(iceParameters))

    async def getTransportStats(self) -> StatsReport:
        self._checkOpen()
        now = time.time() * 1000
        return {
            "T01": {
                "id": "T01",
                "type": "transport",
                "timestamp": now,
                "dtlsState": "connected" if self._connected else "new",
                "bytesSent": 0,
                "bytesReceived": 0,
            }
        }

    # Sending.
    async def send(self, options: HandlerSendOptions) -> HandlerSendResult:
        self._checkOpen()
        localId = self._nextLocalId()
        rtpParameters = self._sendRtpParameters(options, localId)
        await self._connectOnce()
        self._senders[localId] = _FakeSender(options.track, copy.deepcopy(rtpParameters))
        return HandlerSendResult(localId=localId, rtpParameters=rtpParameters)

    async def stopSending(self, localId: str) -> None:
        self._sender(localId)
        del self._senders[localId]

    async def pauseSending(self, localId: str) -> None:
        self._sender(localId).paused = True

    async def resumeSending(self, localId: str) -> None:
        self._sender(localId).paused = False

    async def replaceTrack(self, localId: str, track: MediaTrack | None) -> None:
        self._sender(localId).track = track

    async def setMaxSpatialLayer(self, localId: str, spatialLayer: int) -> None:
        sender = self._sender(localId)
        sender.maxSpatialLayer = spatialLayer
        for index, encoding in enumerate(sender.encodings):
            encoding["active"] = index <= spatialLayer

    async def setRtpEncodingParameters(self, localId: str, params: dict[str, Any]) -> None:
        for encoding in self._sender(localId).encodings:
            encoding.update(params)  # type: ignore[typeddict-item]

    async def getSenderStats(self, localId: str) -> StatsReport:
        sender = self._sender(localId)
        now = time.time() * 1000
        kind = sender.track.kind if sender.track else "video"
        report: StatsReport = {}
        for encoding in sender.encodings:
            stats_id = f"OT{encoding['ssrc']}"
            report[stats_id] = {
                "id": stats_id,
                "type": "outbound-rtp",
                "timestamp": now,
                "kind": kind,
                "ssrc": encoding["ssrc"],
                "rid": encoding.get("rid"),
                "active": encoding.get("active", True) and not sender.paused,
                "packetsSent": 0,
                "bytesSent": 0,
            }
        return report

    async def sendDataChannel(
        self, options: HandlerSendDataChannelOptions
    ) -> HandlerSendDataChannelResult:
        self._checkOpen()
        sctpStreamParameters = self._sctpStreamParameters(options)
        await self._connectOnce()
        channel = FakeDataChannel(
            id=sctpStreamParameters["streamId"],
            label=options.label,
            protocol=options.protocol,
            ordered=options.ordered,
            maxPacketLifeTime=options.maxPacketLifeTime,
            maxRetransmits=options.maxRetransmits,
        )
        self._dataChannels.append(channel)
        return HandlerSendDataChannelResult(
            dataChannel=channel, sctpStreamParameters=sctpStreamParameters
        )

    # Receiving.
    async def receive(self, options: HandlerReceiveOptions) -> HandlerReceiveResult:
        self._checkOpen()
        await self._connectOnce()
        localId = self._nextLocalId()
        track = FakeMediaTrack(options.kind, id=options.trackId)
        self._receivers[localId] = _FakeReceiver(track, options.rtpParameters)
        return HandlerReceiveResult(localId=localId, track=track)

    async def stopReceiving(self, localId: str) -> None:
        self._receiver(localId).track.stop()
        del self._receivers[localId]

    async def pauseReceiving(self, localId: str) -> None:
        self._receiver(localId).paused = True

    async def resumeReceiving(self, localId: str) -> None:
        self._receiver(localId).paused = False

    async def getReceiverStats(self, localId: str) -> StatsReport:
        receiver = self._receiver(localId)
        now = time.time() * 1000
        report: StatsReport = {}
        for encoding in receiver.rtpParameters.get("encodings", []):
            stats_id = f"IT{encoding.get('ssrc')}"
            report[stats_id] = {
                "id": stats_id,
                "type": "inbound-rtp",
                "timestamp": now,
                "kind": receiver.track.kind,
                "ssrc": encoding.get("ssrc"),
                "packetsReceived": 0,
                "packetsLost": 0,
                "bytesReceived": 0,
            }
        return report

    async def receiveDataChannel(
        self, options: HandlerReceiveDataChannelOptions
    ) -> HandlerReceiveDataChannelResult:
        self._checkOpen()
        await self._connectOnce()
        params = options.sctpStreamParameters
        channel = FakeDataChannel(
            id=params.get("streamId", 0),
            label=options.label,
            protocol=options.protocol,
            ordered=params.get("ordered", True),
            maxPacketLifeTime=params.get("maxPacketLifeTime"),
            maxRetransmits=params.get("maxRetransmits"),
        )
        self._dataChannels.append(channel)
        return HandlerReceiveDataChannelResult(dataChannel=channel)

    def getDataChannelMaxMessageSize(self) -> int | None:
        options = self._options
        if options is None or options.sctpParameters is None:
            return None
        return options.sctpParameters.get("maxMessageSize")

    # Introspection for tests.
    def senderState(self, localId: str) -> _FakeSender:
        return self._sender(localId)

    def receiverState(self, localId: str) -> _FakeReceiver:
        return self._receiver(localId)
