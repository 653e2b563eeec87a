"""Consumers and data channels on the real engine, checked by what is decoded and delivered."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import pytest

from mediasoup_client import Consumer
from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack, readFrameNumber
from mediasoup_client.signaling.local_sfu import LocalSfu
from mediasoup_client.signaling.room_client import RoomClient
from tests.integration.router import consumerOf, packetCounts, waitFor

SIMULCAST = [
    {"maxBitrate": 100_000, "scaleResolutionDownBy": 4},
    {"maxBitrate": 300_000, "scaleResolutionDownBy": 2},
    {"maxBitrate": 900_000},
]


async def nextVideoFrame(consumer: Consumer, timeout: float = 5) -> av.VideoFrame:
    frame = await asyncio.wait_for(consumer.track.recv(), timeout)
    assert isinstance(frame, av.VideoFrame)
    return frame


async def drain(consumer: Consumer) -> None:
    """Discard the frames decoded so far: the track queues every decoded frame, and a queued
    one comes back at once, so read until a read has to wait for the live stream."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            await asyncio.wait_for(consumer.track.recv(), 0.5)
        except TimeoutError:
            return
        if time.monotonic() - started > 0.01:
            return
    raise AssertionError("frames kept queueing for 10 s")


async def frameOfSize(consumer: Consumer, size: tuple[int, int], timeout: float) -> av.VideoFrame:
    """The first decoded frame of ``size`` (frames decoded before a layer switch come first)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await nextVideoFrame(consumer)
        if (frame.width, frame.height) == size:
            return frame
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no {size} frame within {timeout} s (last {frame.width}x{frame.height})"
            )


async def freshVideoFrame(consumer: Consumer, settle: float = 1.0) -> av.VideoFrame:
    """A frame decoded after ``settle`` seconds of reading (older queued frames drained)."""
    deadline = time.monotonic() + settle
    frame = await nextVideoFrame(consumer)
    while time.monotonic() < deadline:
        frame = await nextVideoFrame(consumer)
    return frame


async def test_simulcast_layers_decode_at_their_resolution(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    source = PatternVideoTrack(640, 480, 30)
    producer = await publisher.produce(source, encodings=SIMULCAST)
    consumer = await consumerOf(subscriber, producer.id)

    async def allLayersScored() -> bool:
        streams = await publisher.routerStats(producer)
        return len(streams) == 3 and all(s["score"] >= 9 for s in streams)

    # The router switches only to layers it has scored.
    await waitFor(allLayersScored, 10, "three scored simulcast streams")
    expected = {0: (160, 120), 1: (320, 240), 2: (640, 480)}
    # mediasoup only switches to a stream active for 2 s or more (StreamMinActiveMs).
    await asyncio.sleep(2.5)
    for layer in (0, 2, 1):
        await drain(consumer)
        await subscriber.setConsumerPreferredLayers(consumer, spatialLayer=layer)
        await frameOfSize(consumer, expected[layer], timeout=10)
        # The content is the source's: its barcode carries a recent frame number.
        numbers = [readFrameNumber(await nextVideoFrame(consumer)) for _ in range(5)]
        assert any(0 < source.framesGenerated - n < 60 for n in numbers), (
            numbers,
            source.framesGenerated,
        )
    stats = await consumer.getStats()
    [inbound] = [s for s in stats.values() if s["type"] == "inbound-rtp"]
    assert inbound["packetsReceived"] > 50
    assert inbound["packetsLost"] == 0
    assert inbound["framesDecoded"] > 50
    assert (inbound["frameWidth"], inbound["frameHeight"]) == expected[1]
    assert "jitter" in inbound


async def test_video_comes_back_within_a_second_of_a_zero_rtp_resume(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    source = PatternVideoTrack(320, 240, 30)
    producer = await publisher.produce(source, zeroRtpOnPause=True)
    consumer = await consumerOf(subscriber, producer.id)
    await freshVideoFrame(consumer)
    producer.pause()
    await asyncio.sleep(1.5)
    # Drain what was decoded before the pause.
    with pytest.raises(TimeoutError):
        while True:
            await asyncio.wait_for(consumer.track.recv(), 0.5)
    paused_at = source.framesGenerated
    resumed = time.monotonic()
    producer.resume()
    await nextVideoFrame(consumer, timeout=1.0)
    assert time.monotonic() - resumed < 1.0
    # What follows is the live source, not frames from before the pause (the first key frame
    # after resume is coarse, so the barcode is read from the frames after it).
    numbers = [readFrameNumber(await nextVideoFrame(consumer)) for _ in range(10)]
    assert max(numbers) >= paused_at, (numbers, paused_at)


async def test_a_paused_producer_shows_black_then_the_live_source_at_once(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    # The default pause (disableTrackOnPause): the consumer keeps decoding, black frames.
    publisher, subscriber = peers
    source = PatternVideoTrack(320, 240, 30)
    producer = await publisher.produce(source)
    consumer = await consumerOf(subscriber, producer.id)
    await freshVideoFrame(consumer)
    producer.pause()
    frame = await freshVideoFrame(consumer, settle=1.5)
    assert frame.to_ndarray(format="gray").max() <= 20
    paused_at = source.framesGenerated
    resumed = time.monotonic()
    producer.resume()
    while True:
        frame = await nextVideoFrame(consumer, timeout=1.0)
        if frame.to_ndarray(format="gray").std() > 20:
            break
    assert time.monotonic() - resumed < 1.0
    numbers = [readFrameNumber(await nextVideoFrame(consumer)) for _ in range(10)]
    assert max(numbers) >= paused_at, (numbers, paused_at)


async def test_replace_track_switches_the_decoded_content(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    first = PatternVideoTrack(320, 240, 30)
    producer = await publisher.produce(first)
    consumer = await consumerOf(subscriber, producer.id)
    await asyncio.sleep(4)  # the first source's frame numbers are well above 100
    assert readFrameNumber(await freshVideoFrame(consumer)) > 90
    consumers_before = set(subscriber.consumers)
    await producer.replaceTrack(track=PatternVideoTrack(320, 240, 30, seed=5))
    frame = await freshVideoFrame(consumer, settle=1.5)
    # The new source counts from zero again.
    assert readFrameNumber(frame) < 60
    assert set(subscriber.consumers) == consumers_before


async def test_audio_tone_frequency_survives_the_trip(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    producer = await publisher.produce(ToneAudioTrack(frequency=1000))
    consumer = await consumerOf(subscriber, producer.id)
    await asyncio.sleep(1)
    samples: list[np.ndarray] = []
    rate = 48000
    for _ in range(50):
        frame = await asyncio.wait_for(consumer.track.recv(), 5)
        assert isinstance(frame, av.AudioFrame)
        rate = frame.sample_rate
        # Packed s16: interleaved channels; take the first one.
        channels = len(frame.layout.channels)
        samples.append(frame.to_ndarray().reshape(-1, channels)[:, 0])
    signal = np.concatenate(samples).astype(float)
    spectrum = np.abs(np.fft.rfft(signal))
    peak = np.fft.rfftfreq(len(signal), 1 / rate)[spectrum.argmax()]
    assert abs(peak - 1000) < 10, peak


def mixedMessage(index: int) -> str | bytes:
    """1 B to 3 KB, text and binary alternately, starting with its index."""
    size = 1 + (index * 7919) % 3000
    body = f"{index}:".ljust(size, "x")
    return body if index % 2 else body.encode()


def largeMessage(index: int) -> bytes:
    return f"{index}:".encode().ljust(65536, b"y")


async def burstThroughTheRouter(
    peers: tuple[RoomClient, RoomClient], count: int, message: Callable[[int], str | bytes]
) -> None:
    """``count`` ordered messages from our DataProducer, sent as fast as ``bufferedAmount``
    allows, to our DataConsumer in the same process, through a router on mediasoup's default
    ``sctpSendBufferSize``: all arrive, in order, and the router dropped none."""
    publisher, subscriber = peers
    dataProducer = await publisher.produceData(label="bulk", protocol="test")
    opened = asyncio.Event()
    dataProducer.on("open", opened.set)
    if dataProducer.readyState == "open":
        opened.set()
    await asyncio.wait_for(opened.wait(), 10)

    async def consumed() -> bool:
        return bool(subscriber.dataConsumers)

    await waitFor(consumed, 10, "the server's newDataConsumer")
    [dataConsumer] = subscriber.dataConsumers.values()
    assert dataConsumer.label == "bulk" and dataConsumer.protocol == "test"
    info = await subscriber.request(
        "getTransportInfo", {"transportId": subscriber.recvTransport.id}
    )
    assert info["sctpParameters"]["sendBufferSize"] == 262144  # what users' routers run
    received: list[Any] = []
    dataConsumer.on("message", received.append)
    await asyncio.sleep(0.5)  # the consumer's channel opens on the server side

    low = asyncio.Event()
    dataProducer.bufferedAmountLowThreshold = 64 * 1024
    dataProducer.on("bufferedamountlow", low.set)
    for index in range(count):
        dataProducer.send(message(index))
        if dataProducer.bufferedAmount > 1024 * 1024:
            low.clear()
            await asyncio.wait_for(low.wait(), 30)
    # Wait while messages keep arriving: what the router dropped never will.
    arrived, quietSince = 0, time.monotonic()
    while len(received) < count and time.monotonic() - quietSince < 5:
        await asyncio.sleep(0.1)
        if len(received) != arrived:
            arrived, quietSince = len(received), time.monotonic()
    drops = await subscriber.request("getDataConsumerInfo", {"dataConsumerId": dataConsumer.id})
    firstWrong = next(
        (i for i, m in enumerate(received) if m != message(i)), min(len(received), count)
    )
    assert (len(received), firstWrong, drops["sctpSendBufferFull"]) == (count, count, 0), (
        f"{len(received)} of {count} received, in order up to {firstWrong}, "
        f"{drops['sctpSendBufferFull']} dropped by the router (sctpsendbufferfull)"
    )
    [stats] = await publisher.request("getDataProducerStats", {"dataProducerId": dataProducer.id})
    assert stats["messagesReceived"] == count


async def test_ten_thousand_ordered_messages_arrive_complete_and_in_order(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, _ = peers
    await burstThroughTheRouter(peers, 10_000, mixedMessage)
    assert publisher.device.sctpCapabilities["numStreams"]["OS"] == 1024
    assert publisher.sendTransport.getDataChannelMaxMessageSize() == 262144


async def test_two_thousand_64_kib_messages_arrive_complete_and_in_order(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    await burstThroughTheRouter(peers, 2_000, largeMessage)


async def test_ice_restart_keeps_media_flowing(peers: tuple[RoomClient, RoomClient]) -> None:
    publisher, _ = peers
    producer = await publisher.produce(ToneAudioTrack())

    async def flowing() -> bool:
        return sum((await packetCounts(publisher, producer)).values()) > 10

    await waitFor(flowing, 10, "audio to flow")
    iceParameters = await publisher.request(
        "restartIce", {"transportId": publisher.sendTransport.id}
    )
    await publisher.sendTransport.restartIce(iceParameters=iceParameters)
    before = sum((await packetCounts(publisher, producer)).values())
    await asyncio.sleep(8)  # past several ICE consent checks with the new credentials
    after = sum((await packetCounts(publisher, producer)).values())
    assert after - before > 300
    assert publisher.sendTransport.connectionState == "connected"


async def test_a_vanished_sfu_fails_the_transports_and_everything_closes_cleanly() -> None:
    sfu = LocalSfu().start()
    try:
        room = uuid.uuid4().hex[:8]
        # recover=False: this is about the transport's own states (RoomClient would replace it).
        publisher = await RoomClient.join(sfu.url_for(room, "publisher"), recover=False)
        producer = await publisher.produce(ToneAudioTrack())
        video = await publisher.produce(PatternVideoTrack(160, 120, 15))

        async def connected() -> bool:
            return publisher.sendTransport.connectionState == "connected"

        await waitFor(connected, 10, "the transport to connect")
        states: list[str] = []
        publisher.sendTransport.on("connectionstatechange", states.append)
        sfu.kill()
        started = time.monotonic()

        async def left() -> bool:
            return publisher.sendTransport.connectionState != "connected"

        await waitFor(left, 30, "connectionState to leave connected", interval=0.5)
        # Consent checks go unanswered: disconnected within ~4 s of silence.
        assert time.monotonic() - started < 6
        assert states == ["disconnected"]
        producer.close()
        video.close()
        await asyncio.wait_for(publisher.close(), 10)
        assert producer.closed and video.closed and publisher.sendTransport.closed
    finally:
        sfu.stop()


async def test_quiet_healthy_transports_never_flap(sfu: LocalSfu) -> None:
    # The router sends RTCP to an audio-only send transport only every ~5 s, and nothing at
    # all to an idle receive or data-only one: consent checks fill the silence.
    room = uuid.uuid4().hex[:8]
    publisher = await RoomClient.join(sfu.url_for(room, "publisher"), consume=False)
    idle = await RoomClient.join(sfu.url_for(room, "idle"), produce=False)
    try:
        await publisher.produce(ToneAudioTrack())
        channel = await publisher.produceData()
        transports = [publisher.sendTransport, idle.recvTransport]

        async def connected() -> bool:
            return all(t.connectionState == "connected" for t in transports)

        await waitFor(connected, 10, "both transports to connect")
        states: list[str] = []
        for transport in transports:
            transport.on("connectionstatechange", states.append)
        assert channel.readyState in ("connecting", "open")
        await asyncio.sleep(20)
        assert states == [], states
        assert publisher.sendTransport.connectionState == "connected"
    finally:
        await idle.close()
        await publisher.close()


async def test_consumers_come_and_go_on_one_transport(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    # Three producers at once: the server pushes three newConsumer requests concurrently.
    audio, small, large = await asyncio.gather(
        publisher.produce(ToneAudioTrack(frequency=500)),
        publisher.produce(PatternVideoTrack(160, 120, 15)),
        publisher.produce(PatternVideoTrack(320, 240, 15, seed=3)),
    )
    audioConsumer, smallConsumer, largeConsumer = [
        await consumerOf(subscriber, p.id) for p in (audio, small, large)
    ]
    assert len({c.localId for c in (audioConsumer, smallConsumer, largeConsumer)}) == 3
    consumers = (audioConsumer, smallConsumer, largeConsumer)
    assert len({c.rtpParameters["encodings"][0]["ssrc"] for c in consumers}) == 3
    assert (await nextVideoFrame(smallConsumer)).width == 160
    assert (await nextVideoFrame(largeConsumer)).width == 320
    assert isinstance(await asyncio.wait_for(audioConsumer.track.recv(), 5), av.AudioFrame)

    # Closing one producer closes its consumer only; the others keep decoding.
    ended = asyncio.Event()
    smallConsumer.on("trackended", ended.set)
    closed = asyncio.Event()
    smallConsumer.observer.on("close", closed.set)
    await publisher.closeProducer(small)
    await asyncio.wait_for(closed.wait(), 5)
    assert smallConsumer.closed
    await drain(largeConsumer)
    assert (await nextVideoFrame(largeConsumer)).width == 320

    # A producer added later is consumed on the same transport while the others run.
    later = await publisher.produce(PatternVideoTrack(240, 180, 15))
    laterConsumer = await consumerOf(subscriber, later.id)
    assert (await nextVideoFrame(laterConsumer)).width == 240
    assert laterConsumer.localId not in (largeConsumer.localId, audioConsumer.localId)
    assert (await freshVideoFrame(largeConsumer, settle=0.5)).width == 320


async def test_consumer_pause_stops_frames_and_resume_brings_them_back(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    producer = await publisher.produce(PatternVideoTrack(320, 240, 30))
    consumer = await consumerOf(subscriber, producer.id)
    await freshVideoFrame(consumer)
    consumer.pause()
    await subscriber.request("pauseConsumer", {"consumerId": consumer.id})
    assert consumer.paused
    await asyncio.sleep(0.5)
    await drain(consumer)
    before = [s for s in (await consumer.getStats()).values() if s["type"] == "inbound-rtp"]
    await asyncio.sleep(1.5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(consumer.track.recv(), 0.5)
    after = [s for s in (await consumer.getStats()).values() if s["type"] == "inbound-rtp"]
    assert after[0]["packetsReceived"] == before[0]["packetsReceived"]
    resumed = time.monotonic()
    consumer.resume()
    await subscriber.request("resumeConsumer", {"consumerId": consumer.id})
    # The receiver asks for a key frame on resume, so the picture is back at once.
    await nextVideoFrame(consumer, timeout=1.5)
    assert time.monotonic() - resumed < 1.5


async def test_unordered_and_partially_reliable_data_channels(
    peers: tuple[RoomClient, RoomClient],
) -> None:
    publisher, subscriber = peers
    unordered = await publisher.produceData(ordered=False, maxRetransmits=2, label="lossy")
    timed = await publisher.produceData(ordered=False, maxPacketLifeTime=500, label="timed")

    async def bothConsumed() -> bool:
        return len(subscriber.dataConsumers) == 2

    await waitFor(bothConsumed, 10, "two newDataConsumer requests")
    byLabel = {dc.label: dc for dc in subscriber.dataConsumers.values()}
    # The server took our stream parameters as they were signalled (mediasoup 3.8 leaves out a
    # maxRetransmits of 0, so 2 is used here).
    assert byLabel["lossy"].sctpStreamParameters["ordered"] is False
    assert byLabel["lossy"].sctpStreamParameters["maxRetransmits"] == 2
    assert byLabel["timed"].sctpStreamParameters["maxPacketLifeTime"] == 500
    received: dict[str, list[Any]] = {"lossy": [], "timed": []}
    for label, dataConsumer in byLabel.items():
        dataConsumer.on("message", received[label].append)
    for dataProducer in (unordered, timed):
        if dataProducer.readyState != "open":
            opened = asyncio.Event()
            dataProducer.on("open", opened.set)
            await asyncio.wait_for(opened.wait(), 10)
    await asyncio.sleep(0.5)
    for index in range(200):
        unordered.send(f"text {index}")
        timed.send(bytes([index % 256]) * 100)

    async def arrived() -> bool:
        # Loopback loses nothing, so even the unreliable channels deliver everything.
        return len(received["lossy"]) == 200 and len(received["timed"]) == 200

    await waitFor(arrived, 10, "400 messages")
    assert sorted(received["lossy"]) == sorted(f"text {i}" for i in range(200))
    assert all(isinstance(m, bytes) and len(m) == 100 for m in received["timed"])


async def test_a_server_side_transport_close_fails_the_transport(sfu: LocalSfu) -> None:
    # recover=False: this is about the transport's own states (RoomClient would replace it).
    publisher = await RoomClient.join(sfu.url_for(), consume=False, recover=False)
    producer = await publisher.produce(ToneAudioTrack())
    transport = publisher.sendTransport

    async def connected() -> bool:
        return transport.connectionState == "connected"

    await waitFor(connected, 10, "the transport to connect")
    await publisher.request("closeTransport", {"transportId": transport.id})

    async def left() -> bool:
        return transport.connectionState in ("disconnected", "failed")

    await waitFor(left, 30, "connectionState to leave connected", interval=0.5)
    assert transport.connectionState == "failed"
    producer.close()
    transport.close()
    assert producer.closed and transport.closed
    await publisher.close()
