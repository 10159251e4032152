"""A community's tariffs (pricing.py documents) and the one in effect for a
month: the newest whose `effective_from` is on or before the month's first
day. A tariff taking effect mid-month prices from the next month on (no
proration yet)."""

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import pricing
from ..errors import Conflict, Invalid
from ..models import Community, Tariff
from . import audit


def create(
    session: Session,
    *,
    community: Community,
    utility: str,
    effective_from: str,
    document: dict,
    name: str | None,
    source: str | None,
    by: str,
    now: float,
) -> Tariff:
    try:
        date.fromisoformat(effective_from)
    except ValueError:
        raise Invalid(f"effective_from: {effective_from!r} is not a date") from None
    try:
        doc = pricing.document(pricing.parse(document))
    except pricing.TariffError as e:
        raise Invalid(str(e)) from None
    taken = session.scalar(
        select(Tariff.id).where(
            Tariff.community_id == community.id,
            Tariff.utility == utility,
            Tariff.effective_from == effective_from,
        )
    )
    if taken is not None:
        raise Conflict(f"a {utility} tariff from {effective_from} exists already (id {taken})")
    row = Tariff(
        community_id=community.id,
        utility=utility,
        effective_from=effective_from,
        name=name,
        source=source,
        document=doc,
        created_at=now,
        created_by=by,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=f"user:{by}",
        action="tariff.create",
        target=f"community:{community.id}",
        community_id=community.id,
        detail={"tariff": row.id, "utility": utility, "effective_from": effective_from},
        now=now,
    )
    return row


def listing(session: Session, *, community_id: int) -> list[Tariff]:
    return list(
        session.scalars(
            select(Tariff)
            .where(Tariff.community_id == community_id)
            .order_by(Tariff.utility, Tariff.effective_from)
        )
    )


def in_effect(session: Session, *, community_id: int, utility: str, day: str) -> Tariff | None:
    return session.scalar(
        select(Tariff)
        .where(
            Tariff.community_id == community_id,
            Tariff.utility == utility,
            Tariff.effective_from <= day,
        )
        .order_by(Tariff.effective_from.desc())
        .limit(1)
    )


def public(row: Tariff) -> dict:
    return {
        "id": row.id,
        "community": row.community_id,
        "utility": row.utility,
        "effective_from": row.effective_from,
        "name": row.name,
        "source": row.source,
        **row.document,
        "created_at": row.created_at,
        "created_by": row.created_by,
    }
