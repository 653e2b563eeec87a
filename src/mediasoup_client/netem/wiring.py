"""Putting a relay between a transport and the router: rewrite the server's answer.

A mediasoup ``createWebRtcTransport`` answer carries the router's ``iceCandidates``; give the
client the relay's instead and everything the transport sends and receives goes through it::

    relay = await RelayProcess("up:rate=600k;down:loss=2%").start()
    info = await relayTransportInfo(relay, await signaling.request("createWebRtcTransport", ...))
    transport = device.createSendTransport(**info)

    client = await RoomClient.join(url, transportInfoHook=transportInfoHook(recv=relay))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from ..types import IceCandidate

TransportInfoHook = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class Relay(Protocol):
    async def relayCandidates(self, candidates: Iterable[IceCandidate]) -> list[IceCandidate]: ...


async def relayTransportInfo(relay: Relay, info: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``info`` (any dict with ``iceCandidates``) whose candidates are the relay's."""
    if not isinstance(info, dict) or not isinstance(info.get("iceCandidates"), list):
        raise TypeError("transport info without an iceCandidates list")
    return {**info, "iceCandidates": await relay.relayCandidates(info["iceCandidates"])}


def transportInfoHook(*, send: Relay | None = None, recv: Relay | None = None) -> TransportInfoHook:
    """For ``RoomClient.join(transportInfoHook=...)``: the send and/or the receive transport
    through a relay (the same relay for both: they share one impaired access link)."""

    async def hook(direction: str, info: dict[str, Any]) -> dict[str, Any]:
        relay = send if direction == "send" else recv
        return info if relay is None else await relayTransportInfo(relay, info)

    return hook
