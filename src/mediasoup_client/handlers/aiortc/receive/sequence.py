"""Unwrapping RTP's wrapping counters (16-bit sequence numbers, 32-bit timestamps) into
monotonic integers, so the rest of the receive path can compare and subtract freely."""

from __future__ import annotations


class Unwrapper:
    """Maps a ``bits``-wide wrapping counter to an unbounded integer: each value is placed
    within half the range of the previous one (so reordering and late packets unwrap to the
    right side of a wrap)."""

    def __init__(self, bits: int) -> None:
        self._modulus = 1 << bits
        self._half = 1 << (bits - 1)
        self._last: int | None = None

    @property
    def last(self) -> int | None:
        """The most recently unwrapped value (not necessarily the largest)."""
        return self._last

    def unwrap(self, value: int) -> int:
        last = self._last
        if last is None:
            unwrapped = value
        else:
            delta = (value - last) % self._modulus
            if delta >= self._half:
                delta -= self._modulus
            unwrapped = last + delta
        self._last = unwrapped
        return unwrapped

    def peek(self, value: int) -> int:
        """What ``unwrap(value)`` would return, without moving the reference."""
        last = self._last
        if last is None:
            return value
        delta = (value - last) % self._modulus
        if delta >= self._half:
            delta -= self._modulus
        return last + delta

    def reset(self) -> None:
        self._last = None


def sequenceUnwrapper() -> Unwrapper:
    return Unwrapper(16)


def timestampUnwrapper() -> Unwrapper:
    return Unwrapper(32)
