"""The relay process of :class:`~mediasoup_client.netem.process.RelayProcess` (JSON lines on
stdin/stdout; it exits when stdin closes)."""

from __future__ import annotations

import argparse
import asyncio

from .process import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mediasoup_client.netem")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.seed))


if __name__ == "__main__":
    main()
