# The uplink seq and the last command ids: counters that must never go back,
# across reboots, deep sleep and battery swaps.
#
# Seq numbers are reserved in blocks so a node does not write flash for
# every message: at boot the stored "next block start" S is read and S +
# BLOCK is stored (atomically, two mirrored copies) BEFORE any seq from
# [S, S + BLOCK) is used; when the block runs out the next one is reserved
# the same way. A reboot skips what was left of the block: gaps are
# expected, repeats never happen. The `boot` event carries S, so the cloud
# can tell "skipped at reboot" from "lost".
#
# Command ids are kept per authority (docs/gateway-api.md "Command ids and
# authorities"): {kid: last cmd_id run}, written once per command run.

from micropython import const

from .store import Mirrored

BLOCK = const(64)


class SeqCounter:
    """`next()` gives the next seq; `boot_start` is this boot's S.

    `at_least` lets the caller raise the floor (e.g. above the seq of an
    in-flight message found on flash) in case both copies were lost."""

    def __init__(self, store, block=BLOCK, at_least=0):
        self.block = block
        self._stored = Mirrored(store, "seq")
        start = self._stored.value
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            start = 0
        elif self._stored.copies < 2:
            # the other copy may have held the next reservation: skip it
            start += block
        if start < at_least:
            start = at_least
        self.boot_start = start
        self._next = start
        self._limit = start
        self._reserve()

    def _reserve(self):
        limit = self._next + self.block
        # until both copies exist (first boot, or one was lost) write both,
        # so a missing copy always means a lost one
        self._stored.write(limit, self._stored.copies < 2)
        self._limit = limit

    def next(self):
        if self._next >= self._limit:
            self._reserve()
        seq = self._next
        self._next = seq + 1
        return seq

    def peek(self):
        """The seq `next()` will return (nothing is reserved)."""
        return self._next


class CommandIds:
    """The last cmd_id run per authority kid (text); -1 when none yet."""

    def __init__(self, store):
        self._stored = Mirrored(store, "cmdids")
        if not isinstance(self._stored.value, dict):
            self._stored.value = {}

    def last(self, kid):
        v = self._stored.value.get(kid, -1)
        return v if isinstance(v, int) and not isinstance(v, bool) else -1

    def set(self, kid, cmd_id):
        ids = dict(self._stored.value)
        ids[kid] = cmd_id
        # both copies: losing one must not let the last command run again
        self._stored.write(ids, both=True)
