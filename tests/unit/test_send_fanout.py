"""Encode once for many, on a fake clock: producers of one source on several transports (one
scheduler, port and congestion controller each) share one encoder per layer, each with its own
RTP stream, and every stream decodes. Key-frame requests are coalesced; a producer joining
mid-stream starts with a key frame; transports whose budgets disagree get separate encoders."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import av
import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtcpPsfbPacket, RtpPacket, pack_remb_fci

from mediasoup_client.handlers.aiortc.send import encoders
from mediasoup_client.handlers.aiortc.send.config import sendConfig
from mediasoup_client.handlers.aiortc.send.layer_encoder import REGROUP_HOLD, EncoderHub
from mediasoup_client.handlers.aiortc.send.producer_sender import PauseMode, ProducerSender
from mediasoup_client.handlers.aiortc.send.scheduler import (
    EndedCallback,
    FrameCallback,
    InlineJobRunner,
    ScheduledProducer,
    SendScheduler,
)
from mediasoup_client.handlers.aiortc.send.send_batch import FLUSH_EVERY, batchedSends, deferred
from mediasoup_client.handlers.aiortc.send.track_fanout import SharedTrackReader, readerCount
from mediasoup_client.media.test_sources import (
    PatternVideoTrack,
    ToneAudioTrack,
    readFrameNumber,
)
from tests.unit.fake_clock import FakeClock
from tests.unit.fake_rtp_port import (
    FakeRtpPort,
    audioRtpParameters,
    videoRtpParameters,
    vp8IsKeyFrame,
)
from tests.unit.send_harness import ManualReader

FPS = 30


class Transport:
    """One transport's send path: its port, scheduler (pacer, estimate) and producers."""

    def __init__(self, clock: FakeClock) -> None:
        self.port = FakeRtpPort(clock=clock)
        self.readers: list[ManualReader] = []
        self.scheduler = SendScheduler(
            self.port, clock=clock, runner=InlineJobRunner(), readerFactory=self._reader
        )

    def _reader(self, track: Any, onFrame: FrameCallback, onEnded: EndedCallback) -> ManualReader:
        reader = ManualReader(track, onFrame, onEnded)
        self.readers.append(reader)
        return reader


class Fanout:
    """Producers of one track over several transports sharing one ``EncoderHub``."""

    def __init__(self, track: Any = None) -> None:
        self.clock = FakeClock()
        self.hub = EncoderHub()
        self.track = track or PatternVideoTrack(320, 240, FPS, paced=False)
        self.fps = FPS if self.track.kind == "video" else 50
        self.producers: list[tuple[Transport, ScheduledProducer, ManualReader, list[int]]] = []

    def produce(
        self, transport: Transport | None = None, *, track: Any = None,
        pauseMode: PauseMode = PauseMode.ZERO_RTP, **params: Any,
    ) -> tuple[Transport, ScheduledProducer]:  # fmt: skip
        transport = transport or Transport(self.clock)
        video = self.track.kind == "video"
        rtp = videoRtpParameters(**params) if video else audioRtpParameters(**params)
        sender = ProducerSender(
            sendConfig(rtp, params.get("codecOptions")),  # type: ignore[arg-type]
            pauseMode=pauseMode,
            encoderHub=self.hub,
        )
        producer = transport.scheduler.add(sender, track or self.track, onTrackEnded=lambda: None)
        producer.start()
        ssrcs = [e["ssrc"] for e in rtp["encodings"]]
        self.producers.append((transport, producer, transport.readers[-1], ssrcs))
        return transport, producer

    def push(self, seconds: float) -> None:
        """The track's frames at its rate, each handed to every producer's reader (as the one
        shared reading task does)."""
        for _ in range(round(seconds * self.fps)):
            frames: dict[int, Any] = {}
            for _transport, producer, reader, _ssrcs in self.producers:
                if not producer.closed:
                    track = reader.track
                    if id(track) not in frames:
                        frames[id(track)] = track.nextFrame()
                    reader.onFrame(frames[id(track)])
            self.clock.advance(1 / self.fps)

    def packets(self, index: int, layer: int = 0) -> list[RtpPacket]:
        transport, _producer, _reader, ssrcs = self.producers[index]
        return transport.port.packets(ssrcs[layer])

    async def close(self) -> None:
        for _transport, producer, _reader, _ssrcs in self.producers:
            await producer.stop()


