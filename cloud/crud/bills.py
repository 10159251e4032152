"""A unit's bill for a month: the consumption `crud/billing.py` computes,
priced by `pricing.py` under the tariff in effect on the month's first day.

Annual tiers count the household's use since 1 January: the earlier months
of the same year are computed the same way and carried in (a month whose
consumption is MISSING carries nothing). Estimated consumption is priced
and its lines say ESTIMATED. The output depends on nothing but the readings
and the tariffs, so the same data give the same bill, byte for byte.
"""

from decimal import Decimal

from sqlalchemy.orm import Session

from .. import billing, pricing
from ..models import Building, Community, Unit
from . import billing as billing_crud
from . import tariffs as tariffs_crud


def _rows(session, *, community, unit, month, window) -> dict[str, dict]:
    rows = billing_crud.monthly(
        session,
        community=community,
        month=month,
        window=window,
        building_id=unit.building_id,
        with_cose=False,
    )
    return {r["utility"]: r for r in rows if r["unit_id"] == unit.id}


def unit_bill(session: Session, *, unit: Unit, month: str, window: float) -> dict:
    building = session.get(Building, unit.building_id)
    community = session.get(Community, building.community_id)
    billing_crud.month_bounds(month, community.timezone)  # checks the month
    year, mon = int(month[:4]), int(month[5:])
    rows = _rows(session, community=community, unit=unit, month=month, window=window)
    earlier: list[dict[str, dict]] | None = None
    lines, unpriced, flags = [], [], []
    for utility in billing_crud.UTILITIES:
        row = rows.get(utility)
        if row is None:
            continue
        tariff_row = tariffs_crud.in_effect(
            session, community_id=community.id, utility=utility, day=f"{month}-01"
        )
        if tariff_row is None:
            unpriced.append(utility)
            continue
        tariff = pricing.parse(tariff_row.document)
        status = row["status"]
        flags.append(status)
        used = None if row["consumption"] is None else pricing.quantity(row["consumption"])
        before = Decimal(0)
        if tariff.period == "annual" and mon > 1:
            if earlier is None:
                earlier = [
                    _rows(
                        session,
                        community=community,
                        unit=unit,
                        month=f"{year:04d}-{m:02d}",
                        window=window,
                    )
                    for m in range(1, mon)
                ]
            for r in earlier:
                c = r.get(utility, {}).get("consumption")
                if c is not None:
                    before += pricing.quantity(c)
        priced = pricing.price(tariff, used or Decimal(0), used_before=before)
        for line in priced:
            lines.append(
                {
                    "utility": utility,
                    "item": line.item,
                    "quantity": str(line.quantity),
                    "unit_price": str(line.unit_price),
                    "amount": str(line.amount),
                    "status": billing.ACTUAL if line.item == pricing.FIXED else status,
                    "tariff": tariff_row.id,
                }
            )
        if used is None:
            lines.append(
                {
                    "utility": utility,
                    "item": "consumption",
                    "quantity": None,
                    "unit_price": None,
                    "amount": "0.00",
                    "status": billing.MISSING,
                    "tariff": tariff_row.id,
                }
            )
        if tariff.period == "annual":
            lines[-1]["year_before"] = str(before)
    total = sum((Decimal(x["amount"]) for x in lines), Decimal("0.00"))
    return {
        "unit": unit.id,
        "month": month,
        "currency": "CNY",
        "lines": lines,
        "total": str(total),
        "status": billing.worst(*flags) if flags else billing.ACTUAL,
        "unpriced": unpriced,
    }


CSV_COLUMNS = ("month", "building", "unit", "utility", "item", "quantity", "unit_price", "amount",
               "status")  # fmt: skip


def community_csv(session: Session, *, community: Community, month: str, window: float) -> bytes:
    """Every unit's bill of the month, one row per line and a total row per
    unit (item `total`), money as printed on the bills."""
    from sqlalchemy import select

    units = session.execute(
        select(Unit, Building.name)
        .join(Building, Building.id == Unit.building_id)
        .where(Building.community_id == community.id)
        .order_by(Building.name, Unit.name, Unit.id)
    ).all()
    table = [list(CSV_COLUMNS)]
    for unit, building in units:
        b = unit_bill(session, unit=unit, month=month, window=window)
        for x in b["lines"]:
            table.append(
                [
                    month,
                    building,
                    unit.name,
                    x["utility"],
                    x["item"],
                    x["quantity"] or "",
                    x["unit_price"] or "",
                    x["amount"],
                    x["status"],
                ]
            )
        table.append([month, building, unit.name, "", "total", "", "", b["total"], b["status"]])
    return billing_crud.to_csv(table)
