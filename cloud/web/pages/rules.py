"""A community's rules and thresholds: the current values beside the
GB 5749-2022 defaults, the edit form, the version history with who, when
and what changed, and the thresholds.set delivery per device."""

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from ...api.deps import require_rules_editor
from ...api.routes import rules as rules_api
from ...crud import rules as rules_crud
from ...crud.alarms import SEVERITY
from ...models import DEVICE_KINDS
from ...rule_defaults import DEFAULTS, FLOW_KINDS, LIFE_SAFETY, QUALITY_UNITS, SOURCES
from ...schemas import RulesUpdate
from ..rendering import PageRoute, redirect, render
from ..session import Page, PageDep, PostedPageDep

router = APIRouter(route_class=PageRoute)

QUALITY = tuple(QUALITY_UNITS)
AUTO_CODES = tuple(code for code in SEVERITY if code not in LIFE_SAFETY)
TARGETS = ("self", "unit:hub", "unit:gas-meter", "unit:water-meter")
EVENTS = ("gas.leak", "smoke", "water.leak", "sos", "tamper", "flow.continuous", "valve.fault")
OPS = ("valve.close", "siren.on")
EXTRA_ROWS = 2  # empty fail-safe rows to add rules with


async def _form(request: Request) -> FormData:
    return await request.form()  # parsed once per request (the CSRF check reads it too)


FormDep = Annotated[FormData, Depends(_form)]


def _num(v) -> str:
    if v is None:
        return ""
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def values_of(doc: dict) -> dict[str, str]:
    """The form's fields filled from a rules document."""
    out = {}
    for name in QUALITY:
        low, high = doc["quality"].get(name, [None, None])
        out[f"{name}_low"], out[f"{name}_high"] = _num(low), _num(high)
    out["battery_low_v"] = _num(doc["battery_low_v"])
    for kind in FLOW_KINDS:
        out[f"flow_{kind}"] = _num(doc["continuous_flow_h"].get(kind))
    for kind in DEVICE_KINDS:
        out[f"silent_{kind}"] = _num(doc["silent_minutes"].get(kind))
    for code in AUTO_CODES:
        out[f"auto_{code}"] = _num(doc["auto_resolve_minutes"].get(code))
    return out


def _number(form: FormData, name: str, errors: list[str], label: str, t) -> float | None:
    raw = (form.get(name) or "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        errors.append(t("rules.error.not_number", field=label, value=raw))
        return None
    return value


def changes_of(form: FormData, t) -> tuple[dict, list[str]]:
    """The RulesUpdate body a submitted form asks for, and the fields that
    are not numbers."""
    errors: list[str] = []
    quality = {}
    for name in QUALITY:
        label = t(f"rules.reading.{name}")
        quality[name] = [
            _number(form, f"{name}_low", errors, label, t),
            _number(form, f"{name}_high", errors, label, t),
        ]
    failsafe = []
    for event, op, target in zip(
        form.getlist("rule_event"),
        form.getlist("rule_op"),
        form.getlist("rule_target"),
        strict=False,
    ):
        if event:
            failsafe.append({"event": event, "op": op, "target": target})
    changes = {
        "quality": quality,
        "battery_low_v": _number(form, "battery_low_v", errors, t("rules.battery"), t),
        "continuous_flow_h": {
            kind: _number(form, f"flow_{kind}", errors, t(f"kind.{kind}"), t) for kind in FLOW_KINDS
        },
        "silent_minutes": {
            kind: _number(form, f"silent_{kind}", errors, t(f"kind.{kind}"), t)
            for kind in DEVICE_KINDS
        },
        "auto_resolve_minutes": {
            code: _number(form, f"auto_{code}", errors, t.maybe("event", code), t)
            for code in AUTO_CODES
        },
        "failsafe": failsafe,
        "note": (form.get("note") or "").strip() or None,
    }
    changes["continuous_flow_h"] = {
        k: v for k, v in changes["continuous_flow_h"].items() if v is not None
    }
    return changes, errors


def _field(loc: tuple, t) -> str:
    """The form's label for a validation error's location."""
    first = loc[0] if loc else ""
    rest = loc[1] if len(loc) > 1 else None
    if first == "quality" and rest:
        return t.maybe("rules.reading", str(rest))
    if first in ("continuous_flow_h", "silent_minutes") and rest:
        return t.maybe("kind", str(rest))
    if first == "auto_resolve_minutes" and rest:
        return t.maybe("event", str(rest))
    if first == "battery_low_v":
        return t("rules.battery")
    if first == "failsafe":
        return t("rules.failsafe")
    return ".".join(str(x) for x in loc)


def error_text(err: dict, t) -> str:
    """A validation error in the viewer's language: the rules' own errors
    by their type, the others as "field: out of range"."""
    kind = err["type"]
    ctx = dict(err.get("ctx") or {})
    if kind.startswith("rules.") and f"rules.error.{kind[6:]}" in t.messages:
        if "name" in ctx:
            ctx["name"] = t.maybe("rules.reading", ctx["name"])
        if "kind" in ctx:
            ctx["kind"] = t.maybe("kind", ctx["kind"])
        if "code" in ctx:
            ctx["code"] = t.maybe("event", ctx["code"])
        ctx.setdefault("field", _field(tuple(err.get("loc", ())), t))
        return t(f"rules.error.{kind[6:]}", **ctx)
    return t("rules.error.other", field=_field(tuple(err.get("loc", ())), t))


def show(value) -> str:
    """A rules value as the history table writes it."""
    if value is None:
        return "—"
    if isinstance(value, list) and len(value) == 2 and not isinstance(value[0], str):
        low, high = value
        if low is None:
            return f"≤ {_num(high)}"
        if high is None:
            return f"≥ {_num(low)}"
        return f"{_num(low)} – {_num(high)}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) or "—"
    return _num(value)


def _render(page: Page, community, *, values=None, rules=None, errors=(), status=200):
    current = rules_api.rules_public(page.session, community)
    doc = current["rules"]
    failsafe = rules if rules is not None else doc["failsafe"]
    return render(
        page,
        "rules.html",
        status=status,
        section="rules",
        community=community,
        current=current,
        doc=doc,
        defaults=DEFAULTS,
        sources=SOURCES,
        values=values or values_of(doc),
        failsafe=list(failsafe) + [{"event": "", "op": "", "target": ""}] * EXTRA_ROWS,
        versions=rules_api.versions_public(page.session, community),
        errors=list(errors),
        quality=QUALITY,
        units=QUALITY_UNITS,
        flow_kinds=FLOW_KINDS,
        device_kinds=DEVICE_KINDS,
        auto_codes=AUTO_CODES,
        life_safety=LIFE_SAFETY,
        events=EVENTS,
        ops=OPS,
        targets=TARGETS,
        show=show,
    )


@router.get("/communities/{community_id}/rules")
def rules_page(page: PageDep, community_id: int) -> Response:
    return _render(page, page.scope.community(community_id))


@router.post("/communities/{community_id}/rules")
def save_rules(page: PostedPageDep, community_id: int, form: FormDep) -> Response:
    community = page.scope.community(community_id)
    require_rules_editor(page.user)  # the API's 403 for roles that only read
    changes, errors = changes_of(form, page.t)
    body = None
    if not errors:
        try:
            body = RulesUpdate.model_validate(changes)
        except ValidationError as e:
            errors = [error_text(err, page.t) for err in e.errors()]
    if body is None:
        # the form again, as it was typed, with what is wrong
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        return _render(
            page, community, values=values, rules=changes["failsafe"], errors=errors, status=422
        )
    rules_crud.update(
        page.session,
        community=community,
        changes=body.model_dump(exclude={"note"}, exclude_none=True),
        note=body.note,
        by=page.user.username,
        keys=page.keys,
        ttl=page.settings.command_max_ttl_seconds,
        now=page.now,
    )
    return redirect(f"/communities/{community.id}/rules#versions")
