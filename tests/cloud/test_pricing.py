"""Tier arithmetic of the pricing module on generated tariffs and
consumptions: the lines add up, more use never costs less, no tier holds
more than its width, and a flat tariff is one tier."""

import dataclasses
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kapok.cloud import pricing

D = Decimal

volumes = st.decimals(min_value=0, max_value=5000, places=3, allow_nan=False)
prices = st.decimals(min_value=0, max_value=20, places=4, allow_nan=False)


@st.composite
def tariffs(draw):
    n = draw(st.integers(1, 4))
    bounds = sorted(set(draw(st.lists(st.integers(1, 3000), min_size=n - 1, max_size=n - 1))))
    tiers = [{"upto": str(b), "price": str(draw(prices))} for b in bounds]
    tiers.append({"upto": None, "price": str(draw(prices))})
    fixed = draw(st.decimals(min_value=0, max_value=50, places=2, allow_nan=False))
    period = draw(st.sampled_from(pricing.PERIODS))
    return pricing.parse({"fixed_monthly": str(fixed), "period": period, "tiers": tiers})


@given(tariffs(), volumes, volumes)
def test_the_total_is_the_sum_of_the_lines_each_rounded_to_cents(t, used, before):
    lines = pricing.price(t, used, used_before=before)
    total = pricing.total(lines)
    assert total == sum(line.amount for line in lines)
    for line in lines:
        assert line.amount == (line.quantity * line.unit_price).quantize(
            D("0.01"), rounding=ROUND_HALF_UP
        )
        assert line.amount.as_tuple().exponent == -2
    # the tier lines hold exactly the consumption
    assert sum(x.quantity for x in lines if x.item != pricing.FIXED) == used


@given(tariffs(), volumes, volumes, volumes)
def test_more_consumption_never_costs_less(t, used, more, before):
    a = pricing.total(pricing.price(t, used, used_before=before))
    b = pricing.total(pricing.price(t, used + more, used_before=before))
    assert b >= a


@given(tariffs(), volumes, volumes)
def test_no_tier_holds_more_than_its_width(t, used, before):
    start = before if t.period == "annual" else D(0)
    low, placed = D(0), start
    widths = {}
    for n, tier in enumerate(t.tiers, start=1):
        widths[n] = (low, tier.upto)
        low = tier.upto if tier.upto is not None else low
    for n, q in pricing.tier_quantities(t, used, before):
        lo, hi = widths[n]
        # each tier's share lies inside its bounds, and tiers fill in order
        assert max(placed, lo) + q <= (hi if hi is not None else placed + q)
        placed = max(placed, lo) + q
    assert placed == start + used


@given(prices, volumes)
def test_a_flat_tariff_is_one_tier(p, used):
    t = pricing.parse({"period": "monthly", "tiers": [{"upto": None, "price": str(p)}]})
    lines = pricing.price(t, used)
    assert pricing.total(lines) == (used * p).quantize(D("0.01"), rounding=ROUND_HALF_UP)
    assert [x.item for x in lines] == (["tier-1"] if used else [])


@given(tariffs(), st.lists(volumes, min_size=12, max_size=12))
def test_annual_months_carrying_the_year_use_the_annual_tiers(t, months):
    """Twelve months each placed after the earlier ones fill the tiers as the
    year's total does (amounts may differ by the per-line rounding only)."""
    t = dataclasses.replace(t, period="annual")
    by_tier: dict[int, Decimal] = {}
    before = D(0)
    for used in months:
        for n, q in pricing.tier_quantities(t, used, before):
            by_tier[n] = by_tier.get(n, D(0)) + q
        before += used
    assert by_tier == dict(pricing.tier_quantities(t, sum(months, D(0))))


def test_half_a_cent_rounds_up():
    t = pricing.parse({"tiers": [{"upto": None, "price": "0.0005"}]})
    [line] = pricing.price(t, D("10.000"))  # 0.005 CNY
    assert line.amount == D("0.01")
    assert pricing.quantity(21.25) == D("21.250") and pricing.quantity(0.1 + 0.2) == D("0.300")


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"tiers": [{"upto": None, "price": 1.5}]}, "not floats"),
        ({"tiers": [{"upto": None, "price": "-1"}]}, "≥ 0"),
        ({"tiers": [{"upto": None, "price": "0.12345"}]}, "4 decimal places"),
        ({"tiers": [{"upto": "10", "price": "1"}]}, "last tier must be open"),
        ({"tiers": [{"upto": None, "price": "1"}, {"upto": None, "price": "2"}]}, "only the last"),
        (
            {
                "tiers": [
                    {"upto": "9", "price": "1"},
                    {"upto": "5", "price": "2"},
                    {"upto": None, "price": "3"},
                ]
            },
            "above",
        ),
        ({"period": "weekly", "tiers": [{"upto": None, "price": "1"}]}, "period"),
        ({"fixed_monthly": "1.001", "tiers": [{"upto": None, "price": "1"}]}, "2 decimal"),
        ({"tiers": []}, "at least one tier"),
    ],
)
def test_bad_documents_are_refused_with_the_reason(doc, message):
    with pytest.raises(pricing.TariffError, match=message):
        pricing.parse(doc)
