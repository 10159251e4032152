"""The audit page: who did what and when, filtered by community, person,
kind and time; each community's whole chain as CSV for `kapok verify`."""

from datetime import datetime, timedelta

from fastapi import APIRouter, Response

from ...api.routes import audit as audit_api
from ...crud import audit as audit_crud
from ...errors import Invalid
from .. import queries
from ..rendering import PageRoute, render
from ..session import PageDep

router = APIRouter(route_class=PageRoute)

KINDS = (
    "alarm",
    "work_order",
    "notify",
    "channel",
    "roster",
    "command",
    "rules",
    "user",
    "device",
    "gateway",
    "api_key",
    "key",
    "rollout",
)
LIMIT = 500


def _day(page, value: str | None, what: str) -> float | None:
    """A YYYY-MM-DD of the form as the start of that day in the viewer's zone."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=page.t.tz)
    except ValueError:
        raise Invalid(page.t("audit.bad_date", field=page.t(what), value=value)) from None
    return day.timestamp()


@router.get("/audit")
def audit_page(
    page: PageDep,
    community: int | None = None,
    user: str = "",
    kind: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    if community is not None:
        page.scope.community(community)
    t_from = _day(page, since, "audit.since")
    t_to = _day(page, until, "audit.until")
    if t_to is not None:
        t_to = (datetime.fromtimestamp(t_to, page.t.tz) + timedelta(days=1)).timestamp()
    entries = list(
        page.session.scalars(
            audit_crud.query(
                communities=page.scope.communities,
                community_id=community,
                since=t_from,
                until=t_to,
                actor=f"user:{user.strip()}" if user.strip() else None,
                kind=kind or None,
                limit=LIMIT,
            )
        )
    )
    communities = queries.communities(page.session, scope=page.scope)
    return render(
        page,
        "audit.html",
        section="audit",
        entries=entries,
        limit=LIMIT,
        communities=communities,
        names={c.id: c.name for c in communities},
        kinds=KINDS,
        filters={
            "community": community,
            "user": user,
            "kind": kind,
            "since": since,
            "until": until,
        },
        admin=page.scope.communities is None,
    )


@router.get("/audit/chain.csv")
def audit_chain(page: PageDep, community: int | None = None) -> Response:
    """The same export as the API's, from the page (with the login cookie)."""
    return audit_api.export_chain(scope=page.scope, session=page.session, community=community)
