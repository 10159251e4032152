"""Billing: a community's month per unit and utility, with the validation
flags (`crud.billing.monthly`, as the API computes it), and the CSV / XLSX
downloads (the API's own export route, reached with the dashboard's
session)."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from ...api.routes import billing as billing_api
from ...crud import billing as billing_crud
from .. import queries
from ..rendering import PageRoute, render
from ..session import PageDep

router = APIRouter(route_class=PageRoute)

MonthQuery = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]
UTILITIES = ("gas", "water", "electricity")


def previous_month(now: float, tz) -> str:
    today = datetime.fromtimestamp(now, tz)
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@router.get("/billing")
def billing_page(
    page: PageDep,
    community: int | None = None,
    month: MonthQuery = None,
    utility: Literal["gas", "water", "electricity"] | None = None,
) -> Response:
    communities = queries.communities(page.session, scope=page.scope)
    if community is not None:
        selected = page.scope.community(community)
    else:
        selected = communities[0] if communities else None
    month = month or previous_month(page.now, page.t.tz)
    rows = []
    if selected is not None:
        rows = billing_crud.monthly(
            page.session,
            community=selected,
            month=month,
            window=page.settings.billing_actual_window_seconds,
            utilities=[utility] if utility else None,
        )
    totals: dict[str, dict] = {}
    for row in rows:
        total = totals.setdefault(
            row["utility"], {"uom": row["uom"], "amount": 0.0, "units": 0, "flagged": 0}
        )
        total["units"] += 1
        if row["consumption"] is not None:
            total["amount"] += row["consumption"]
        if row["status"] != "ACTUAL":
            total["flagged"] += 1
    return render(
        page,
        "billing.html",
        section="billing",
        communities=communities,
        selected=selected,
        month=month,
        utility=utility,
        utilities=UTILITIES,
        rows=rows,
        totals=totals,
    )


@router.get("/billing/export")
def billing_export(
    page: PageDep,
    community: int,
    month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")],
    format: Literal["csv", "xlsx"] = "csv",
    lang: Literal["zh-CN", "en"] = "zh-CN",
    utility: Literal["gas", "water", "electricity"] | None = None,
) -> Response:
    """The same file as `GET /api/v1/billing/export`."""
    return billing_api.export_bill(
        community=community,
        month=month,
        scope=page.scope,
        session=page.session,
        settings=page.settings,
        format=format,
        lang=lang,
        utility=[utility] if utility else None,
    )
