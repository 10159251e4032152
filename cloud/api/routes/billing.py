"""Monthly consumption per unit and utility, and its CSV / XLSX export."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from ...crud import billing as billing_crud
from ...errors import NotFound
from ..deps import ScopeDep, SessionDep, SettingsDep

router = APIRouter(prefix="/billing", tags=["billing"])

Utility = Literal["gas", "water", "electricity"]
Month = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


@router.get("")
def monthly_bill(
    community: int,
    month: Month,
    scope: ScopeDep,
    session: SessionDep,
    settings: SettingsDep,
    utility: Annotated[list[Utility] | None, Query()] = None,
    building: int | None = None,
    cose: Annotated[bool, Query(description="include the readings' COSE bytes (hex)")] = False,
) -> JSONResponse:
    """One entry per unit and utility: consumption (register at month end −
    register at month start, months in the community's time zone), status
    ACTUAL / ESTIMATED / MISSING, notes (`replaced`, `rollover`) and the
    meter parts with the readings (seq, time, and with `cose=true` their
    original COSE bytes as hex) each boundary rests on."""
    c = scope.community(community)
    if building is not None and scope.building(building).community_id != c.id:
        raise NotFound(f"building {building} not found")
    rows = billing_crud.monthly(
        session,
        community=c,
        month=month,
        window=settings.billing_actual_window_seconds,
        utilities=utility,
        building_id=building,
        with_cose=cose,
    )
    return JSONResponse(rows)  # plain data already: no second validation pass


@router.get(
    "/export",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/csv": {},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            }
        }
    },
)
def export_bill(
    community: int,
    month: Month,
    scope: ScopeDep,
    session: SessionDep,
    settings: SettingsDep,
    format: Literal["csv", "xlsx"] = "csv",
    lang: Literal["zh-CN", "en"] = "zh-CN",
    utility: Annotated[list[Utility] | None, Query()] = None,
) -> Response:
    """The bill as a file, one row per meter (a replaced meter gives two rows
    sharing the unit total), headers in Chinese or English."""
    c = scope.community(community)
    rows = billing_crud.monthly(
        session,
        community=c,
        month=month,
        window=settings.billing_actual_window_seconds,
        utilities=utility,
    )
    table = billing_crud.export_rows(rows, lang=lang, timezone=c.timezone)
    name = f"kapok-bill-{c.id}-{month}-{lang}.{format}"
    if format == "csv":
        data, media = billing_crud.to_csv(table), "text/csv; charset=utf-8"
    else:
        title = f"{'账单' if lang == 'zh-CN' else 'Bill'} {month}"
        data = billing_crud.to_xlsx(table, title=title)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(
        data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
