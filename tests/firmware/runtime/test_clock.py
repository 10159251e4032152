"""The node clock: None until the gateway's time arrives, then follows the
monotonic clock (or the board's RTC)."""

from runtime.clock import Clock

from tests.firmware.runtime.fakes import T0, FakeClock, Rtc


def test_unset_until_synced_then_ticks():
    ms = FakeClock()
    c = Clock(ms)
    assert c.now() is None and not c.synced
    assert c.sync(T0)
    assert c.now() == T0
    ms.advance(61_500)
    assert c.now() == T0 + 61


def test_refuses_an_impossible_gateway_time():
    c = Clock(FakeClock())
    for bad in (0, 86400, -5, True, 1.5e9, "1767225600"):
        assert not c.sync(bad)
    assert c.now() is None


def test_rtc_board_keeps_time_across_a_new_clock():
    ms = FakeClock()
    rtc = Rtc(ms)
    Clock(ms, rtc.unix_time, rtc.set_unix_time).sync(T0)
    ms.advance(10_000)
    # after deep sleep: a new Clock, no offset, but the RTC knows
    assert Clock(ms, rtc.unix_time, rtc.set_unix_time).now() == T0 + 10
