"""The DataProducer of the data-throughput scenario: always our client, in its own process, so
both consumers (ours, pymediasoup) face the same sender. Started by ``worker.py data``.

    python bench/data_producer.py --url WS_URL --count N --sizes mixed|64k

Joins the room, produces one ordered data channel, prints ``READY``, waits for ``GO`` on
stdin (the consumer has its DataConsumer), sends the messages as fast as ``bufferedAmount``
allows (above 1 MiB buffered it waits for ``bufferedamountlow`` at 64 KiB, as an application
would) and prints ``SENT {json}``; on ``STATS`` prints ``STATS {json}`` (what the router
received), and closes when stdin ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from mediasoup_client.signaling.room_client import RoomClient

HIGH_WATER = 1024 * 1024
LOW_WATER = 64 * 1024


def message(index: int, sizes: str) -> str | bytes:
    """Message ``index`` of the workload: it starts with its index, so the consumer checks the
    order. ``mixed``: 1 B to 3 KB, text and binary alternately; ``64k``: 64 KiB binary."""
    if sizes == "64k":
        return f"{index}:".encode().ljust(65536, b"y")
    size = 1 + (index * 7919) % 3000
    body = f"{index}:".ljust(size, "x")
    return body if index % 2 else body.encode()


async def readLine() -> str:
    return (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()


async def run(args: argparse.Namespace) -> None:
    client = await RoomClient.join(args.url, consume=False, displayName="data-producer")
    try:
        dataProducer = await client.produceData(label="bench", protocol="bench")
        if dataProducer.readyState != "open":
            opened = asyncio.Event()
            dataProducer.on("open", opened.set)
            await asyncio.wait_for(opened.wait(), 10)
        print("READY", flush=True)
        if await readLine() != "GO":
            return
        low = asyncio.Event()
        dataProducer.bufferedAmountLowThreshold = LOW_WATER
        dataProducer.on("bufferedamountlow", low.set)
        started, cpuStarted = time.monotonic(), time.process_time()
        sentBytes = 0
        for index in range(args.count):
            data = message(index, args.sizes)
            sentBytes += len(data)
            dataProducer.send(data)
            if dataProducer.bufferedAmount > HIGH_WATER:
                low.clear()
                await asyncio.wait_for(low.wait(), 60)
        while dataProducer.bufferedAmount > 0:
            await asyncio.sleep(0.005)
        result = {
            "sent": args.count,
            "sentBytes": sentBytes,
            "sendSeconds": time.monotonic() - started,
            "cpuSeconds": time.process_time() - cpuStarted,
        }
        print("SENT " + json.dumps(result), flush=True)
        # When the consumer is done: what the router received from us.
        if await readLine() == "STATS":
            [stats] = await client.request(
                "getDataProducerStats", {"dataProducerId": dataProducer.id}
            )
            received = {"routerReceived": stats.get("messagesReceived")}
            print("STATS " + json.dumps(received), flush=True)
        await readLine()  # the consumer closes our stdin when it is done
    finally:
        await asyncio.wait_for(client.close(), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--sizes", choices=["mixed", "64k"], default="mixed")
    asyncio.run(run(parser.parse_args()))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
