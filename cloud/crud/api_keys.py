"""Read-only API keys of outside systems (city platforms, utilities): made
by an admin or by a manager for their own communities, shown once, stored as
a SHA-256, revocable, rate-limited per key across every worker (rows)."""

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..core.security import new_token, token_hash
from ..errors import Invalid, NotFound, TooManyRequests
from ..models import ApiKey, ApiKeyCommunity, ApiKeyUsage, Community
from . import audit

PREFIX = "kapok_ak_"  # tells a platform key apart from a login or gateway token
MAX_RATE = 6000


def communities_of(session: Session, key: ApiKey) -> list[int]:
    return list(
        session.scalars(
            select(ApiKeyCommunity.community_id)
            .where(ApiKeyCommunity.api_key_id == key.id)
            .order_by(ApiKeyCommunity.community_id)
        )
    )


def create_key(
    session: Session,
    *,
    name: str,
    communities: list[int],
    rate_per_minute: int,
    by: str,
    now: float,
) -> tuple[ApiKey, str]:
    """(the key's row, the key itself: shown this once)."""
    if not communities:
        raise Invalid("an API key needs at least one community")
    if not 1 <= rate_per_minute <= MAX_RATE:
        raise Invalid(f"rate_per_minute must be 1 to {MAX_RATE}")
    wanted = sorted(set(communities))
    found = set(session.scalars(select(Community.id).where(Community.id.in_(wanted))))
    for c in wanted:
        if c not in found:
            raise NotFound(f"community {c} not found")
    token = PREFIX + new_token()
    key = ApiKey(
        name=name,
        token_hash=token_hash(token),
        prefix=token[: len(PREFIX) + 4],
        rate_per_minute=rate_per_minute,
        created_at=now,
        created_by=by,
    )
    session.add(key)
    session.flush()
    session.add_all(ApiKeyCommunity(api_key_id=key.id, community_id=c) for c in wanted)
    for c in wanted:
        audit.record(
            session,
            actor=f"user:{by}",
            action="api_key.create",
            target=f"api_key:{key.id}",
            community_id=c,
            detail={"name": name, "prefix": key.prefix, "rate_per_minute": rate_per_minute},
            now=now,
        )
    session.flush()
    return key, token


def revoke(session: Session, *, key: ApiKey, by: str, now: float) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = now
        for c in communities_of(session, key):
            audit.record(
                session,
                actor=f"user:{by}",
                action="api_key.revoke",
                target=f"api_key:{key.id}",
                community_id=c,
                detail={"name": key.name, "prefix": key.prefix},
                now=now,
            )
        session.execute(delete(ApiKeyUsage).where(ApiKeyUsage.api_key_id == key.id))
    return key


def key_by_token(session: Session, *, token: str) -> ApiKey | None:
    if not token.startswith(PREFIX):
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.token_hash == token_hash(token)))
    if key is None or key.revoked_at is not None:
        return None
    return key


def count_request(session: Session, *, key: ApiKey, now: float) -> None:
    """One request of `key` in this minute; TooManyRequests past its rate.
    An upsert on the (key, minute) row, so every worker counts in one place."""
    minute = int(now // 60)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ApiKeyUsage).values(api_key_id=key.id, minute=minute, count=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ApiKeyUsage.api_key_id, ApiKeyUsage.minute],
        set_={"count": ApiKeyUsage.count + 1},
    ).returning(ApiKeyUsage.count)
    count = session.scalar(stmt)
    if minute % 10 == 0:  # now and then, forget old minutes
        session.execute(
            delete(ApiKeyUsage).where(
                ApiKeyUsage.api_key_id == key.id, ApiKeyUsage.minute < minute - 1
            )
        )
    if count > key.rate_per_minute:
        raise TooManyRequests(
            f"API key over {key.rate_per_minute} requests a minute",
            retry_after=max(1, 60 - int(now % 60)),
        )
    if key.last_used_at is None or now - key.last_used_at > 60:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
