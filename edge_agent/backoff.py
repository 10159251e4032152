"""Exponential backoff with full jitter (sans-IO: the caller sleeps)."""

from __future__ import annotations

import random


class Backoff:
    """Delays for retrying a failing call: attempt n waits a random time in
    [0, min(cap, base * 2**n)] ("full jitter"), so many gateways that lost
    the cloud at once do not come back in lock-step. `reset()` after a
    success."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, rand=random.random):
        self.base = base
        self.cap = cap
        self.rand = rand
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self.failures, 32))
        self.failures += 1
        # never 0: a tight retry loop is what backoff is there to prevent
        return max(ceiling * self.rand(), self.base / 10)

    def reset(self) -> None:
        self.failures = 0
