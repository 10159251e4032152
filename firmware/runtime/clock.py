# The node's Unix clock, set from the gateway's reply time (reply key 2).
#
# Until the first sync `now()` is None and readings carry no time: a board
# that has never been told the time does not guess. A board with an RTC
# keeps the time across deep sleep (board.unix_time() is not None); one
# without keeps an offset from its monotonic milliseconds.
#
# The board's functions are injected, so the class is tested with a fake
# clock on CPython.

from micropython import const

# A reply time before 2020-01-01 is a gateway whose own clock is unset.
EARLIEST = const(1577836800)
# The reply's time is whole seconds, sent some time before it arrives: a
# clock reading anywhere in [t, t + 1 s + this) agrees with it.
SLACK_MS = const(1000)


class Clock:
    def __init__(self, time_ms, unix_time=None, set_unix_time=None):
        self._ms = time_ms
        self._rtc = unix_time
        self._set_rtc = set_unix_time
        self._offset_ms = None  # unix ms - monotonic ms, once synced

    def now(self):
        """Unix seconds, or None while the clock was never set."""
        if self._rtc is not None:
            t = self._rtc()
            if t is not None:
                return int(t)
        if self._offset_ms is None:
            return None
        return (self._ms() + self._offset_ms) // 1000

    @property
    def synced(self):
        return self.now() is not None

    def sync(self, unix_t):
        """Set the clock from the gateway's time; returns False (and changes
        nothing) for a time that cannot be right."""
        if not isinstance(unix_t, int) or isinstance(unix_t, bool) or unix_t < EARLIEST:
            return False
        ms = self._ms()
        lo = unix_t * 1000
        if self._offset_ms is not None:
            cur = ms + self._offset_ms
            if lo <= cur < lo + 1000 + SLACK_MS:
                # Already right to within the reply's resolution. Setting it
                # again would step it back by the part-second the gateway
                # cut off, and two samples a second apart could then share
                # a timestamp.
                return True
        # behind: step forward; ahead by more than the slack: step back
        self._offset_ms = lo - ms
        if self._set_rtc is not None:
            self._set_rtc(unix_t)
        return True
