"""TransportConnection options that act before any network use (ICE servers and policy)."""

from __future__ import annotations

from mediasoup_client.handlers.aiortc.connection import TransportConnection
from mediasoup_client.types import DtlsParameters, IceServer
from tests.unit.conftest import remoteTransportParameters


async def _noConnect(dtlsParameters: DtlsParameters) -> None:
    raise AssertionError("not used")


def connection(
    iceServers: list[IceServer] | None = None, iceTransportPolicy: str | None = None
) -> TransportConnection:
    remote = remoteTransportParameters(sctp=False)
    return TransportConnection(
        iceParameters=remote["iceParameters"],
        iceCandidates=remote["iceCandidates"],
        dtlsParameters=remote["dtlsParameters"],
        sctpParameters=None,
        iceServers=iceServers,
        iceTransportPolicy=iceTransportPolicy,
        onConnect=_noConnect,
    )


def iceConnection(conn: TransportConnection):  # type: ignore[no-untyped-def]
    return conn._gatherer._connection


async def test_no_ice_server_unless_configured() -> None:
    conn = connection()
    # Never aiortc's default public STUN server.
    assert iceConnection(conn).stun_server is None
    assert iceConnection(conn).turn_server is None
    await conn.close()


async def test_update_ice_servers_applies_to_the_coming_gathering() -> None:
    conn = connection(iceServers=[{"urls": "stun:127.0.0.1:3478"}])
    assert iceConnection(conn).stun_server == ("127.0.0.1", 3478)
    conn.updateIceServers(
        [{"urls": ["turn:127.0.0.1:3480"], "username": "user", "credential": "secret"}]
    )
    assert iceConnection(conn).stun_server is None
    # TURN is gathered by compat_ice (every URL, failures reported), not by aioice.
    assert iceConnection(conn).turn_server is None
    assert [(s.host, s.port, s.username) for s in conn._turnServers] == [
        ("127.0.0.1", 3480, "user")
    ]
    assert conn.iceServers == [
        {"urls": ["turn:127.0.0.1:3480"], "username": "user", "credential": "secret"}
    ]
    await conn.close()


async def test_relay_policy_reaches_the_gatherer() -> None:
    relay = connection(iceTransportPolicy="relay")
    assert iceConnection(relay)._transport_policy.name == "RELAY"
    everything = connection()
    assert iceConnection(everything)._transport_policy.name == "ALL"
    await relay.close()
    await everything.close()
