"""The error classes of mediasoup-client (``TypeError`` is Python's own)."""

from __future__ import annotations

__all__ = ["InvalidStateError", "UnsupportedError"]


class UnsupportedError(Exception):
    """The operation is not supported by this device, transport or track."""


class InvalidStateError(Exception):
    """The object is in a state where the operation cannot run (closed, not loaded, ...)."""
