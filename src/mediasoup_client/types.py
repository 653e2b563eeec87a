"""mediasoup's wire-format dicts, typed.

Every parameter and capability object is a plain JSON-compatible dict with mediasoup's camelCase
keys, so it travels to and from the signaling server unchanged. ``TypedDict`` gives the shapes to
type checkers without wrapping anything at run time.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

MediaKind = Literal["audio", "video"]
TransportDirection = Literal["send", "recv"]
ConnectionState = Literal["new", "connecting", "connected", "failed", "disconnected", "closed"]
IceGatheringState = Literal["new", "gathering", "complete"]
DtlsRole = Literal["auto", "client", "server"]
RtpHeaderExtensionDirection = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
AppData = dict[str, Any]


class RtcpFeedback(TypedDict):
    type: str
    parameter: NotRequired[str]


class RtpCodecCapability(TypedDict):
    kind: MediaKind
    mimeType: str
    preferredPayloadType: int
    clockRate: int
    channels: NotRequired[int]
    parameters: NotRequired[dict[str, Any]]
    rtcpFeedback: NotRequired[list[RtcpFeedback]]


class RtpHeaderExtension(TypedDict):
    kind: MediaKind
    uri: str
    preferredId: int
    preferredEncrypt: NotRequired[bool]
    direction: NotRequired[RtpHeaderExtensionDirection]


class RtpCapabilities(TypedDict, total=False):
    codecs: list[RtpCodecCapability]
    headerExtensions: list[RtpHeaderExtension]


class RtpCodecParameters(TypedDict):
    mimeType: str
    payloadType: int
    clockRate: int
    channels: NotRequired[int]
    parameters: NotRequired[dict[str, Any]]
    rtcpFeedback: NotRequired[list[RtcpFeedback]]


class RtpHeaderExtensionParameters(TypedDict):
    uri: str
    id: int
    encrypt: NotRequired[bool]
    parameters: NotRequired[dict[str, Any]]


class RtxParameters(TypedDict):
    ssrc: int


class RtpEncodingParameters(TypedDict, total=False):
    active: bool
    ssrc: int
    rid: str
    codecPayloadType: int
    rtx: RtxParameters
    dtx: bool
    scalabilityMode: str
    scaleResolutionDownBy: float
    maxBitrate: int
    maxFramerate: float
    adaptivePtime: bool
    priority: str
    networkPriority: str


class RtcpParameters(TypedDict, total=False):
    cname: str
    reducedSize: bool
    mux: bool


class RtpParameters(TypedDict):
    codecs: list[RtpCodecParameters]
    mid: NotRequired[str]
    headerExtensions: NotRequired[list[RtpHeaderExtensionParameters]]
    encodings: NotRequired[list[RtpEncodingParameters]]
    rtcp: NotRequired[RtcpParameters]
    msid: NotRequired[str]


class ExtendedRtpCodecCapability(TypedDict):
    kind: MediaKind
    mimeType: str
    clockRate: int
    localPayloadType: int
    localRtxPayloadType: int | None
    remotePayloadType: int
    remoteRtxPayloadType: int | None
    channels: NotRequired[int]
    localParameters: dict[str, Any]
    remoteParameters: dict[str, Any]
    rtcpFeedback: list[RtcpFeedback]


class ExtendedRtpHeaderExtension(TypedDict):
    kind: MediaKind
    uri: str
    sendId: int
    recvId: int
    encrypt: bool
    direction: RtpHeaderExtensionDirection


class ExtendedRtpCapabilities(TypedDict):
    codecs: list[ExtendedRtpCodecCapability]
    headerExtensions: list[ExtendedRtpHeaderExtension]


class NumSctpStreams(TypedDict):
    OS: int
    MIS: int


class SctpCapabilities(TypedDict):
    numStreams: NumSctpStreams


class SctpParameters(TypedDict):
    port: int
    OS: int
    MIS: int
    maxMessageSize: int


class SctpStreamParameters(TypedDict, total=False):
    streamId: int
    ordered: bool
    maxPacketLifeTime: int
    maxRetransmits: int
    label: str
    protocol: str


class IceParameters(TypedDict):
    usernameFragment: str
    password: str
    iceLite: NotRequired[bool]


class IceCandidate(TypedDict):
    foundation: str
    priority: int
    ip: str
    protocol: Literal["udp", "tcp"]
    port: int
    type: Literal["host", "srflx", "prflx", "relay"]
    tcpType: NotRequired[Literal["active", "passive", "so"]]
    address: NotRequired[str]


class DtlsFingerprint(TypedDict):
    algorithm: str
    value: str


class DtlsParameters(TypedDict):
    fingerprints: list[DtlsFingerprint]
    role: NotRequired[DtlsRole]


class IceServer(TypedDict, total=False):
    urls: str | list[str]
    username: str
    credential: str


class ProducerCodecOptions(TypedDict, total=False):
    opusStereo: bool
    opusFec: bool
    opusDtx: bool
    opusMaxPlaybackRate: int
    opusMaxAverageBitrate: int
    opusPtime: int
    opusNack: bool
    videoGoogleStartBitrate: int
    videoGoogleMaxBitrate: int
    videoGoogleMinBitrate: int


# A W3C RTCStatsReport-like mapping: stats id -> stats dict (each with "id", "type", "timestamp").
StatsReport = dict[str, dict[str, Any]]