@pytest.fixture
async def fanout() -> Any:
    made = Fanout()
    yield made
    await made.close()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The VideoEncoders that opened a codec (by id; a rebuild of one counts once)."""
    seen: list[int] = []
    original = encoders.VideoEncoder._open

    def recording(self: encoders.VideoEncoder, *args: Any, **kwargs: Any) -> None:
        if id(self) not in seen:
            seen.append(id(self))
        original(self, *args, **kwargs)

    monkeypatch.setattr(encoders.VideoEncoder, "_open", recording)
    return seen


def frameStarts(packets: list[RtpPacket]) -> list[RtpPacket]:
    return [p for p in packets if p.payload[0] & 0x1F == 0x10]


def keyFrames(packets: list[RtpPacket]) -> int:
    return sum(1 for p in frameStarts(packets) if vp8IsKeyFrame(p.payload))


def decodedNumbers(packets: list[RtpPacket]) -> list[int]:
    """Depacketise and decode one stream (in order, none lost): the barcodes it shows."""
    decoder = av.CodecContext.create("vp8", "r")
    numbers: list[int] = []
    data = b""
    for packet in packets:
        _descriptor, payload = VpxPayloadDescriptor.parse(packet.payload)
        data += payload
        if packet.marker:
            numbers += [readFrameNumber(f) for f in decoder.decode(av.Packet(data))]
            data = b""
    return numbers


def stats(producer: ScheduledProducer, ssrc: int) -> dict[str, Any]:
    report: dict[str, Any] = producer.getStats()[f"OT{ssrc}"]
    return report


async def test_two_transports_share_one_encoder_and_both_streams_decode(
    fanout: Fanout, opened: list[int]
) -> None:
    first, a = fanout.produce()
    second, b = fanout.produce()
    fanout.push(2)
    assert len(opened) == 1  # one encoder for both producers
    streams = [fanout.packets(0), fanout.packets(1)]
    # Own SSRC and sequence numbers per stream, own port (SRTP context) per transport.
    ssrcs = [fanout.producers[i][3][0] for i in range(2)]
    assert ssrcs[0] != ssrcs[1]
    assert first.port.ssrcs() == {ssrcs[0]} and second.port.ssrcs() == {ssrcs[1]}
    for packets in streams:
        sequence = [p.sequence_number for p in packets]
        assert sequence == [(sequence[0] + i) & 0xFFFF for i in range(len(sequence))]
    # The same encoded frames (payloads) on both, each decoding to the source's frames.
    assert [p.payload for p in streams[0]] == [p.payload for p in streams[1]]
    numbers = [decodedNumbers(packets) for packets in streams]
    assert numbers[0] == numbers[1]
    assert len(numbers[0]) >= 55 and numbers[0] == sorted(numbers[0])
    # Key frames: one per encoder (re)build (the first, and rises as both estimates rose alike).
    assert keyFrames(streams[0]) == stats(a, ssrcs[0])["encoderRebuilds"] <= 3
    for producer, ssrc in ((a, ssrcs[0]), (b, ssrcs[1])):
        entry = stats(producer, ssrc)
        assert entry["encoderShared"] == 2
        assert entry["framesEncoded"] == len(numbers[0])
    encoder = fanout.hub.encoders(next(iter(fanout.hub._groups)))[0]
    assert encoder.framesEncoded == len(numbers[0])  # encoded once, sent twice


async def test_simulcast_layers_share_per_layer(fanout: Fanout, opened: list[int]) -> None:
    fanout.produce(encodings=[{}, {}, {}])
    fanout.produce(encodings=[{}, {}, {}])
    fanout.push(2)
    assert len(opened) == 3  # one per layer, not per producer
    for layer in range(3):
        assert decodedNumbers(fanout.packets(0, layer)) == decodedNumbers(fanout.packets(1, layer))
        assert len(decodedNumbers(fanout.packets(1, layer))) >= 50


async def test_different_settings_or_sources_do_not_share(
    fanout: Fanout, opened: list[int]
) -> None:
    other = PatternVideoTrack(320, 240, FPS, paced=False)
    fanout.produce()
    fanout.produce(encodings=[{"scaleResolutionDownBy": 2.0}])
    fanout.produce(track=other)
    fanout.push(1)
    assert len(opened) == fanout.hub.encoderCount == 3


async def test_a_producer_joining_mid_stream_starts_with_a_key_frame(
    fanout: Fanout, opened: list[int]
) -> None:
    fanout.produce()
    fanout.push(1)
    fanout.produce()
    fanout.push(1)
    late = fanout.packets(1)
    assert vp8IsKeyFrame(late[0].payload)
    numbers = decodedNumbers(late)
    assert len(numbers) >= 28 and numbers == sorted(numbers)
    # The first stream got one more key frame (the joiner's) and decodes throughout.
    assert keyFrames(fanout.packets(0)) == 2
    assert len(decodedNumbers(fanout.packets(0))) >= 58
    assert len(opened) == 1


async def test_key_frame_requests_from_every_receiver_make_one_key_frame(
    fanout: Fanout,
) -> None:
    for _ in range(4):
        fanout.produce()
    fanout.push(1)
    before = [keyFrames(fanout.packets(i)) for i in range(4)]
    # A PLI from the router of every transport within a few milliseconds.
    for index, (transport, _producer, _reader, ssrcs) in enumerate(fanout.producers):
        transport.port.inject(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=ssrcs[0]))
        if index == 1:
            fanout.clock.advance(0.004)
    fanout.push(0.2)
    after = [keyFrames(fanout.packets(i)) for i in range(4)]
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1, 1]
    for index in range(4):
        assert stats(fanout.producers[index][1], fanout.producers[index][3][0])["pliCount"] == 1
    fanout.push(0.5)
    assert all(len(decodedNumbers(fanout.packets(i))) >= 45 for i in range(4))


async def test_a_closed_or_paused_producer_leaves_the_others_running(
    fanout: Fanout, opened: list[int]
) -> None:
    _first, a = fanout.produce()
    _second, b = fanout.produce()
    _third, _c = fanout.produce()
    fanout.push(0.5)
    await a.stop()
    b.pause()  # zeroRtpOnPause: b's layer stops, c's goes on
    fanout.push(0.5)
    sent_b = len(fanout.packets(1))
    fanout.push(0.5)
    assert len(fanout.packets(1)) == sent_b
    numbers = decodedNumbers(fanout.packets(2))
    assert len(numbers) >= 43 and numbers == sorted(numbers)
    b.resume()
    count = len(fanout.packets(1))
    fanout.push(0.5)
    resumed = fanout.packets(1)[count:]
    assert vp8IsKeyFrame(resumed[0].payload)
    assert len(decodedNumbers(fanout.packets(1))) >= 28
    assert len(opened) == 1


async def test_diverging_budgets_split_encoders_and_agreeing_ones_merge_back(
    fanout: Fanout, opened: list[int]
) -> None:
    _first, _a = fanout.produce()
    second, _b = fanout.produce()
    fanout.push(1)
    assert len(opened) == 1
    ssrcs = [fanout.producers[i][3][0] for i in range(2)]
    # The router's REMB caps the second transport far below the first.
    remb = RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=pack_remb_fci(120_000, ssrcs[1:]))
    second.port.inject(remb)
    fanout.push(1)
    assert fanout.hub.encoderCount == 2  # the constrained one left; the other kept its rate
    rates = [stats(p, s)["targetBitrate"] for (_t, p, _r, [s]) in fanout.producers]
    assert rates[1] <= 120_000 < rates[0]
    count = len(fanout.packets(1))
    fanout.push(2)
    for index in range(2):
        numbers = decodedNumbers(fanout.packets(index))
        assert numbers == sorted(numbers) and len(numbers) >= 110
    # Split, each follows its own transport's budget (VP8 overshoots a little after the
    # rebuild's key frame); the unconstrained one is not held down to the other's rate.
    late = fanout.packets(1)[count:]
    bits = sum(len(p.payload) for p in late) * 8 / 2
    assert bits < 150_000
    assert rates[0] > 2 * 120_000


async def test_agreeing_budgets_merge_back_after_the_hold(
    fanout: Fanout, opened: list[int]
) -> None:
    _first, _a = fanout.produce(encodings=[{"maxBitrate": 400_000}])
    _second, b = fanout.produce(encodings=[{"maxBitrate": 400_000}])
    fanout.push(1)
    b.setRtpEncodingParameters({"maxBitrate": 100_000})  # b's budget: far below a's
    fanout.push(0.5)
    assert fanout.hub.encoderCount == 2
    split_at = fanout.clock.now()
    b.setRtpEncodingParameters({"maxBitrate": 400_000})  # the same budget as a's again
    fanout.push(0.5)
    assert fanout.hub.encoderCount == 2  # not before the hold has passed
    fanout.push(REGROUP_HOLD)
    assert fanout.hub.encoderCount == 1
    assert fanout.clock.now() - split_at >= REGROUP_HOLD
    for index in range(2):
        numbers = decodedNumbers(fanout.packets(index))
        assert numbers == sorted(numbers) and len(numbers) >= 110
    assert len(opened) == 2


class CountingTrack:
    """A track whose ``recv()`` hands out 0, 1, 2, ... (``limit``: then it ends)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent = 0

    async def recv(self) -> int:
        await asyncio.sleep(0)
        if self.sent >= self.limit:
            raise MediaStreamError
        self.sent += 1
        return self.sent - 1


