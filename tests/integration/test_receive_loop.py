"""A consumer's receive path end to end without a network: the library's own send path
produces real VP8/H264/Opus RTP on one in-memory port, a loop hands it (with the losses a test
chooses) to a ConsumerReceiver on another, and the receiver's RTCP goes back to the sender.

Real time, real threads (encoders, decoders): an integration test of both asyncio layers,
without the router."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import av
import pytest
from aiortc.rtp import RtcpPacket, RtcpPsfbPacket, RtcpRrPacket, RtcpRtpfbPacket, RtpPacket

from mediasoup_client.handlers.aiortc.receive import ConsumerReceiver, TransportFeedbackSender
from mediasoup_client.handlers.aiortc.send.cc.transport_feedback import extractTransportFeedback
from mediasoup_client.handlers.aiortc.send.config import sendConfig
from mediasoup_client.handlers.aiortc.send.producer_sender import PauseMode, ProducerSender
from mediasoup_client.handlers.aiortc.send.scheduler import ScheduledProducer, SendScheduler
from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack, readFrameNumber
from tests.unit.fake_rtp_port import FakeRtpPort, audioRtpParameters, videoRtpParameters

SPEED = 2.0  # sources run twice as fast as real time


async def waitFor(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` every 10 ms until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


URI_TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


def consumerParameters(producer: dict[str, Any]) -> dict[str, Any]:
    """What the router would hand a consumer of ``producer`` (same SSRCs and payload types
    here, so packets pass through unchanged)."""
    codecs = []
    for codec in producer["codecs"]:
        codec = dict(codec)
        if not codec["mimeType"].lower().endswith("/rtx") and codec["mimeType"].startswith("v"):
            codec["rtcpFeedback"] = [
                {"type": "transport-cc", "parameter": ""},
                {"type": "nack", "parameter": ""},
                {"type": "nack", "parameter": "pli"},
                {"type": "ccm", "parameter": "fir"},
            ]
        codecs.append(codec)
    encoding = producer["encodings"][0]
    return {
        "mid": "0",
        "codecs": codecs,
        "headerExtensions": [{"uri": URI_TRANSPORT_CC, "id": 5, "encrypt": False}],
        "encodings": [
            {"ssrc": encoding["ssrc"], **({"rtx": encoding["rtx"]} if "rtx" in encoding else {})}
        ],
        "rtcp": {"cname": "router", "reducedSize": True, "mux": True},
    }


class Loop:
    """Sender port -> (drop?) -> receiver port, and the receiver's RTCP back to the sender."""

    def __init__(self, producerParams: dict[str, Any], track: Any, kind: str) -> None:
        self.sendPort = FakeRtpPort()
        self.recvPort = FakeRtpPort()
        self.sender: ScheduledProducer = SendScheduler(self.sendPort).add(
            ProducerSender(sendConfig(producerParams), pauseMode=PauseMode.ZERO_RTP),  # type: ignore[arg-type]
            track,
            onTrackEnded=lambda: None,
        )
        self.feedback = TransportFeedbackSender(self.recvPort, rtcpSsrc=99)
        self.receiver = ConsumerReceiver(
            port=self.recvPort,
            kind=kind,
            rtpParameters=consumerParameters(producerParams),  # type: ignore[arg-type]
            trackId="t1",
            rtcpSsrc=77,
            feedback=self.feedback,
        )
        self.drop: Callable[[RtpPacket], bool] = lambda packet: False
        self.dropped: list[RtpPacket] = []
        self.transportSeq = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sender.start()
        self.receiver.start()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.receiver.stop()
        await self.feedback.stop()
        await self.sender.stop()

    async def _run(self) -> None:
        forwarded = rtcp_seen = reports_seen = 0
        while True:
            await asyncio.sleep(0.002)
            while reports_seen < len(self.sendPort.rtcp):  # the sender's SRs
                for packet in RtcpPacket.parse(self.sendPort.rtcp[reports_seen]):
                    self.recvPort.deliverRtcpToReceivers(packet)
                reports_seen += 1
            sent = self.sendPort.rtp
            while forwarded < len(sent):
                packet = sent[forwarded].packet
                forwarded += 1
                self.transportSeq = (self.transportSeq + 1) & 0xFFFF
                packet.extensions.transport_sequence_number = self.transportSeq
                if self.drop(packet):
                    self.dropped.append(packet)
                    continue
                self.recvPort.deliverRtp(packet)
            while rtcp_seen < len(self.recvPort.rtcp):
                data = self.recvPort.rtcp[rtcp_seen]
                rtcp_seen += 1
                if data[1] == 205 and data[0] & 0x1F == 15:
                    continue  # transport feedback is for the router, not the producer
                self.sendPort.inject(data)

    def rtcpFromReceiver(self) -> list[Any]:
        packets: list[Any] = []
        for data in self.recvPort.rtcp:
            if data[1] == 205 and data[0] & 0x1F == 15:
                packets.extend(extractTransportFeedback(data))
            else:
                packets.extend(RtcpPacket.parse(data))
        return packets

    def inbound(self) -> dict[str, Any]:
        [entry] = [s for s in self.receiver.getStats().values() if s["type"] == "inbound-rtp"]
        return entry


