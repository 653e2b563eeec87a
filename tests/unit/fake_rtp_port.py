"""An in-memory RtpPort for send-path tests: records what is sent, injects RTCP.

Also builds producer ``rtpParameters`` with the library's own ``buildSendRtpParameters``, with
header-extension ids deliberately not the send path's preferred ones (and the router's payload
types), so tests prove the sender writes what was signalled.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
)

from mediasoup_client import ortc
from mediasoup_client.handlers.aiortc.send import getSendRtpCapabilities
from mediasoup_client.rtp_extensions import (
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    URI_RID,
    URI_RRID,
    URI_TRANSPORT_WIDE_CC,
)
from mediasoup_client.send_parameters import buildSendRtpParameters, normalizeEncodings
from tests.fixtures.router_capabilities import routerRtpCapabilities

# Deliberately not the send path's preferred ids.
EXTENSION_IDS = {
    URI_MID: 1,
    URI_RID: 10,
    URI_RRID: 11,
    URI_ABS_SEND_TIME: 4,
    URI_AUDIO_LEVEL: 6,
    URI_TRANSPORT_WIDE_CC: 7,
}

_ssrcs = itertools.count(1000)


def extensionsMap() -> HeaderExtensionsMap:
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri)
                for uri, ext_id in EXTENSION_IDS.items()
            ]
        )
    )
    return extensions_map


_EXTENSIONS_MAP = extensionsMap()


@dataclass
class SentRtp:
    at: float  # the port's clock (the test's fake clock when given, else time.monotonic())
    data: bytes
    packet: RtpPacket


class FakeRtpPort:
    def __init__(self, *, connected: bool = True, clock: Any = None) -> None:
        self.clock = clock
        self._connected = connected
        self._event = asyncio.Event()
        if connected:
            self._event.set()
        self._closed = False
        self.rtp: list[SentRtp] = []
        self.rtcp: list[bytes] = []
        self._listeners: list[tuple[set[int], Callable[[Any], Any]]] = []
        self.rtpRoutes: list[tuple[Any, Any]] = []  # (RtpRoute, RtpListener)
        self._raw_listeners: list[Callable[[bytes], None]] = []
        # Called with every RTP packet sent (a simulated link, a receiver).
        self.onRtp: Callable[[SentRtp], None] | None = None

    # RtpPort.

    @property
    def connected(self) -> bool:
        return self._connected

    async def waitConnected(self) -> None:
        await self._event.wait()
        if self._closed:
            raise ConnectionError("closed")

    def send(self, packet: bytes) -> None:
        if not self._connected:
            raise ConnectionError("not connected")
        if is_rtcp(packet):
            self.rtcp.append(packet)
        else:
            parsed = RtpPacket.parse(packet, _EXTENSIONS_MAP)
            at = self.clock.now() if self.clock is not None else time.monotonic()
            sent = SentRtp(at, packet, parsed)
            self.rtp.append(sent)
            if self.onRtp is not None:
                self.onRtp(sent)

    def sendMany(self, packets: Sequence[bytes]) -> None:
        for packet in packets:
            self.send(packet)

    async def sendRtp(self, packet: bytes) -> None:
        self.send(packet)

    async def sendRtcp(self, packet: bytes) -> None:
        self.send(packet)

    def listenRtcp(
        self, ssrcs: Sequence[int], listener: Callable[[Any], Any]
    ) -> Callable[[], None]:
        entry = (set(ssrcs), listener)
        self._listeners.append(entry)

        def unsubscribe() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return unsubscribe

    def listenRtp(self, route: Any, listener: Any) -> Callable[[], None]:
        entry = (route, listener)
        self.rtpRoutes.append(entry)

        def unsubscribe() -> None:
            if entry in self.rtpRoutes:
                self.rtpRoutes.remove(entry)

        return unsubscribe

    def listenRawRtcp(self, listener: Callable[[bytes], None]) -> Callable[[], None]:
        self._raw_listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._raw_listeners:
                self._raw_listeners.remove(listener)

        return unsubscribe

    # Test controls.

    def deliverRtp(self, packet: RtpPacket, arrival: float | None = None) -> bool:
        """Hand inbound RTP to the listener whose route takes it, as aiortc's router does
        (SSRC and payload type); False when none does."""
        for route, listener in list(self.rtpRoutes):
            if packet.ssrc in route.ssrcs and packet.payload_type in route.payloadTypes:
                listener.onRtp(packet, time.monotonic() if arrival is None else arrival)
                return True
        return False

    def deliverRtcpToReceivers(self, packet: Any) -> None:
        """Inbound SR/BYE to the receivers of its SSRC."""
        for route, listener in list(self.rtpRoutes):
            if getattr(packet, "ssrc", None) in route.ssrcs:
                listener.onRtcp(packet)

    def connect(self) -> None:
        self._connected = True
        self._event.set()

    def close(self) -> None:
        self._closed = True
        self._connected = False
        self._event.set()

    @property
    def listenerCount(self) -> int:
        return len(self._listeners)

    def inject(self, packet: Any) -> None:
        """Deliver RTCP (bytes or aiortc packet objects) as the transport would: by reportee
        SSRC for reports, media SSRC for feedback, listed SSRCs for REMB."""
        data = packet if isinstance(packet, bytes) else bytes(packet)
        for raw in list(self._raw_listeners):
            raw(data)
        for parsed in RtcpPacket.parse(data):
            targets = _routingSsrcs(parsed)
            for ssrcs, listener in list(self._listeners):
                if ssrcs & targets:
                    result = listener(parsed)
                    assert not inspect.isawaitable(result), "RTCP listeners are synchronous"

    # Queries.

    def packets(self, ssrc: int | None = None, payloadType: int | None = None) -> list[RtpPacket]:
        return [
            sent.packet
            for sent in self.rtp
            if (ssrc is None or sent.packet.ssrc == ssrc)
            and (payloadType is None or sent.packet.payload_type == payloadType)
        ]

    def ssrcs(self) -> set[int]:
        return {sent.packet.ssrc for sent in self.rtp}

    def rtcpPackets(self) -> list[Any]:
        out: list[Any] = []
        for data in self.rtcp:
            out.extend(RtcpPacket.parse(data))
        return out

    def clear(self) -> None:
        self.rtp.clear()
        self.rtcp.clear()


def _routingSsrcs(packet: Any) -> set[int]:
    from aiortc.rtp import unpack_remb_fci

    if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
        return {report.ssrc for report in packet.reports}
    if isinstance(packet, RtcpPsfbPacket) and packet.fmt == 15:
        try:
            return set(unpack_remb_fci(packet.fci)[1])
        except ValueError:
            return set()
    if isinstance(packet, RtcpPsfbPacket) and packet.fmt == 4:
        # FIR: RFC 5104 puts the target SSRCs in the FCI (media SSRC 0).
        fci = packet.fci
        return {packet.media_ssrc} | {
            int.from_bytes(fci[pos : pos + 4], "big") for pos in range(0, len(fci) - 7, 8)
        }
    if isinstance(packet, RtcpPsfbPacket | RtcpRtpfbPacket):
        return {packet.media_ssrc}
    return set()


def _extended(rtx: bool) -> Any:
    local = getSendRtpCapabilities()
    if not rtx:
        local["codecs"] = [c for c in local["codecs"] if c["mimeType"].lower() != "video/rtx"]
    for ext in local["headerExtensions"]:
        ext["preferredId"] = EXTENSION_IDS.get(ext["uri"], ext["preferredId"])
    ortc.validateAndNormalizeRtpCapabilities(local)
    remote = routerRtpCapabilities()
    ortc.validateAndNormalizeRtpCapabilities(remote)
    return ortc.getExtendedRtpCapabilities(local, remote)


def _codecCapability(extended: Any, mimeType: str) -> Any:
    for codec in ortc.getSendRtpCapabilities(extended)["codecs"]:
        if codec["mimeType"].lower() == mimeType.lower():
            return codec
    raise AssertionError(f"the test router has no {mimeType}")


def _parameters(
    kind: str,
    mimeType: str,
    encodings: list[dict[str, Any]] | None,
    *,
    rtx: bool = True,
    codecOptions: dict[str, Any] | None = None,
    mid: str = "0",
) -> dict[str, Any]:
    extended = _extended(rtx)
    params: Any = buildSendRtpParameters(
        kind=kind,  # type: ignore[arg-type]
        extendedRtpCapabilities=extended,
        encodings=normalizeEncodings(encodings),  # type: ignore[arg-type]
        codec=_codecCapability(extended, mimeType),
        codecOptions=codecOptions,  # type: ignore[arg-type]
        mid=mid,
        cname="test-cname",
        msid="test-stream test-track",
        generateSsrc=lambda: next(_ssrcs),
    )
    return params  # type: ignore[no-any-return]


def videoRtpParameters(
    *,
    mimeType: str = "video/VP8",
    encodings: list[dict[str, Any]] | None = None,
    rtx: bool = True,
    codecOptions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Producer parameters as the handler would hand them to the server (router payload
    types: VP8 101, its RTX 102)."""
    return _parameters("video", mimeType, encodings, rtx=rtx, codecOptions=codecOptions)


def audioRtpParameters(
    *,
    codecOptions: dict[str, Any] | None = None,
    encoding: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Opus producer parameters (router payload type 100)."""
    return _parameters(
        "audio", "audio/opus", [encoding] if encoding else None, codecOptions=codecOptions, mid="1"
    )


def vp8IsKeyFrame(payload: bytes) -> bool:
    """True for the first packet of a VP8 key frame (descriptor S bit, then P bit clear)."""
    from aiortc.codecs.vpx import VpxPayloadDescriptor

    descriptor, data = VpxPayloadDescriptor.parse(payload)
    return bool(descriptor.partition_start) and descriptor.partition_id == 0 and not data[0] & 1


def vp8KeyFrameSize(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from the first packet of a VP8 key frame."""
    from aiortc.codecs.vpx import VpxPayloadDescriptor

    _descriptor, data = VpxPayloadDescriptor.parse(payload)
    if data[0] & 1 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height