async def test_one_reading_task_hands_every_frame_to_every_producer_of_a_track() -> None:
    track = CountingTrack(limit=50)
    got: list[list[int]] = [[], []]
    ended: list[BaseException | None] = []
    readers = [SharedTrackReader(track, got[i].append, ended.append) for i in range(2)]
    for reader in readers:
        reader.start()
    assert readerCount(track) == 2
    while len(ended) < 2:
        await asyncio.sleep(0)
    # Each frame read once, and each producer saw all of them (not half each).
    assert track.sent == 50
    assert got[0] == got[1] == list(range(50))
    assert ended == [None, None]
    for reader in readers:
        await reader.stop()
    assert readerCount(track) == 0


async def test_the_reading_task_stops_with_the_last_producer_only() -> None:
    track = CountingTrack(limit=10**9)
    got: list[list[int]] = [[], []]
    readers = [SharedTrackReader(track, got[i].append, lambda e: None) for i in range(2)]
    for reader in readers:
        reader.start()
    for _ in range(20):
        await asyncio.sleep(0)
    await readers[0].stop()
    seen = len(got[0])
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(got[0]) == seen and len(got[1]) > seen  # the other keeps reading
    await readers[1].stop()
    read = track.sent
    for _ in range(20):
        await asyncio.sleep(0)
    assert track.sent == read and readerCount(track) == 0


