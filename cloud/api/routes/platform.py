"""Read-only bulk access for city platforms and utilities, with an API key
(`X-API-Key`): readings and alarms of the key's communities since a cursor,
and a month of readings as CSV or Parquet (docs/platform.md)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from ...crud import platform as platform_crud
from ...schemas import AlarmPage, AlarmPublic, ReadingPage
from ..deps import ApiKeyScopeDep, SessionDep

router = APIRouter(prefix="/platform", tags=["platform"])

Cursor = Annotated[
    str | None,
    Query(description="the `cursor` of the previous page; none for the beginning"),
]
Limit = Annotated[int, Query(ge=1, le=5000)]
Month = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


@router.get("/readings", response_model=ReadingPage, response_model_exclude_none=True)
def read_readings(
    scope: ApiKeyScopeDep,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Limit = 1000,
    community: int | None = None,
    n: Annotated[str | None, Query(description="only readings of this name, e.g. vol")] = None,
    cose: Annotated[bool, Query(description="include each message's signed original")] = False,
) -> dict:
    """Readings in the order they were stored, after `cursor`. Follow the
    returned cursor page by page: no reading is skipped or given twice,
    while readings keep arriving; an empty page means "nothing new yet"."""
    return platform_crud.readings_page(
        session,
        communities=scope.community_filter(community),
        cursor=cursor,
        limit=limit,
        name=n,
        with_cose=cose,
    )


@router.get("/alarms", response_model=AlarmPage)
def read_alarms(
    scope: ApiKeyScopeDep,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Limit = 500,
    community: int | None = None,
) -> dict:
    """Alarms opened after `cursor`, each with its state as it is now."""
    page = platform_crud.alarms_page(
        session, communities=scope.community_filter(community), cursor=cursor, limit=limit
    )
    page["items"] = [AlarmPublic.model_validate(a) for a in page["items"]]
    return page


@router.get(
    "/readings/export",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}},
    },
)
def export_month(
    scope: ApiKeyScopeDep,
    session: SessionDep,
    community: int,
    month: Month,
    format: Literal["csv", "parquet"] = "csv",
) -> Response:
    """Every reading of the community in `month` (its time zone), in time
    order, each with its message's signed original (hex, COSE) that the
    device's public key verifies."""
    c = scope.community(community)
    rows = platform_crud.month_rows(session, community=c, month=month)
    name = f"kapok-readings-{c.id}-{month}.{format}"
    if format == "csv":
        data, media = platform_crud.to_csv(rows), "text/csv; charset=utf-8"
    else:
        data, media = platform_crud.to_parquet(rows), "application/vnd.apache.parquet"
    return Response(
        data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
