"""Tariffs per community and utility (pricing.py documents), and a unit's
bill for a month priced under them."""

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from ...crud import bills as bills_crud
from ...crud import tariffs as tariffs_crud
from ...schemas import TariffCreate
from ..deps import (
    CurrentUser,
    NowDep,
    ScopedCommunity,
    ScopeDep,
    ScopedUnit,
    SessionDep,
    SettingsDep,
)

router = APIRouter(prefix="/tariffs", tags=["tariffs"])
bills = APIRouter(prefix="/units", tags=["tariffs"])
community_bills = APIRouter(prefix="/communities", tags=["tariffs"])

Month = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


@router.post("", status_code=201)
def create_tariff(
    body: TariffCreate, scope: ScopeDep, session: SessionDep, now: NowDep, me: CurrentUser
) -> dict:
    """A new price of a utility from `effective_from` on (the community's
    managers and admins). Money as decimal strings; 422 says what is wrong."""
    community = scope.community(body.community)
    row = tariffs_crud.create(
        session,
        community=community,
        utility=body.utility,
        effective_from=body.effective_from,
        document={"fixed_monthly": body.fixed_monthly, "period": body.period, "tiers": body.tiers},
        name=body.name,
        source=body.source,
        by=me.username,
        now=now,
    )
    return tariffs_crud.public(row)


@router.get("")
def list_tariffs(community: int, scope: ScopeDep, session: SessionDep) -> list[dict]:
    """Every tariff of the community, per utility oldest first."""
    c = scope.community(community)
    return [tariffs_crud.public(r) for r in tariffs_crud.listing(session, community_id=c.id)]


@bills.get("/{id}/bills")
def unit_bill(
    unit: ScopedUnit, month: Month, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """The unit's bill: line items per utility (fixed charge, one per tier),
    money as decimal strings in CNY, each line ACTUAL / ESTIMATED / MISSING
    as its consumption; utilities without a tariff listed in `unpriced`."""
    return JSONResponse(
        bills_crud.unit_bill(
            session, unit=unit, month=month, window=settings.billing_actual_window_seconds
        )
    )


@community_bills.get(
    "/{id}/bills.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}}
)
def community_bills_csv(
    community: ScopedCommunity, month: Month, session: SessionDep, settings: SettingsDep
) -> Response:
    """Every unit's bill of the month as CSV: one row per line, a total row
    per unit."""
    data = bills_crud.community_csv(
        session, community=community, month=month, window=settings.billing_actual_window_seconds
    )
    name = f"kapok-bills-{community.id}-{month}.csv"
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
