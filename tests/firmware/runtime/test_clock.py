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


def test_a_resync_in_the_same_second_does_not_step_the_clock_back():
    # the gateway's reply carries whole seconds: T0 + 5 may mean T0 + 5.95
    ms = FakeClock()
    start = ms()
    c = Clock(ms)
    c.sync(T0)
    stamps = []
    ms.advance(900)
    for _ in range(20):
        stamps.append(c.now())  # a sample, sent at once
        ms.advance(50)
        c.sync(T0 + (ms() - start) // 1000)  # the reply: the true time, cut to seconds
        ms.advance(950)
    assert stamps == list(range(T0, T0 + 20))


def test_a_slow_clock_steps_forward_and_a_fast_one_back():
    ms = FakeClock()
    c = Clock(ms)
    c.sync(T0)
    ms.advance(10_000)
    assert c.sync(T0 + 13) and c.now() == T0 + 13  # was 3 s behind
    assert c.sync(T0 + 11) and c.now() == T0 + 11  # 2 s ahead: corrected
    assert c.sync(T0 + 10) and c.now() == T0 + 11  # within the slack: kept
