"""Thresholds as data (apps/rules.py): the GB 5749-2022 defaults, the
debounce and hysteresis of an excursion, and what thresholds.set accepts."""

import pytest
from apps import rules


def quality(stored=None, count=3, state=None):
    return rules.Rules(dict(rules.GB5749), stored, count=count, state=state)


def run(r, name, values):
    return [r.check(name, v) for v in values]


def test_defaults_are_gb5749_2022():
    r = quality()
    assert r.limits == {"ph": (6.5, 8.5), "turb": (None, 1.0), "cl": (0.05, 2.0)}
    # conductivity and temperature have no limit in the standard: not watched
    assert r.check("cond", 99.0) is None and r.check("temp", 99.0) is None


def test_an_excursion_raises_once_after_n_samples_in_a_row():
    r = quality()
    assert run(r, "ph", [9.0, 9.0, 7.0, 9.0, 9.0]) == [None] * 5  # interrupted: no event
    assert run(r, "ph", [9.0]) == ["quality.ph"]
    assert run(r, "ph", [9.5] * 10) == [None] * 10  # still out: said once


def test_it_rearms_only_after_coming_back_by_the_band_for_n_samples():
    r = quality()
    run(r, "turb", [1.5] * 3)
    # back under 1 NTU, but not by the 0.1 NTU band: still the same excursion
    assert run(r, "turb", [0.95] * 5 + [1.2] * 3) == [None] * 8
    run(r, "turb", [0.5] * 3)  # really back
    assert run(r, "turb", [1.3] * 3) == [None, None, "quality.turb"]  # a new excursion


def test_low_side_and_missing_samples():
    r = quality()
    assert run(r, "cl", [0.01, None, 0.02, None, 0.03]) == [None, None, None, None, "quality.cl"]


def test_excursions_survive_in_the_state():
    r = quality()
    run(r, "ph", [5.0] * 3)
    again = quality(state=r.state())
    assert run(again, "ph", [5.0] * 5) == [None] * 5  # a sleepy node does not repeat it


@pytest.mark.parametrize(
    ("args", "limits"),
    [
        ({"ph": [6.0, 9.0]}, {"ph": (6.0, 9.0)}),
        ({"turb": 3}, {"turb": (None, 3)}),  # a number: the bound the reading has
        ({"cl": [0.3, 2]}, {"cl": (0.3, 2)}),  # a works-outlet station
        ({"cl": [None, 2]}, {"cl": (None, 2)}),  # null: no bound
    ],
)
def test_thresholds_set_args(args, limits):
    r = quality()
    r.update(r.parse(args))
    for name in limits:
        assert r.limits[name] == limits[name]


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ({"cond": [0, 0.1]}, "no threshold for cond"),
        ({"ph": 7}, "give \\[low, high\\]"),
        ({"ph": [9, 6]}, "above high"),
        ({"ph": [6, "8"]}, "numbers or null"),
        ({"ph": [6]}, "give \\[low, high\\]"),
        ({"ph": True}, "a number or"),
    ],
)
def test_thresholds_set_refuses_what_it_cannot_apply(args, why):
    r = quality()
    with pytest.raises(ValueError, match=why):
        r.parse(args)
    assert r.limits == dict(rules.GB5749)  # nothing changed


def test_battery_takes_a_low_bound_only():
    r = rules.Rules({"bat": (3.3, None)})
    r.update(r.parse({"bat": 3.1}))
    assert r.limits["bat"] == (3.1, None)
    with pytest.raises(ValueError, match="only a low bound"):
        r.parse({"bat": [3.0, 4.0]})


def test_stored_form_keeps_only_changes_and_a_change_starts_afresh():
    r = quality()
    run(r, "ph", [9.0] * 3)  # in an excursion
    stored = r.update(r.parse({"ph": [6.0, 9.5]}))
    assert stored == {"ph": [6.0, 9.5]}
    assert rules.Rules(dict(rules.GB5749), stored).limits["ph"] == (6.0, 9.5)
    assert run(r, "ph", [10.0] * 3) == [None, None, "quality.ph"]
