"""Pricing maths: a consumption priced under a tariff document, as line items.

Pure functions, no database: `crud/bills.py` finds the consumption and the
tariff in effect, this turns them into money. Everything is
`decimal.Decimal`; no float ever enters a price or an amount.

A tariff document (stored as JSON, money as strings):

    {"fixed_monthly": "5.00",            # CNY per month, may be "0"
     "period": "monthly" | "annual",     # what the tier bounds count over
     "tiers": [{"upto": "26", "price": "1.98"},   # m³ or kWh per household
               {"upto": "34", "price": "3.30"},
               {"upto": null, "price": "4.62"}]}  # the last tier is open

A flat tariff is one open tier. Tier bounds are cumulative: tier n covers
consumption above tier n-1's `upto` up to its own. With `period` "annual" the
bounds count the household's consumption since 1 January, so a month is
priced after what the earlier months of the same year used (`used_before`).

Rounding (stated once, used everywhere):
- quantities are kept to 0.001 (m³ / kWh), half-up, before pricing;
- each line's amount is quantity × unit price rounded half-up to 0.01 CNY
  (ROUND_HALF_UP: 0.005 → 0.01), so a line's amount is what a person
  multiplying the two printed figures gets;
- the total is the sum of the rounded lines, never a separately rounded
  product, so the lines always add up to the total printed.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
MILLI = Decimal("0.001")
PRICE_PLACES = 4  # unit prices: at most 4 decimal places (e.g. 0.5802 CNY/kWh)
PERIODS = ("monthly", "annual")
FIXED = "fixed"


class TariffError(ValueError):
    """A tariff document that cannot price anything."""


@dataclass(frozen=True)
class Tier:
    upto: Decimal | None  # cumulative upper bound; None: open (the last tier)
    price: Decimal


@dataclass(frozen=True)
class Tariff:
    fixed_monthly: Decimal
    period: str
    tiers: tuple[Tier, ...]


@dataclass(frozen=True)
class Line:
    item: str  # "fixed", or "tier-1", "tier-2", ...
    quantity: Decimal  # m³ / kWh; 1 for the fixed charge (one month)
    unit_price: Decimal
    amount: Decimal


def money(x: Decimal) -> Decimal:
    """Half-up to 0.01 CNY."""
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def quantity(x) -> Decimal:
    """A consumption as a Decimal of 0.001 (a float register difference goes
    through its shortest repr, so 21.25 stays 21.250, not 21.2499999...)."""
    d = x if isinstance(x, Decimal) else Decimal(repr(float(x)))
    return d.quantize(MILLI, rounding=ROUND_HALF_UP)


def _decimal(value, what: str) -> Decimal:
    if isinstance(value, (float, bool)):
        raise TariffError(f"{what}: give money and volumes as strings, not floats")
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise TariffError(f"{what}: {value!r} is not a decimal number") from None
    if not d.is_finite():
        raise TariffError(f"{what}: must be a finite number")
    if d < 0:
        raise TariffError(f"{what}: must be ≥ 0")
    return d


def _places(d: Decimal) -> int:
    return max(0, -d.as_tuple().exponent)


def parse(doc: dict) -> Tariff:
    """A validated Tariff from a document (TariffError says what is wrong)."""
    if not isinstance(doc, dict):
        raise TariffError("the tariff must be an object")
    fixed = _decimal(doc.get("fixed_monthly", "0"), "fixed_monthly")
    if _places(fixed) > 2:
        raise TariffError("fixed_monthly: at most 2 decimal places (CNY cents)")
    period = doc.get("period", "monthly")
    if period not in PERIODS:
        raise TariffError(f"period must be one of {', '.join(PERIODS)}")
    raw = doc.get("tiers")
    if not isinstance(raw, list) or not raw:
        raise TariffError("tiers: at least one tier (a flat tariff is one open tier)")
    if len(raw) > 10:
        raise TariffError("tiers: at most 10")
    tiers = []
    below = Decimal(0)
    for n, t in enumerate(raw, start=1):
        if not isinstance(t, dict):
            raise TariffError(f"tier {n}: an object with upto and price")
        price = _decimal(t.get("price"), f"tier {n} price")
        if _places(price) > PRICE_PLACES:
            raise TariffError(f"tier {n} price: at most {PRICE_PLACES} decimal places")
        last = n == len(raw)
        upto = t.get("upto")
        if upto is None:
            if not last:
                raise TariffError(f"tier {n}: only the last tier is open (upto null)")
        else:
            upto = _decimal(upto, f"tier {n} upto")
            if _places(upto) > 3:
                raise TariffError(f"tier {n} upto: at most 3 decimal places")
            if upto <= below:
                raise TariffError(f"tier {n}: upto must be above the previous tier's")
            if last:
                raise TariffError(f"tier {n}: the last tier must be open (upto null)")
            below = upto
        tiers.append(Tier(upto, price))
    return Tariff(fixed, period, tuple(tiers))


def document(t: Tariff) -> dict:
    """The canonical document of a tariff (money as strings)."""
    return {
        "fixed_monthly": str(t.fixed_monthly),
        "period": t.period,
        "tiers": [
            {"upto": None if x.upto is None else str(x.upto), "price": str(x.price)}
            for x in t.tiers
        ],
    }


def tier_quantities(t: Tariff, used: Decimal, used_before: Decimal = Decimal(0)) -> list:
    """[(tier number, quantity)] of `used` placed above `used_before` (annual
    tiers: the year's consumption so far; monthly tiers ignore it)."""
    start = used_before if t.period == "annual" else Decimal(0)
    end = start + used
    out = []
    low = Decimal(0)
    for n, tier in enumerate(t.tiers, start=1):
        high = tier.upto
        a = max(start, low)
        b = end if high is None else min(end, high)
        if b > a:
            out.append((n, (b - a).quantize(MILLI)))
        if high is None or end <= high:
            break
        low = high
    return out


def price(
    t: Tariff, used: Decimal, *, used_before: Decimal = Decimal(0), fixed: bool = True
) -> list[Line]:
    """The month's lines: the fixed charge (when `fixed` and not zero), then
    one line per tier the consumption reaches."""
    if used < 0 or used_before < 0:
        raise TariffError("consumption must be ≥ 0")
    lines = []
    if fixed and t.fixed_monthly:
        lines.append(Line(FIXED, Decimal(1), t.fixed_monthly, money(t.fixed_monthly)))
    for n, q in tier_quantities(t, used, used_before):
        p = t.tiers[n - 1].price
        lines.append(Line(f"tier-{n}", q, p, money(q * p)))
    return lines


def total(lines: list[Line]) -> Decimal:
    return sum((line.amount for line in lines), Decimal("0.00"))
