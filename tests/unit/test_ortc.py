"""The pure ORTC module: validation, negotiation, codec matching, reduction."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mediasoup_client import ortc
from tests.fixtures.router_capabilities import nativeRtpCapabilities, routerRtpCapabilities


def extended() -> Any:
    local = nativeRtpCapabilities()
    remote = routerRtpCapabilities()
    ortc.validateAndNormalizeRtpCapabilities(local)
    ortc.validateAndNormalizeRtpCapabilities(remote)
    return ortc.getExtendedRtpCapabilities(local, remote)


# Validation and normalisation of capabilities.


def test_normalizes_defaults() -> None:
    caps: Any = {
        "codecs": [
            {"mimeType": "audio/opus", "preferredPayloadType": 100, "clockRate": 48000},
            {
                "mimeType": "video/VP8",
                "preferredPayloadType": 101,
                "clockRate": 90000,
                "channels": 4,
            },
        ],
        "headerExtensions": [{"kind": "audio", "uri": "urn:x", "preferredId": 1}],
    }
    ortc.validateAndNormalizeRtpCapabilities(caps)
    opus, vp8 = caps["codecs"]
    assert opus["kind"] == "audio" and opus["channels"] == 1
    assert opus["parameters"] == {} and opus["rtcpFeedback"] == []
    assert vp8["kind"] == "video" and "channels" not in vp8
    ext = caps["headerExtensions"][0]
    assert ext["preferredEncrypt"] is False and ext["direction"] == "sendrecv"


def test_normalization_is_idempotent() -> None:
    caps = routerRtpCapabilities()
    ortc.validateAndNormalizeRtpCapabilities(caps)
    once = copy.deepcopy(caps)
    ortc.validateAndNormalizeRtpCapabilities(caps)
    assert caps == once


def test_missing_or_empty_codecs_load() -> None:
    for caps in ({}, {"codecs": None}, {"codecs": []}):
        ortc.validateAndNormalizeRtpCapabilities(caps)
        assert caps["codecs"] == [] and caps["headerExtensions"] == []


def test_feedback_parameter_defaults_to_empty_string() -> None:
    caps: Any = {
        "codecs": [
            {
                "mimeType": "video/VP8",
                "preferredPayloadType": 96,
                "clockRate": 90000,
                "rtcpFeedback": [{"type": "nack", "parameter": 3}],
            }
        ]
    }
    ortc.validateAndNormalizeRtpCapabilities(caps)
    assert caps["codecs"][0]["rtcpFeedback"] == [{"type": "nack", "parameter": ""}]


def test_none_parameter_value_becomes_empty_string() -> None:
    caps: Any = {
        "codecs": [
            {
                "mimeType": "audio/opus",
                "preferredPayloadType": 100,
                "clockRate": 48000,
                "parameters": {"x": None},
            }
        ]
    }
    ortc.validateAndNormalizeRtpCapabilities(caps)
    assert caps["codecs"][0]["parameters"] == {"x": ""}


def _codec(**fields: Any) -> dict[str, Any]:
    codec: dict[str, Any] = {
        "mimeType": "video/VP8",
        "preferredPayloadType": 96,
        "clockRate": 90000,
    }
    codec.update(fields)
    return {"codecs": [codec]}


def _ext(**fields: Any) -> dict[str, Any]:
    ext: dict[str, Any] = {"kind": "video", "uri": "urn:x", "preferredId": 1}
    ext.update(fields)
    return {"codecs": [], "headerExtensions": [ext]}


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        ("caps", "caps is not an object"),
        (None, "caps is not an object"),
        ({"codecs": {}}, "caps.codecs is not an array"),
        ({"codecs": ["opus"]}, "codec is not an object"),
        (_codec(mimeType=None), "missing codec.mimeType"),
        (_codec(mimeType=""), "missing codec.mimeType"),
        (_codec(mimeType="vp8"), "invalid codec.mimeType"),
        (_codec(mimeType="text/plain"), "invalid codec.mimeType"),
        (_codec(preferredPayloadType=None), "missing codec.preferredPayloadType"),
        (_codec(preferredPayloadType="96"), "missing codec.preferredPayloadType"),
        (_codec(preferredPayloadType=True), "missing codec.preferredPayloadType"),
        (_codec(preferredPayloadType=96.5), "missing codec.preferredPayloadType"),
        (_codec(clockRate=None), "missing codec.clockRate"),
        (_codec(clockRate="90000"), "missing codec.clockRate"),
        (_codec(parameters={"a": [1]}), "invalid codec parameter"),
        (_codec(parameters={"a": True}), "invalid codec parameter"),
        (_codec(parameters={"a": {"b": 1}}), "invalid codec parameter"),
        (_codec(mimeType="video/rtx", parameters={"apt": "96"}), "invalid codec apt parameter"),
        (_codec(rtcpFeedback=["nack"]), "fb is not an object"),
        (_codec(rtcpFeedback=[{"parameter": "pli"}]), "missing fb.type"),
        (_codec(rtcpFeedback=[{"type": 1}]), "missing fb.type"),
        ({"headerExtensions": {}}, "caps.headerExtensions is not an array"),
        ({"headerExtensions": [1]}, "ext is not an object"),
        (_ext(kind="data"), "invalid ext.kind"),
        (_ext(kind=None), "invalid ext.kind"),
        (_ext(uri=None), "missing ext.uri"),
        (_ext(uri=5), "missing ext.uri"),
        (_ext(preferredId=None), "missing ext.preferredId"),
        (_ext(preferredId="1"), "missing ext.preferredId"),
        (_ext(preferredEncrypt="yes"), "invalid ext.preferredEncrypt"),
        (_ext(direction=1), "invalid ext.direction"),
    ],
)
def test_invalid_capabilities(caps: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        ortc.validateAndNormalizeRtpCapabilities(caps)


# RTP parameters and SCTP.


def test_validate_rtp_parameters_defaults() -> None:
    params: Any = {
        "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000}],
        "encodings": [{"ssrc": 1}],
    }
    ortc.validateAndNormalizeRtpParameters(params)
    assert params["headerExtensions"] == []
    assert params["encodings"] == [{"ssrc": 1, "dtx": False}]
    assert params["rtcp"] == {"reducedSize": True}
    assert params["codecs"][0]["channels"] == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("x", "params is not an object"),
        ({"codecs": None}, "missing params.codecs"),
        ({"codecs": [], "mid": 1}, "params.mid is not a string"),
        ({"codecs": [{"mimeType": "audio/opus", "clockRate": 1}]}, "missing codec.payloadType"),
        ({"codecs": [], "headerExtensions": [{"uri": "u"}]}, "missing ext.id"),
        (
            {"codecs": [], "headerExtensions": [{"uri": "u", "id": 1, "encrypt": 1}]},
            "invalid ext.encrypt",
        ),
        ({"codecs": [], "encodings": [{"ssrc": "1"}]}, "invalid encoding.ssrc"),
        ({"codecs": [], "encodings": [{"rid": 1}]}, "invalid encoding.rid"),
        ({"codecs": [], "encodings": [{"rtx": 1}]}, "invalid encoding.rtx"),
        ({"codecs": [], "encodings": [{"rtx": {}}]}, "missing encoding.rtx.ssrc"),
        ({"codecs": [], "encodings": [{"scalabilityMode": 3}]}, "invalid encoding.scalabilityMode"),
        ({"codecs": [], "rtcp": "x"}, "params.rtcp is not an object"),
        ({"codecs": [], "rtcp": {"cname": 3}}, "invalid rtcp.cname"),
    ],
)
def test_invalid_rtp_parameters(params: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        ortc.validateAndNormalizeRtpParameters(params)


def test_sctp_stream_parameters() -> None:
    params: Any = {"streamId": 1}
    ortc.validateAndNormalizeSctpStreamParameters(params)
    assert params["ordered"] is True
    partial: Any = {"streamId": 2, "maxRetransmits": 3}
    ortc.validateAndNormalizeSctpStreamParameters(partial)
    assert partial["ordered"] is False
    for bad, message in [
        ({}, "missing params.streamId"),
        ({"streamId": 1, "maxPacketLifeTime": "1"}, "invalid params.maxPacketLifeTime"),
        ({"streamId": 1, "maxRetransmits": "1"}, "invalid params.maxRetransmits"),
        ({"streamId": 1, "maxRetransmits": 1, "maxPacketLifeTime": 1}, "cannot provide both"),
        ({"streamId": 1, "ordered": True, "maxRetransmits": 1}, "cannot be ordered"),
        ({"streamId": 1, "label": 3}, "invalid params.label"),
        ({"streamId": 1, "protocol": 3}, "invalid params.protocol"),
    ]:
        with pytest.raises(TypeError, match=message):
            ortc.validateAndNormalizeSctpStreamParameters(bad)


def test_sctp_capabilities_and_parameters() -> None:
    ortc.validateSctpCapabilities({"numStreams": {"OS": 1024, "MIS": 1024}})
    ortc.validateSctpParameters({"port": 5000, "OS": 1024, "MIS": 1024, "maxMessageSize": 1})
    with pytest.raises(TypeError, match="numStreams"):
        ortc.validateSctpCapabilities({"numStreams": {"OS": 1}})
    with pytest.raises(TypeError, match="maxMessageSize"):
        ortc.validateSctpParameters({"port": 5000, "OS": 1024, "MIS": 1024})


# Negotiation.


def test_extended_capabilities_pair_payload_types_and_rtx() -> None:
    ext = extended()
    by_mime = {
        (c["mimeType"].lower(), c["localParameters"].get("profile-level-id")): c
        for c in ext["codecs"]
    }
    opus = by_mime[("audio/opus", None)]
    assert (opus["localPayloadType"], opus["remotePayloadType"]) == (111, 100)
    assert opus["localRtxPayloadType"] is None
    vp8 = by_mime[("video/vp8", None)]
    assert (vp8["localPayloadType"], vp8["remotePayloadType"]) == (96, 101)
    assert (vp8["localRtxPayloadType"], vp8["remoteRtxPayloadType"]) == (97, 102)
    # Feedback both sides have, as the router writes it.
    assert {"type": "nack", "parameter": "pli"} in vp8["rtcpFeedback"]
    h264 = [c for c in ext["codecs"] if c["mimeType"].lower() == "video/h264"]
    assert sorted(c["remotePayloadType"] for c in h264) == [105, 107]
    # PCMU is not offered by the router.
    assert all(c["mimeType"].lower() != "audio/pcmu" for c in ext["codecs"])


def test_extended_header_extension_directions_are_mirrored() -> None:
    ext = extended()
    rid = next(
        e
        for e in ext["headerExtensions"]
        if e["uri"].endswith("rtp-stream-id") and "repaired" not in e["uri"]
    )
    assert rid["direction"] == "sendonly"  # the router only receives rids
    mid = next(
        e for e in ext["headerExtensions"] if e["uri"].endswith("sdes:mid") and e["kind"] == "video"
    )
    assert (mid["sendId"], mid["recvId"], mid["direction"]) == (1, 1, "sendrecv")


def test_recv_and_send_capabilities() -> None:
    ext = extended()
    recv = ortc.getRecvRtpCapabilities(ext)
    send = ortc.getSendRtpCapabilities(ext)
    assert {c["preferredPayloadType"] for c in recv["codecs"]} == {
        100,
        101,
        102,
        103,
        104,
        105,
        106,
        107,
        108,
    }
    assert 111 in {c["preferredPayloadType"] for c in send["codecs"]}
    rtx = next(c for c in recv["codecs"] if c["mimeType"] == "video/rtx")
    assert rtx["parameters"]["apt"] == 101
    # A send-only extension is not something we receive.
    assert all("rtp-stream-id" not in e["uri"] for e in recv["headerExtensions"])
    assert any(e["uri"].endswith("sdes:rtp-stream-id") for e in send["headerExtensions"])
    assert ortc.canSend("audio", send) and ortc.canSend("video", send)
    assert not ortc.canSend("audio", {"codecs": []})


def test_sending_rtp_parameters() -> None:
    ext = extended()
    local = ortc.getSendingRtpParameters("video", ext)
    remote = ortc.getSendingRemoteRtpParameters("video", ext)
    assert local["codecs"][0]["payloadType"] == 96
    assert local["codecs"][1] == {
        "mimeType": "video/rtx",
        "payloadType": 97,
        "clockRate": 90000,
        "parameters": {"apt": 96},
        "rtcpFeedback": [],
    }
    # Remote parameters are the router's; transport-cc is negotiated, so REMB is dropped.
    assert remote["codecs"][0]["parameters"] == {"x-google-start-bitrate": 1500}
    assert all(fb["type"] != "goog-remb" for fb in remote["codecs"][0]["rtcpFeedback"])
    assert any(fb["type"] == "transport-cc" for fb in remote["codecs"][0]["rtcpFeedback"])
    assert all(ext["id"] for ext in remote["headerExtensions"])


def test_sending_remote_parameters_keep_remb_without_transport_cc() -> None:
    local = nativeRtpCapabilities()
    local["headerExtensions"] = [
        e for e in local["headerExtensions"] if "transport-wide-cc" not in e["uri"]
    ]
    remote = routerRtpCapabilities()
    ortc.validateAndNormalizeRtpCapabilities(local)
    ortc.validateAndNormalizeRtpCapabilities(remote)
    params = ortc.getSendingRemoteRtpParameters(
        "video", ortc.getExtendedRtpCapabilities(local, remote)
    )
    types = {fb["type"] for fb in params["codecs"][0]["rtcpFeedback"]}
    assert "goog-remb" in types and "transport-cc" not in types


def test_reduce_codecs() -> None:
    params = ortc.getSendingRtpParameters("video", extended())
    first = ortc.reduceCodecs(params["codecs"])
    assert [c["mimeType"] for c in first] == ["video/VP8", "video/rtx"]
    h264: Any = {
        "kind": "video",
        "mimeType": "video/H264",
        "clockRate": 90000,
        "parameters": {"packetization-mode": 1, "profile-level-id": "4d0032"},
    }
    reduced = ortc.reduceCodecs(params["codecs"], h264)
    assert reduced[0]["parameters"]["profile-level-id"] == "4d0032"
    assert reduced[1]["parameters"]["apt"] == reduced[0]["payloadType"]
    with pytest.raises(TypeError, match="no matching codec found"):
        ortc.reduceCodecs(
            params["codecs"], {"kind": "video", "mimeType": "video/AV1", "clockRate": 90000}
        )  # type: ignore[typeddict-item]
    assert ortc.reduceCodecs([]) == []


@pytest.mark.parametrize(
    ("a", "b", "strict", "expected"),
    [
        (
            {"profile-level-id": "42e01f", "packetization-mode": 1},
            {"profile-level-id": "42e01f", "packetization-mode": 1},
            True,
            True,
        ),
        (
            {"profile-level-id": "42e01f", "packetization-mode": 1},
            {"profile-level-id": "4d0032", "packetization-mode": 1},
            True,
            False,
        ),
        (
            {"profile-level-id": "42e01f", "packetization-mode": 1},
            {"profile-level-id": "42e01f", "packetization-mode": 0},
            True,
            False,
        ),
        (
            {"profile-level-id": "42e01f"},
            {"profile-level-id": "42e01f", "packetization-mode": 0},
            True,
            True,
        ),
        (
            {"profile-level-id": "42e01f", "packetization-mode": 1},
            {"profile-level-id": "4d0032", "packetization-mode": 0},
            False,
            True,
        ),
        ({"profile-level-id": "zzzzzz"}, {"profile-level-id": "42e01f"}, True, False),
        ({"profile-level-id": 42}, {"profile-level-id": "42e01f"}, True, False),
    ],
)
def test_match_h264(a: Any, b: Any, strict: bool, expected: bool) -> None:
    codec_a = {"mimeType": "video/H264", "clockRate": 90000, "parameters": a}
    codec_b = {"mimeType": "video/h264", "clockRate": 90000, "parameters": b}
    assert ortc.matchCodecs(codec_a, codec_b, strict=strict) is expected


def test_match_h264_modify_writes_answer_level() -> None:
    a: Any = {
        "mimeType": "video/H264",
        "clockRate": 90000,
        "parameters": {
            "profile-level-id": "42e01f",
            "packetization-mode": 1,
            "level-asymmetry-allowed": 1,
        },
    }
    b: Any = {
        "mimeType": "video/H264",
        "clockRate": 90000,
        "parameters": {"profile-level-id": "42e00a", "packetization-mode": 1},
    }
    assert ortc.matchCodecs(a, b, strict=True, modify=True)
    # No level asymmetry on both sides: the lower level wins.
    assert a["parameters"]["profile-level-id"] == b["parameters"]["profile-level-id"] == "42e00a"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [({}, {}, True), ({"profile-id": 0}, {}, True), ({"profile-id": 2}, {"profile-id": 0}, False)],
)
def test_match_vp9_profile_id(a: Any, b: Any, expected: bool) -> None:
    codec_a = {"mimeType": "video/VP9", "clockRate": 90000, "parameters": a}
    codec_b = {"mimeType": "video/VP9", "clockRate": 90000, "parameters": b}
    assert ortc.matchCodecs(codec_a, codec_b, strict=True) is expected
    assert ortc.matchCodecs(codec_a, codec_b, strict=False) is True


def test_match_codecs_basic_fields() -> None:
    opus = {"mimeType": "audio/opus", "clockRate": 48000, "channels": 2}
    assert ortc.matchCodecs(opus, {"mimeType": "AUDIO/OPUS", "clockRate": 48000, "channels": 2})
    assert not ortc.matchCodecs(opus, {"mimeType": "audio/opus", "clockRate": 48000, "channels": 1})
    assert not ortc.matchCodecs(opus, {"mimeType": "audio/opus", "clockRate": 16000, "channels": 2})
    assert not ortc.matchCodecs(opus, {"mimeType": "audio/PCMU", "clockRate": 48000, "channels": 2})


def test_can_receive_and_probator() -> None:
    recv = ortc.getRecvRtpCapabilities(extended())
    params: Any = {
        "codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}],
        "encodings": [{"ssrc": 5}],
    }
    assert ortc.canReceive(params, recv)
    params["codecs"][0]["payloadType"] = 55
    assert not ortc.canReceive(params, recv)
    assert not ortc.canReceive({"codecs": []}, recv)
    probator = ortc.generateProbatorRtpParameters(
        {"codecs": [{"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000}]}
    )
    assert probator["mid"] == "probator"
    assert probator["encodings"] == [{"ssrc": 1234}]
    assert probator["codecs"][0]["payloadType"] == 127
