"""DataProducer and DataConsumer on the fake engine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mediasoup_client import (
    DataConsumer,
    DataProducer,
    Device,
    InvalidStateError,
    Transport,
    UnsupportedError,
)
from mediasoup_client.handlers.fake_handler import FakeDataChannel
from tests.unit.conftest import Signaling, remoteTransportParameters


async def opened(endpoint: DataProducer | DataConsumer) -> None:
    if endpoint.readyState == "open":
        return
    isOpen = asyncio.Event()
    endpoint.dataChannel.on("open", isOpen.set)
    try:
        await asyncio.wait_for(isOpen.wait(), 1)
    except TimeoutError:
        raise AssertionError(f"data channel still {endpoint.readyState}") from None


async def test_produce_data(sendTransport: Transport, signaling: Signaling) -> None:
    seen: list[DataProducer] = []
    sendTransport.observer.on("newdataproducer", seen.append)
    events: list[str] = []
    producer = await sendTransport.produceData(label="chat", protocol="json", appData={"x": 1})
    producer.on("open", lambda: events.append("open"))
    await opened(producer)
    assert events == ["open"]
    assert producer.id == "dataproducer-1"
    assert producer.label == "chat" and producer.protocol == "json"
    assert producer.appData == {"x": 1}
    assert producer.sctpStreamParameters["streamId"] == 0
    assert producer.sctpStreamParameters["ordered"] is True
    assert signaling.produceDatas[0]["sctpStreamParameters"] == producer.sctpStreamParameters
    assert seen == [producer]
    producer.send("hello")
    producer.send(b"\x00\x01")
    channel = producer.dataChannel
    assert isinstance(channel, FakeDataChannel)
    assert channel.sent == ["hello", b"\x00\x01"]
    assert producer.bufferedAmount == 0
    producer.bufferedAmountLowThreshold = 1000
    assert producer.bufferedAmountLowThreshold == 1000
    with pytest.raises(TypeError):
        producer.send(42)  # type: ignore[arg-type]
    second = await sendTransport.produceData(maxRetransmits=3)
    assert second.sctpStreamParameters["streamId"] == 1
    assert second.sctpStreamParameters["ordered"] is False
    assert second.sctpStreamParameters["maxRetransmits"] == 3
    assert sendTransport.getDataChannelMaxMessageSize() == 262144


async def test_produce_data_close_and_errors(sendTransport: Transport) -> None:
    producer = await sendTransport.produceData()
    producer.close()
    assert producer.closed
    assert producer.readyState == "closed"
    with pytest.raises(InvalidStateError, match="closed"):
        producer.send("late")


async def test_produce_data_errors(device: Device, recvTransport: Transport) -> None:
    with pytest.raises(UnsupportedError, match="not a sending transport"):
        await recvTransport.produceData()
    no_sctp = device.createSendTransport(**remoteTransportParameters(sctp=False))
    no_sctp.on("connect", lambda dtlsParameters: None)
    no_sctp.on("producedata", lambda **kwargs: "x")
    with pytest.raises(UnsupportedError, match="SCTP not enabled"):
        await no_sctp.produceData()
    no_sctp.close()
    no_listener = device.createSendTransport(**remoteTransportParameters())
    no_listener.on("connect", lambda dtlsParameters: None)
    with pytest.raises(TypeError, match='no "producedata" listener'):
        await no_listener.produceData()
    no_listener.close()
    with pytest.raises(InvalidStateError, match="closed"):
        await no_listener.produceData()


async def test_producedata_handler_error_closes_channel(device: Device) -> None:
    transport = device.createSendTransport(**remoteTransportParameters())
    transport.on("connect", lambda dtlsParameters: None)

    def refuse(**kwargs: Any) -> str:
        raise RuntimeError("no data for you")

    transport.on("producedata", refuse)
    with pytest.raises(RuntimeError, match="no data for you"):
        await transport.produceData()
    handler: Any = transport.handler
    assert all(channel.readyState == "closed" for channel in handler._dataChannels)
    transport.close()


async def test_consume_data(recvTransport: Transport) -> None:
    seen: list[DataConsumer] = []
    recvTransport.observer.on("newdataconsumer", seen.append)
    consumer = await recvTransport.consumeData(
        id="dc1",
        dataProducerId="dp1",
        sctpStreamParameters={"streamId": 7, "ordered": True},
        label="chat",
    )
    await opened(consumer)
    messages: list[Any] = []
    consumer.on("message", messages.append)
    channel = consumer.dataChannel
    assert isinstance(channel, FakeDataChannel)
    channel.receive("hi")
    channel.receive(b"\x01")
    assert messages == ["hi", b"\x01"]
    assert consumer.id == "dc1" and consumer.dataProducerId == "dp1"
    assert consumer.sctpStreamParameters["streamId"] == 7
    assert consumer.label == "chat"
    assert seen == [consumer]
    closes: list[str] = []
    consumer.on("transportclose", lambda: closes.append("transportclose"))
    recvTransport.close()
    assert closes == ["transportclose"]
    assert consumer.closed


async def test_consume_data_errors(recvTransport: Transport, sendTransport: Transport) -> None:
    with pytest.raises(UnsupportedError, match="not a receiving transport"):
        await sendTransport.consumeData(
            id="a", dataProducerId="b", sctpStreamParameters={"streamId": 1}
        )
    with pytest.raises(TypeError, match="missing id"):
        await recvTransport.consumeData(dataProducerId="b", sctpStreamParameters={"streamId": 1})
    with pytest.raises(TypeError, match="missing dataProducerId"):
        await recvTransport.consumeData(id="a", sctpStreamParameters={"streamId": 1})
    with pytest.raises(TypeError):
        await recvTransport.consumeData(id="a", dataProducerId="b", sctpStreamParameters={})


async def test_remote_close_closes_data_consumer(recvTransport: Transport) -> None:
    consumer = await recvTransport.consumeData(
        id="dc1", dataProducerId="dp1", sctpStreamParameters={"streamId": 3}
    )
    events: list[str] = []
    consumer.on("close", lambda: events.append("close"))
    consumer.dataChannel.close()
    assert events == ["close"]
    assert consumer.closed
