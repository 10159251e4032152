"""Read-only API keys of outside systems: made by an admin, or by a manager
for communities of their own; listed and revoked the same way."""

from fastapi import APIRouter, Response

from ...crud import api_keys as api_keys_crud
from ...errors import NotFound
from ...models import ApiKey
from ...schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from ..deps import CurrentUser, NowDep, Scope, ScopeDep, SessionDep

router = APIRouter(prefix="/api-keys", tags=["api keys"])


def _public(session, row: ApiKey, model=ApiKeyPublic, **extra):
    data = {c: getattr(row, c) for c in ApiKeyPublic.model_fields if c != "communities"}
    return model(**data, communities=api_keys_crud.communities_of(session, row), **extra)


def _visible(scope: Scope, session, key: ApiKey | None) -> bool:
    """A manager sees (and revokes) a key only when all of its communities are theirs."""
    if key is None:
        return False
    return all(scope.allows(c) for c in api_keys_crud.communities_of(session, key))


@router.post("", response_model=ApiKeyCreated, status_code=201)
def create_api_key(
    body: ApiKeyCreate, scope: ScopeDep, session: SessionDep, now: NowDep, me: CurrentUser
) -> ApiKeyCreated:
    """The key is in the answer this once (`key`); keep it like a password."""
    for c in body.communities:
        scope.community(c)
    key, token = api_keys_crud.create_key(
        session,
        name=body.name,
        communities=body.communities,
        rate_per_minute=body.rate_per_minute,
        by=me.username,
        now=now,
    )
    return _public(session, key, ApiKeyCreated, key=token)


@router.get("", response_model=list[ApiKeyPublic])
def list_api_keys(scope: ScopeDep, session: SessionDep) -> list[ApiKeyPublic]:
    keys = session.query(ApiKey).order_by(ApiKey.id).all()
    return [_public(session, k) for k in keys if _visible(scope, session, k)]


@router.delete("/{id}", status_code=204)
def revoke_api_key(
    id: int, scope: ScopeDep, session: SessionDep, now: NowDep, me: CurrentUser
) -> Response:
    key = session.get(ApiKey, id)
    if not _visible(scope, session, key):
        raise NotFound(f"API key {id} not found")
    api_keys_crud.revoke(session, key=key, by=me.username, now=now)
    return Response(status_code=204)
