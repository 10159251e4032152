"""Analog probes (two-point calibration, averaging, unplugged detection) and
the methane detector (calibration to %LEL, alarm hysteresis, warm-up,
open/short faults)."""

import pytest
from drivers.sensor import adc_probe, methane
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.firmware.drivers.util import close
from tests.firmware.fakes import FakeADC

# -- two-point calibration ---------------------------------------------------------


def test_ph_buffers_calibrate_a_line():
    # a pH transmitter reading 30000 in the 4.01 buffer and 26000 in 6.86
    a, b = adc_probe.two_point((30000, 4.01), (26000, 6.86))
    assert close(a * 30000 + b, 4.01)
    assert close(a * 26000 + b, 6.86)
    assert a < 0  # these transmitters fall as pH rises
    # the neutral point sits proportionally between them
    assert close(a * 28000 + b, (4.01 + 6.86) / 2)


@given(
    r1=st.integers(1, 65534),
    r2=st.integers(1, 65534),
    v1=st.floats(-100, 100),
    v2=st.floats(-100, 100),
)
def test_two_point_passes_through_both_points(r1, r2, v1, v2):
    assume(r1 != r2)
    a, b = adc_probe.two_point((r1, v1), (r2, v2))
    assert abs(a * r1 + b - v1) < 1e-6
    assert abs(a * r2 + b - v2) < 1e-6


def test_same_raw_twice_is_rejected():
    with pytest.raises(ValueError):
        adc_probe.two_point((1000, 4.01), (1000, 6.86))


def test_read_averages_and_drops_the_extremes():
    adc = FakeADC(sequence=[20000, 20010, 19990, 65535, 20000, 0, 20005, 19995])
    p = adc_probe.AdcProbe(adc, "turb", ((10000, 0.0), (30000, 100.0)), samples=8)
    out = p.read()
    assert p.error is None
    assert adc.reads == 8
    assert close(p.raw, 20000.0)  # the 65535 and 0 spikes were trimmed
    assert close(out["turb"], 50.0)


def test_few_samples_are_a_plain_mean():
    adc = FakeADC(sequence=[1000, 2000, 3000])
    assert close(adc_probe.mean_raw(adc, 3), 2000.0)


@pytest.mark.parametrize("raw", [0, 100, 65535, 65400])
def test_rails_mean_unplugged(raw):
    p = adc_probe.AdcProbe(FakeADC(raw), "ph", ((30000, 4.01), (26000, 6.86)))
    assert p.read() == {}
    assert p.error == "unplugged"


def test_recalibration_and_rounding():
    p = adc_probe.AdcProbe(FakeADC(28000), "cl", ((10000, 0.0), (30000, 2.0)), digits=2)
    assert p.read() == {"cl": 1.8}
    p.calibrate((20000, 0.0), (30000, 1.0))
    assert p.read() == {"cl": 0.8}


# -- methane -----------------------------------------------------------------------

CAL = ((10000, 0.0), (50000, 100.0))  # 400 raw per %LEL


def raw_for(lel):
    return int(10000 + 400 * lel)


def warm_detector(adc, **kw):
    """A detector past its warm-up, having seen clean air once."""
    d = methane.Methane(adc, cal=CAL, warmup_ms=60000, power_on_ms=0, **kw)
    value, adc.value = adc.value, raw_for(0)
    assert d.poll(60000) is None
    adc.value = value
    return d


def test_warm_up_suppresses_the_alarm():
    adc = FakeADC(raw_for(30))
    d = methane.Methane(adc, cal=CAL, warmup_ms=60000, power_on_ms=0)
    assert d.poll(59999) is None
    assert d.error == "warmup" and d.alarm is False
    assert d.read() == {}
    assert d.poll(60000) == ("gas.leak", True, pytest.approx(30.0))
    assert d.alarm is True


def test_warm_up_clock_starts_at_first_poll_without_power_on_time():
    d = methane.Methane(FakeADC(raw_for(30)), cal=CAL, warmup_ms=1000)
    assert d.poll(5_000_000) is None
    assert d.poll(5_000_999) is None
    assert d.poll(5_001_000)[1] is True


def test_alarm_hysteresis_10_on_5_off():
    adc = FakeADC(raw_for(0))
    d = warm_detector(adc)
    seen = []
    for t, lel in enumerate([0, 9.9, 10.0, 12, 7, 5.1, 9.9, 5.0, 4.9, 6, 9.9, 11]):
        adc.value = raw_for(lel)
        e = d.poll(70000 + t * 1000)
        if e:
            seen.append((e[0], e[1], round(e[2], 1)))
    assert seen == [("gas.leak", True, 10.0), ("gas.leak", False, 4.9), ("gas.leak", True, 11.0)]


def test_thresholds_and_code_are_configurable():
    adc = FakeADC(raw_for(3))
    d = warm_detector(adc, alarm_on=2.5, alarm_off=1.0, code="gas.lpg")
    assert d.poll(70000) == ("gas.lpg", True, pytest.approx(3.0))


def test_off_above_on_is_rejected():
    with pytest.raises(ValueError):
        methane.Methane(FakeADC(), alarm_on=5, alarm_off=10)


@pytest.mark.parametrize(
    ("raw", "code"), [(0, "open"), (200, "open"), (65535, "short"), (65200, "short")]
)
def test_rails_are_sensor_faults_and_do_not_alarm(raw, code):
    adc = FakeADC(raw)
    d = warm_detector(adc)
    assert d.poll(70000) is None
    assert d.error == code
    assert d.alarm is False
    assert d.read() == {}


def test_fault_does_not_clear_an_active_alarm():
    adc = FakeADC(raw_for(20))
    d = warm_detector(adc)
    assert d.poll(70000)[1] is True
    adc.value = 0
    assert d.poll(71000) is None
    assert d.alarm is True


def test_read_reports_concentration_without_touching_the_alarm():
    adc = FakeADC(raw_for(12.5))
    d = warm_detector(adc)
    d.alarm = False
    assert d.read() == {"ch4": pytest.approx(12.5)}
    assert d.alarm is False


def test_negative_drift_reads_zero():
    d = warm_detector(FakeADC(9000))
    assert d.read() == {"ch4": 0.0}


def test_warm_up_survives_the_tick_counter_wrapping():
    adc = FakeADC(raw_for(0))
    d = methane.Methane(adc, cal=CAL, warmup_ms=1000, power_on_ms=(1 << 30) - 500)
    assert d.poll(100) is None  # 600 ms after power-on, across the wrap
    assert d.error == "warmup"
    assert d.poll(600) is None
    assert d.error is None
    adc.value = raw_for(50)
    assert d.poll(600 + (1 << 29) + 5)[1] is True  # long after: still warm
