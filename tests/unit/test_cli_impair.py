"""``--impair``: parsing, usage errors, and the wiring a RoomClient gets (no network)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from mediasoup_client.cli.impair import relayFigures, startRelay
from mediasoup_client.cli.main import buildParser, main
from mediasoup_client.netem import ImpairmentSpec, relayTransportInfo, transportInfoHook


def test_impair_is_parsed_for_both_commands() -> None:
    for command in ("produce", "consume"):
        args = buildParser().parse_args([command, "--impair", "up:rate=600k;down:loss=2%"])
        assert isinstance(args.impair, ImpairmentSpec)
        assert args.impair.up is not None and args.impair.up[0].config.rate == 600_000
        assert args.impair.down is not None and args.impair.down[0].config.loss == 0.02
    assert buildParser().parse_args(["produce"]).impair is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("loss=5", "loss: '5' is not a percentage"),
        ("up:rate=600k;down:lsos=2%", "down: unknown field 'lsos'"),
        ("delay=40ms,queue=100ms", "queue: needs rate"),
        ("up:rate=3M for 10 then rate=600k", "for: '10' needs a unit"),
    ],
)
def test_a_bad_spec_is_a_one_line_usage_error(
    spec: str, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["produce", "--impair", spec])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err and "--impair" in err


class _FakeRelay:
    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def relayCandidates(self, candidates: Any) -> list[Any]:
        self.asked.append(candidates)
        return [
            {**c, "ip": "127.0.0.1", "port": 5000} for c in candidates if c["protocol"] == "udp"
        ]


async def test_the_hook_rewrites_only_the_chosen_transport() -> None:
    relay = _FakeRelay()
    info = {
        "id": "t1",
        "iceCandidates": [
            {"ip": "10.0.0.1", "port": 40000, "protocol": "udp", "foundation": "u"},
            {"ip": "10.0.0.1", "port": 40001, "protocol": "tcp", "foundation": "t"},
        ],
    }
    hook = transportInfoHook(recv=relay)  # type: ignore[arg-type]
    assert await hook("send", info) is info
    relayed = await hook("recv", info)
    assert relayed["id"] == "t1"
    assert relayed["iceCandidates"] == [
        {"ip": "127.0.0.1", "port": 5000, "protocol": "udp", "foundation": "u"}
    ]
    assert info["iceCandidates"][0]["port"] == 40000  # the server's answer is left as it was
    with pytest.raises(TypeError):
        await relayTransportInfo(relay, {"id": "x"})  # type: ignore[arg-type]


async def test_no_impair_no_relay() -> None:
    async with contextlib.AsyncExitStack() as stack:
        assert await startRelay(None, stack, direction="send") == (None, None)
    assert await relayFigures(None) is None
