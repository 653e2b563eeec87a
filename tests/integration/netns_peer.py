"""A peer run inside a test's network namespace (``ip netns exec NAME python -m
tests.integration.netns_peer ...``): joins the room with the given ICE options, sends audio,
video and data, receives the data of the room's other peer, and prints one ``RESULT {json}``
line: what the router counted for its producers, the selected candidate pairs, the states
its transports went through, the data it received and the first RTP delay.

    python -m tests.integration.netns_peer --url WS_URL [--ice-servers JSON]
        [--policy relay] [--force-tcp] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from mediasoup_client.media.test_sources import PatternVideoTrack, ToneAudioTrack
from mediasoup_client.signaling.room_client import RoomClient


async def firstPacketDelay(client: RoomClient, producer: Any, started: float) -> float | None:
    """Seconds from ``started`` to the first poll showing a packet at the router."""
    deadline = started + 15
    while time.perf_counter() < deadline:
        asked = time.perf_counter()
        if any(s.get("packetCount", 0) > 0 for s in await client.routerStats(producer)):
            return asked - started
        await asyncio.sleep(0.005)
    return None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    client = await RoomClient.join(
        args.url,
        displayName="netns-peer",
        iceServers=json.loads(args.ice_servers) if args.ice_servers else None,
        iceTransportPolicy=args.policy,
        forceTcp=args.force_tcp,
    )
    states: dict[str, list[str]] = {"send": [], "recv": []}
    client.sendTransport.on("connectionstatechange", lambda state: states["send"].append(state))
    client.recvTransport.on("connectionstatechange", lambda state: states["recv"].append(state))
    received: list[str] = []

    def onDataConsumer(dataConsumer: Any) -> None:
        dataConsumer.on("message", lambda data, ppid=None: received.append(str(data)))

    client.on("newdataconsumer", onDataConsumer)
    for dataConsumer in client.dataConsumers.values():
        onDataConsumer(dataConsumer)
    try:
        started = time.perf_counter()
        audio = await client.produce(ToneAudioTrack(440))
        firstRtp = await firstPacketDelay(client, audio, started)
        video = await client.produce(PatternVideoTrack(320, 240, 15))
        channel = await client.produceData(label="from-netns")
        sent = 0
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            if channel.readyState == "open":
                sent += 1
                channel.send(f"netns-{sent}")
            await asyncio.sleep(0.1)
        return {
            "firstRtpSeconds": firstRtp,
            "audio": await client.routerStats(audio),
            "video": await client.routerStats(video),
            "sendPair": (await client.sendTransport.getStats()).get("candidate-pair"),
            "recvPair": (await client.recvTransport.getStats()).get("candidate-pair"),
            "states": states,
            "dataSent": sent,
            "dataReceived": len(received),
        }
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--ice-servers")
    parser.add_argument("--policy")
    parser.add_argument("--force-tcp", action="store_true")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    result = asyncio.run(run(args))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
