"""Per-device replay window: which seqs were already accepted.

Like IPsec's anti-replay window (RFC 4303 §3.4.3): the highest accepted seq
and a bitmap of the `size` seqs below it. A seq above the highest is new; a
seq inside the window is new unless its bit is set; a seq below the window
can no longer be told apart from a replay and is refused. Sans-IO: the store
persists `to_bytes()` with every uplink it commits.
"""

from __future__ import annotations

NEW = "new"
SEEN = "seen"
TOO_OLD = "too-old"


class ReplayWindow:
    __slots__ = ("bits", "high", "size")

    def __init__(self, size: int, high: int | None = None, bits: int = 0):
        self.size = size
        self.high = high
        # bit i set <=> seq (high - i) was accepted; bit 0 is `high` itself
        self.bits = bits

    def check(self, seq: int) -> str:
        if self.high is None or seq > self.high:
            return NEW
        offset = self.high - seq
        if offset >= self.size:
            return TOO_OLD
        return SEEN if self.bits >> offset & 1 else NEW

    def accept(self, seq: int) -> None:
        if self.high is None:
            self.high, self.bits = seq, 1
        elif seq > self.high:
            shift = seq - self.high
            mask = (1 << self.size) - 1
            self.bits = (self.bits << shift | 1) & mask if shift < self.size else 1
            self.high = seq
        elif self.high - seq < self.size:
            self.bits |= 1 << (self.high - seq)
        # else: below the window (a seq that raced past a newer one on its
        # way to the disk); stored, but there is no bit left to remember it

    def copy(self) -> ReplayWindow:
        return ReplayWindow(self.size, self.high, self.bits)

    def to_bytes(self) -> bytes:
        return self.bits.to_bytes((self.size + 7) // 8, "little")

    @classmethod
    def from_bytes(cls, size: int, high: int, data: bytes) -> ReplayWindow:
        bits = int.from_bytes(data, "little") & ((1 << size) - 1)
        return cls(size, high, bits)