@pytest.fixture
async def loops() -> AsyncIterator[list[Loop]]:
    made: list[Loop] = []
    yield made
    for loop in made:
        await loop.stop()


def videoLoop(loops: list[Loop], mimeType: str = "video/VP8", **track: Any) -> Loop:
    source = PatternVideoTrack(track.get("width", 320), track.get("height", 240), 30, speed=SPEED)
    loop = Loop(videoRtpParameters(mimeType=mimeType), source, "video")
    loops.append(loop)
    loop.start()
    return loop


async def frames(loop: Loop, count: int, timeout: float = 10) -> list[av.VideoFrame]:
    out = []
    for _ in range(count):
        out.append(await asyncio.wait_for(loop.receiver.track.recv(), timeout))
    return out


@pytest.mark.parametrize("mimeType", ["video/VP8", "video/H264"])
async def test_video_decodes_at_its_size_with_the_source_content(loops: list[Loop], mimeType: str):
    loop = videoLoop(loops, mimeType)
    decoded = await frames(loop, 30)
    assert all(isinstance(f, av.VideoFrame) and (f.width, f.height) == (320, 240) for f in decoded)
    numbers = [readFrameNumber(f) for f in decoded[5:]]
    assert numbers == sorted(numbers) and numbers[-1] - numbers[0] >= 20
    # pts in the 90 kHz clock, from the first frame, about one frame apart.
    # (whole frame intervals: a loaded sender may skip source frames)
    steps = [b.pts - a.pts for a, b in itertools.pairwise(decoded)]
    assert all(step > 0 and abs(step / 3000 - round(step / 3000)) < 0.2 for step in steps), steps
    assert decoded[0].time_base == fractions.Fraction(1, 90000)
    stats = loop.inbound()
    assert stats["ssrc"] == loop.receiver.core.mediaSsrc
    assert stats["framesDecoded"] >= 30 and stats["keyFramesDecoded"] >= 1
    assert (stats["frameWidth"], stats["frameHeight"]) == (320, 240)
    assert stats["packetsLost"] == 0 and stats["nackCount"] == 0
    # The receiver asked for a key frame once at the start, never again.
    assert stats["pliCount"] == 1


async def test_lost_packets_are_nacked_repaired_over_rtx_and_counted_on_the_media_ssrc(
    loops: list[Loop],
):
    loop = videoLoop(loops)
    await frames(loop, 10)
    media_ssrc = loop.receiver.core.mediaSsrc
    counter = {"n": 0}

    def everyTwentiethMedia(packet: RtpPacket) -> bool:
        if packet.ssrc != media_ssrc:
            return False
        counter["n"] += 1
        return counter["n"] % 20 == 0

    loop.drop = everyTwentiethMedia
    # Until five are lost: how many packets a frame takes is the encoder's business (at
    # SPEED its rate control sees wall time, so frames are half the size of real-time ones).
    decoded: list[av.VideoFrame] = []
    while len(loop.dropped) < 5 and len(decoded) < 300:
        decoded += await frames(loop, 10)
    loop.drop = lambda packet: False
    sent_then = len(loop.sendPort.packets(media_ssrc))
    # Until the last repairs are in.
    await waitFor(lambda: loop.inbound()["packetsReceived"] >= sent_then, timeout=3)
    inbound = loop.inbound
    await waitFor(lambda: inbound()["framesDecoded"] == inbound()["framesReceived"], timeout=3)
    stats = loop.inbound()
    lost = len(loop.dropped)
    assert lost >= 5
    # The single inbound-rtp entry is the media SSRC, with the repairs inside it.
    assert stats["ssrc"] == media_ssrc and stats["rtxSsrc"] == loop.receiver.core.rtxSsrc
    assert stats["retransmittedPacketsReceived"] >= lost
    # Lost on the media SSRC (what the receiver reports tell the router), all repaired.
    assert stats["packetsLost"] == lost
    sent = len(loop.sendPort.packets(media_ssrc))
    assert sent_then <= stats["packetsReceived"] <= sent  # every original, lost ones via RTX
    assert stats["retransmittedBytesReceived"] > 0 and stats["nackCount"] >= 1
    # Repaired in time: every frame decoded, nothing dropped, no new key frame needed.
    # (The sender may skip source frames on a loaded machine: judge by what it sent.)
    numbers = [readFrameNumber(f) for f in decoded]
    assert numbers == sorted(numbers), numbers
    assert stats["framesDecoded"] == stats["framesReceived"]
    # Repairs come within the frame deadline (on a loopback RTT; a CPU-starved test machine
    # may stall the loop past it once, costing one key frame).
    assert stats["pliCount"] <= 2 and stats["framesDropped"] <= 0.05 * stats["framesDecoded"]
    nacks = [p for p in loop.rtcpFromReceiver() if isinstance(p, RtcpRtpfbPacket)]
    assert nacks and all(p.media_ssrc == media_ssrc and p.ssrc == 77 for p in nacks)


