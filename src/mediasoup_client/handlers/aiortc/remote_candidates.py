"""The router's ICE candidates, as aiortc candidates we can pair with.

mediasoup offers UDP and passive TCP candidates (RFC 6544; we pair those with active ones,
``compat_ice``). Since 3.13 a candidate's address (``address``, formerly ``ip``) may be a host
name (``announcedAddress``): names are resolved here, all at once and off the event loop,
before pairing; one that does not resolve is skipped with a log line. The resolver is a
parameter, so the selection is tested without DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable

from aiortc import RTCIceCandidate

from ...types import IceCandidate

logger = logging.getLogger(__name__)

RESOLVE_TIMEOUT = 5.0

# A host name to its addresses (IPv4 and IPv6), or an OSError saying why not.
Resolver = Callable[[str], Awaitable[list[str]]]


def isIpAddress(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def isMdnsName(host: str) -> bool:
    # aioice resolves ".local" names itself (multicast DNS), keeping the name.
    return host.endswith(".local")


def candidateAddress(candidate: IceCandidate) -> str:
    """``address`` (mediasoup 3.13+) or ``ip`` (before)."""
    address = candidate.get("address") or candidate.get("ip")
    if not address:
        raise TypeError(f"ICE candidate without an address: {candidate!r}")
    return address


def describe(candidate: IceCandidate) -> str:
    return f"{candidate.get('protocol')} {candidateAddress(candidate)}:{candidate.get('port')}"


def usable(candidate: IceCandidate) -> bool:
    """UDP, and TCP the router listens on (passive); others are logged and skipped."""
    protocol = candidate.get("protocol")
    if protocol == "udp":
        return True
    if protocol == "tcp" and candidate.get("tcpType", "passive") == "passive":
        return True
    logger.info(
        "ICE: skipping the router's candidate %s (tcpType %s): only UDP and passive TCP "
        "candidates are paired",
        describe(candidate),
        candidate.get("tcpType"),
    )
    return False


def toRTCIceCandidate(candidate: IceCandidate, ip: str) -> RTCIceCandidate:
    tcp = candidate["protocol"] == "tcp"
    return RTCIceCandidate(
        component=1,
        foundation=candidate["foundation"],
        ip=ip,
        port=candidate["port"],
        priority=candidate["priority"],
        protocol=candidate["protocol"],
        type=candidate["type"],
        tcpType=candidate.get("tcpType", "passive") if tcp else None,
    )


async def systemResolver(name: str) -> list[str]:
    """The system's resolver (``getaddrinfo``, /etc/hosts included), off the event loop."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
    return [str(info[4][0]) for info in infos]


async def remoteCandidates(
    candidates: list[IceCandidate],
    resolver: Resolver = systemResolver,
    *,
    timeout: float = RESOLVE_TIMEOUT,
) -> list[RTCIceCandidate]:
    """The candidates to add to ICE: IP addresses as they are, each name replaced by the
    addresses it resolves to (one candidate per address), names that do not resolve (within
    ``timeout``) left out with a log line."""
    chosen = [c for c in candidates if usable(c)]
    names = sorted(
        {
            candidateAddress(c)
            for c in chosen
            if not isIpAddress(candidateAddress(c)) and not isMdnsName(candidateAddress(c))
        }
    )

    async def resolve(name: str) -> list[str] | BaseException:
        try:
            addresses = await asyncio.wait_for(resolver(name), timeout)
        except (TimeoutError, OSError) as error:
            return error
        return list(dict.fromkeys(a for a in addresses if isIpAddress(a)))

    resolved = dict(zip(names, await asyncio.gather(*(resolve(n) for n in names)), strict=True))
    result: list[RTCIceCandidate] = []
    for candidate in chosen:
        address = candidateAddress(candidate)
        if isIpAddress(address) or isMdnsName(address):
            result.append(toRTCIceCandidate(candidate, address))
            continue
        addresses = resolved[address]
        if isinstance(addresses, BaseException) or not addresses:
            why = (
                f"no answer within {timeout:g} s"
                if isinstance(addresses, asyncio.TimeoutError)
                else f"the name does not resolve ({addresses or 'no address'})"
            )
            logger.warning("ICE: skipping the router's candidate %s: %s", describe(candidate), why)
            continue
        logger.debug("ICE: %s resolved to %s", address, ", ".join(addresses))
        result.extend(toRTCIceCandidate(candidate, ip) for ip in addresses)
    return result
