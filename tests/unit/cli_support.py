"""Helpers shared by the CLI's unit tests (tests/unit/test_cli_*.py)."""

from __future__ import annotations

import argparse

from mediasoup_client.cli.main import buildParser


def parse(*argv: str) -> argparse.Namespace:
    """The namespace the command line ``argv`` parses to."""
    return buildParser().parse_args(list(argv))