async def test_an_unrepairable_loss_costs_one_key_frame_not_a_stall(loops: list[Loop]):
    loop = videoLoop(loops)
    await frames(loop, 30)  # past the first key-frame request's rate limit
    media_ssrc = loop.receiver.core.mediaSsrc
    rtx_ssrc = loop.receiver.core.rtxSsrc
    doomed: set[int] = set()

    def loseOnePacketForGood(packet: RtpPacket) -> bool:
        if packet.ssrc == media_ssrc and not doomed:
            doomed.add(packet.sequence_number)
            return True
        if packet.ssrc == rtx_ssrc:
            return int.from_bytes(packet.payload[:2], "big") in doomed
        return packet.ssrc == media_ssrc and packet.sequence_number in doomed

    loop.drop = loseOnePacketForGood
    started = time.monotonic()
    gaps = []
    last = time.monotonic()
    while time.monotonic() - started < 2.5:
        await asyncio.wait_for(loop.receiver.track.recv(), 5)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    stats = loop.inbound()
    assert stats["pliCount"] == 2  # the start, and once for the loss
    assert stats["framesDropped"] >= 1 and stats["packetsLost"] == 1
    # Decoding stopped for the frame wait plus the key frame's round trip, well under 0.5 s.
    assert max(gaps) < 0.5, max(gaps)
    plis = [p for p in loop.rtcpFromReceiver() if isinstance(p, RtcpPsfbPacket)]
    assert len(plis) == 2 and all(p.media_ssrc == media_ssrc for p in plis)


async def test_receiver_reports_and_transport_feedback_go_out(loops: list[Loop]):
    loop = videoLoop(loops)
    await frames(loop, 30)
    await waitFor(
        lambda: any(isinstance(p, RtcpRrPacket) for p in loop.rtcpFromReceiver()), timeout=3
    )
    [report] = [p for p in loop.rtcpFromReceiver() if isinstance(p, RtcpRrPacket)][-1].reports
    assert report.ssrc == loop.receiver.core.mediaSsrc and report.packets_lost == 0
    # The router's SR is answered with LSR/DLSR in the next report.
    assert report.lsr != 0  # the producer sent SRs through the loop's RTCP
    feedback = [p for p in loop.rtcpFromReceiver() if not hasattr(p, "ssrc")]
    reported = set()
    for packet in feedback:
        reported |= {seq for seq, arrival in packet.arrivals() if arrival is not None}
    assert len(reported) >= loop.transportSeq * 0.8


async def test_pause_drops_media_and_resume_restarts_from_a_key_frame(loops: list[Loop]):
    loop = videoLoop(loops)
    await frames(loop, 10)
    loop.receiver.pause()
    before = loop.inbound()["packetsReceived"]
    await asyncio.sleep(0.5)
    assert loop.inbound()["packetsReceived"] == before
    while True:  # frames decoded before the pause
        try:
            await asyncio.wait_for(loop.receiver.track.recv(), 0.2)
        except TimeoutError:
            break
    loop.receiver.resume()
    resumed = time.monotonic()
    await frames(loop, 1, timeout=2)
    assert time.monotonic() - resumed < 1.0
    stats = loop.inbound()
    assert stats["pliCount"] == 2 and stats["packetsLost"] == 0


async def test_audio_decodes_and_a_lost_packet_becomes_concealed_silence(loops: list[Loop]):
    params = audioRtpParameters()
    loop = Loop(params, ToneAudioTrack(frequency=1000, speed=SPEED), "audio")
    loops.append(loop)
    loop.start()
    first = await asyncio.wait_for(loop.receiver.track.recv(), 5)
    assert isinstance(first, av.AudioFrame) and first.sample_rate == 48000
    count = {"n": 0}

    def everyTenth(packet: RtpPacket) -> bool:
        count["n"] += 1
        return count["n"] % 10 == 0

    loop.drop = everyTenth
    received = [await asyncio.wait_for(loop.receiver.track.recv(), 5) for _ in range(50)]
    pts = [f.pts for f in received]
    assert all(b - a == 960 for a, b in itertools.pairwise(pts)), pts
    stats = loop.inbound()
    assert stats["concealedSamples"] >= 960 and stats["concealmentEvents"] >= 1
    assert stats["packetsLost"] >= 1
    assert stats["totalSamplesReceived"] >= 50 * 960
    assert "nackCount" not in stats
