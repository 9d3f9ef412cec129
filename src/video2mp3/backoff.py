"""Exponential backoff for the loops that must outlive an outage of what they depend on."""

from __future__ import annotations


class Backoff:
    """Delays that double from ``first`` up to ``cap`` with each failure; ``reset`` on success."""

    # The cap bounds how long a loop takes to notice that an outage has ended.
    def __init__(self, first: float = 1.0, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay
