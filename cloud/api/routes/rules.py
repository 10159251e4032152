"""A community's rules and thresholds: the current version, every older
one, and changes (each a new version, audited, delivered to the gateways'
registry and, as signed thresholds.set commands, to the nodes)."""

from fastapi import APIRouter

from ...crud import rules as rules_crud
from ...errors import NotFound
from ...models import Community
from ...rule_defaults import defaults
from ...schemas import RulesPublic, RulesUpdate, RuleVersionPublic
from ..deps import KeysDep, NowDep, RulesEditor, ScopedCommunity, SessionDep, SettingsDep

router = APIRouter(prefix="/communities", tags=["rules"])


def rules_public(session, community: Community) -> dict:
    number, doc, row = rules_crud.current(session, community_id=community.id)
    return {
        "community": community.id,
        "version": number,
        "rules": doc,
        "defaults": defaults(),
        "created_at": row.created_at if row else None,
        "created_by": row.created_by if row else None,
        "note": row.note if row else None,
        "delivery": rules_crud.delivery(session, community_id=community.id),
    }


@router.get("/{id}/rules", response_model=RulesPublic)
def read_rules(community: ScopedCommunity, session: SessionDep) -> dict:
    """The current rules (version 0: never changed, the defaults), the
    defaults beside them, and the thresholds.set delivery per device."""
    return rules_public(session, community)


@router.put("/{id}/rules", response_model=RulesPublic)
def update_rules(
    community: ScopedCommunity,
    body: RulesUpdate,
    session: SessionDep,
    keys: KeysDep,
    settings: SettingsDep,
    now: NowDep,
    me: RulesEditor,
) -> dict:
    """Change the parts given (the others stay). A change is a new version;
    no change makes none."""
    rules_crud.update(
        session,
        community=community,
        changes=body.model_dump(exclude={"note"}, exclude_none=True),
        note=body.note,
        by=me.username,
        keys=keys,
        ttl=settings.command_max_ttl_seconds,
        now=now,
    )
    return rules_public(session, community)


def _version_public(row, older) -> dict:
    return {
        "version": row.version,
        "rules": rules_crud._complete(row.rules),
        "created_at": row.created_at,
        "created_by": row.created_by,
        "note": row.note,
        "changes": rules_crud.diff(older, rules_crud._complete(row.rules)),
    }


def versions_public(session, community: Community) -> list[dict]:
    rows = rules_crud.versions(session, community_id=community.id)
    out = []
    for i, row in enumerate(rows):
        older = rules_crud._complete(rows[i + 1].rules) if i + 1 < len(rows) else defaults()
        out.append(_version_public(row, older))
    return out


@router.get("/{id}/rules/versions", response_model=list[RuleVersionPublic])
def list_rule_versions(community: ScopedCommunity, session: SessionDep) -> list[dict]:
    """Every version, newest first, each with what it changed."""
    return versions_public(session, community)


@router.get("/{id}/rules/versions/{version}", response_model=RuleVersionPublic)
def read_rule_version(community: ScopedCommunity, version: int, session: SessionDep) -> dict:
    row = rules_crud.version(session, community_id=community.id, number=version)
    if row is None:
        raise NotFound(f"rules version {version} not found")
    prev = rules_crud.version(session, community_id=community.id, number=version - 1)
    return _version_public(row, rules_crud._complete(prev.rules) if prev else defaults())
