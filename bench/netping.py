"""UDP pings through the impairment relay and directly, alternately, to an echo peer in this
same small process: the difference of their round trips is what the relay adds. Run by
``network_worker.py`` (relay-overhead) in a session of its own, away from the client's busy
event loop, so that loop's delays do not show up as the relay's.

Prints ``ECHO <port>``, reads ``RELAY <host> <port>`` (the relay's address for that port),
pings for ``--seconds``, prints ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class _Pinger(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.arrivals[int.from_bytes(data[1:5], "big")] = time.monotonic()


def _quantile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))]


async def main(seconds: float, interval: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    echoTransport, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    echo = echoTransport.get_extra_info("sockname")
    print(f"ECHO {echo[1]}", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    _, host, port = line.split()
    relayed = (host, int(port))
    pingTransport, pinger = await loop.create_datagram_endpoint(
        _Pinger, local_addr=("127.0.0.1", 0)
    )
    sent: dict[int, tuple[float, bool]] = {}
    deadline = time.monotonic() + seconds
    number = 0
    while time.monotonic() < deadline:
        through = number % 2 == 0
        sent[number] = (time.monotonic(), through)
        # 0xff first: no WebRTC kind of datagram (RFC 7983); 100 bytes like an audio packet.
        pingTransport.sendto(
            b"\xff" + number.to_bytes(4, "big") + bytes(95), relayed if through else echo
        )
        number += 1
        await asyncio.sleep(interval)
    await asyncio.sleep(0.3)
    pingTransport.close()
    echoTransport.close()
    arrivals = pinger.arrivals
    viaRelay = sorted(arrivals[n] - t for n, (t, r) in sent.items() if r and n in arrivals)
    direct = sorted(arrivals[n] - t for n, (t, r) in sent.items() if not r and n in arrivals)
    if not viaRelay or not direct:
        return {"pings": len(sent), "addedMedianMs": None, "addedP95Ms": None}
    ms = {
        f"{name}{label}Ms": 1000 * _quantile(values, share)
        for name, values in (("viaRelay", viaRelay), ("direct", direct))
        for label, share in (("Median", 0.5), ("P95", 0.95), ("Max", 1.0))
    }
    return {
        "pings": len(sent),
        "lost": len(sent) - len(viaRelay) - len(direct),
        **ms,
        "addedMedianMs": ms["viaRelayMedianMs"] - ms["directMedianMs"],
        "addedP95Ms": ms["viaRelayP95Ms"] - ms["directP95Ms"],
    }


def _raisePriority() -> str:
    """As the relay's (mediasoup_client.netem.process): both ends of a ping must not wait for
    CPU, or the wake-ups the relayed path needs and the direct one does not would count."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return "SCHED_FIFO 1"
    except (OSError, AttributeError):
        return "normal"


if __name__ == "__main__":
    scheduling = _raisePriority()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args()
    result = asyncio.run(main(args.seconds, args.interval))
    result["scheduling"] = scheduling
    print("RESULT " + json.dumps(result), flush=True)