@pytest.fixture
async def audio() -> Any:
    made = Fanout(ToneAudioTrack(440, 48000, paced=False))
    yield made
    await made.close()


@pytest.fixture
def opusOpened(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    original = encoders.OpusEncoder.__init__

    def recording(self: encoders.OpusEncoder, *args: Any, **kwargs: Any) -> None:
        seen.append(id(self))
        original(self, *args, **kwargs)

    monkeypatch.setattr(encoders.OpusEncoder, "__init__", recording)
    return seen


def opusDecodes(packets: list[RtpPacket]) -> int:
    decoder = av.CodecContext.create("opus", "r")
    return sum(len(decoder.decode(av.Packet(p.payload))) for p in packets)


async def test_opus_producers_of_one_track_share_one_encoder(
    audio: Fanout, opusOpened: list[int]
) -> None:
    for _ in range(5):
        audio.produce()
    audio.push(1)
    assert len(opusOpened) == 1 and audio.hub.opus.encoderCount == 1
    streams = [audio.packets(i) for i in range(5)]
    assert all(len(packets) == 50 for packets in streams)
    assert len({p.ssrc for packets in streams for p in packets}) == 5
    for packets in streams:
        # Each its own timestamps and sequence numbers, one 20 ms packet after another.
        assert {b.timestamp - a.timestamp for a, b in itertools.pairwise(packets)} == {960}
        sequence = [p.sequence_number for p in packets]
        assert sequence == [(sequence[0] + i) & 0xFFFF for i in range(50)]
        assert opusDecodes(packets) == 50
    assert len({tuple(p.payload for p in packets) for packets in streams}) == 1
    entry = audio.producers[0][1].getStats()[f"OT{audio.producers[0][3][0]}"]
    assert entry["encoderShared"] == 5


async def test_a_muted_or_paused_opus_producer_leaves_and_comes_back(
    audio: Fanout, opusOpened: list[int]
) -> None:
    _first, a = audio.produce(pauseMode=PauseMode.DISABLE_TRACK)
    _second, b = audio.produce(pauseMode=PauseMode.ZERO_RTP)
    audio.produce()
    audio.push(0.5)
    a.pause()  # silence of its own: a private encoder
    b.pause()  # nothing at all
    audio.push(0.5)
    assert len(opusOpened) == 2
    assert len(audio.packets(0)) == 50 and len(audio.packets(1)) == 25
    assert len(audio.packets(2)) == 50
    a.resume()
    b.resume()
    audio.push(0.5)
    assert [len(audio.packets(i)) for i in range(3)] == [75, 50, 75]
    assert audio.hub.opus.encoderCount == 1
    # Back on the shared encoder: the same packets as the one that never left.
    tail = [[p.payload for p in audio.packets(i)[-20:]] for i in (1, 2)]
    assert tail[0] == tail[1]
    resumed = audio.packets(1)[25:]
    assert resumed[0].marker  # a new talk spurt
    assert all(opusDecodes(audio.packets(i)) == len(audio.packets(i)) for i in range(3))


async def test_dtx_stays_per_producer_on_a_shared_opus_encoder(
    audio: Fanout, opusOpened: list[int]
) -> None:
    audio.produce()
    audio.produce(codecOptions={"opusDtx": True})
    audio.track.silent = True
    audio.push(1)
    assert len(opusOpened) == 1
    assert len(audio.packets(0)) == 50
    assert len(audio.packets(1)) <= 4  # one, then a comfort packet every 400 ms


def test_a_batch_runs_the_pacers_every_few_producers_not_once_for_all() -> None:
    # Hundreds of producers of one frame: their packets must not leave in one burst (the
    # router's socket overflowed), nor the pacer run once per producer (the cost).
    runs: list[tuple[str, int]] = []
    made = [0]
    assert not deferred(1, lambda: None)  # outside a batch: the caller runs its pacer itself
    with batchedSends():
        for index in range(100):
            made[0] += 1
            key = index % 2
            assert deferred(key, lambda key=key: runs.append(("ab"[key], made[0])))
    flushes = sorted({when for _name, when in runs})
    assert flushes == [FLUSH_EVERY, 2 * FLUSH_EVERY, 3 * FLUSH_EVERY, 100]
    assert sorted(runs) == sorted((name, when) for when in flushes for name in "ab")
