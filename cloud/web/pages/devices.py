"""A device: its reading chart and history, data completeness and seq
gaps, health, alarms, commands, and valve control with confirmation; and
one command's way from queued to done (and confirmed by a reading)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Response
from sqlalchemy import select

from kapok.protocols import senml

from ...api.routes import commands as commands_api
from ...crud import commands as commands_crud
from ...crud import devices as devices_crud
from ...models import (
    COMMAND_FINAL,
    Alarm,
    Building,
    Command,
    Community,
    Device,
    Event,
    Gateway,
    Reading,
    Unit,
)
from ...schemas import CommandCreate
from ..i18n import DECIMALS, unit_label
from ..rendering import PageRoute, redirect, render
from ..session import PageDep, PostedPageDep

router = APIRouter(route_class=PageRoute)

# the reading a device's chart shows first
PRIMARY = {
    "gas-meter": "vol",
    "water-meter": "vol",
    "electricity-meter": "energy",
    "water-quality": "ph",
    "hub": "temp",
}
VALVE_KINDS = ("gas-meter", "water-meter")
DAYS = (1, 7, 30, 90)
CHART_POINTS = 20000
HISTORY_ROWS = 200
# a done valve command waits this long for the reading that confirms it
CONFIRM_WAIT = 86400


def has_valve(device: Device, latest: dict) -> bool:
    return device.kind in VALVE_KINDS or "valve" in latest


def _where(session, device: Device):
    unit = session.get(Unit, device.unit_id) if device.unit_id else None
    building = session.get(Building, unit.building_id) if unit else None
    return unit, building


@router.get("/devices/{device_id}")
def device_page(
    page: PageDep,
    device_id: str,
    n: str | None = None,
    days: Annotated[int, Query(ge=1, le=366)] = 7,
) -> Response:
    s = page.session
    device = page.scope.device(device_id)
    unit, building = _where(s, device)
    latest = devices_crud.latest(s, device_id=device.id)
    numeric = [name for name in senml.READINGS if name in latest and senml.kind(name) == "v"]
    if n not in latest:
        n = PRIMARY.get(device.kind) if PRIMARY.get(device.kind) in latest else None
        n = n or (numeric[0] if numeric else next(iter(latest), None))
    rows = []
    if n is not None:
        # the newest CHART_POINTS of the window, then back into time order
        query = (
            devices_crud.readings_query(
                device_id=device.id,
                names=[n],
                t_from=page.now - days * 86400,
                t_to=page.now,
                limit=CHART_POINTS,
            )
            .order_by(None)
            .order_by(Reading.t.desc(), Reading.seq.desc(), Reading.id.desc())
        )
        rows = [devices_crud.reading_json(row) for row in s.execute(query)][::-1]
    chart = None
    if n is not None and senml.kind(n) == "v" and rows:
        chart = {
            "name": page.t.reading_name(n),
            "unit": unit_label(rows[-1]["u"] or senml.unit(n)),
            "t": [r["t"] for r in rows],
            "v": [r["v"] for r in rows],
            "tz": page.t.timezone,
            "decimals": DECIMALS.get(n, 2),
        }
    history = list(reversed(rows[-HISTORY_ROWS:]))
    completeness = {
        "day": devices_crud.completeness(s, device=device, t_from=page.now - 86400, t_to=page.now),
        "window": devices_crud.completeness(
            s, device=device, t_from=page.now - days * 86400, t_to=page.now
        ),
    }
    gaps = devices_crud.gaps(s, device_id=device.id)
    commands = list(s.scalars(commands_crud.query(communities=None, device_id=device.id, limit=20)))
    events = list(
        s.scalars(
            select(Event)
            .where(Event.device_id == device.id)
            .order_by(Event.t.desc(), Event.id.desc())
            .limit(20)
        )
    )
    alarms = list(
        s.scalars(
            select(Alarm)
            .where(Alarm.device_id == device.id)
            .order_by(Alarm.opened_at.desc(), Alarm.id.desc())
            .limit(10)
        )
    )
    return render(
        page,
        "device.html",
        section="overview",
        device=device,
        unit=unit,
        building=building,
        gateway=s.get(Gateway, device.gateway_id),
        community=s.get(Community, device.community_id),
        latest=latest,
        names=[name for name in latest if senml.kind(name) != "vs"],
        n=n,
        days=days,
        day_choices=DAYS,
        chart=chart,
        history=history,
        history_limited=len(rows) > HISTORY_ROWS,
        completeness=completeness,
        gaps=list(reversed(gaps[-20:])),
        gap_count=len(gaps),
        commands=commands,
        events=events,
        alarms=alarms,
        has_valve=has_valve(device, latest),
        valve=latest["valve"]["v"] if "valve" in latest else None,
    )


ValveOp = Literal["valve.close", "valve.open"]


@router.post("/devices/{device_id}/valve")
def valve(
    page: PostedPageDep,
    device_id: str,
    op: Annotated[ValveOp, Form()],
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Without `confirm=yes`: the confirmation page, nothing sent. With it:
    the command is signed and queued exactly as the API does it."""
    device = page.scope.device(device_id)
    if confirm != "yes":
        unit, building = _where(page.session, device)
        return render(
            page,
            "valve_confirm.html",
            section="overview",
            device=device,
            op=op,
            unit=unit,
            building=building,
        )
    command = commands_api.send_command(
        device=device,
        body=CommandCreate(op=op),
        session=page.session,
        settings=page.settings,
        keys=page.keys,
        now=page.now,
        me=page.user,
    )
    return redirect(f"/commands/{command.id}")


def command_steps(command: Command) -> list[dict]:
    """The command's way so far, for the timeline: (state, when, reached?)."""
    steps = [
        {"state": "queued", "at": command.created_at, "reached": True},
        {"state": "sent", "at": command.sent_at, "reached": command.sent_at is not None},
        {
            "state": "delivered",
            "at": command.delivered_at,
            "reached": command.delivered_at is not None,
        },
    ]
    final = command.state if command.state in COMMAND_FINAL else "done"
    steps.append(
        {
            "state": final,
            "at": command.finished_at,
            "reached": command.state in COMMAND_FINAL,
        }
    )
    if command.op in commands_crud.VALVE_OPS and command.state not in ("failed", "expired"):
        steps.append(
            {
                "state": "confirmed",
                "at": command.confirmed_at,
                "reached": command.confirmed_at is not None,
            }
        )
    return steps


def still_moving(command: Command, now: float) -> bool:
    """Worth refreshing the page for: not final yet, or a valve command
    waiting for the reading that confirms it."""
    if command.state not in COMMAND_FINAL:
        return True
    return (
        command.op in commands_crud.VALVE_OPS
        and command.state == "done"
        and command.confirmed_at is None
        and now - (command.finished_at or now) < CONFIRM_WAIT
    )


@router.get("/commands/{command_id}")
def command_page(page: PageDep, command_id: int) -> Response:
    command = page.scope.command(command_id)
    device = page.session.get(Device, command.device_id)
    return render(
        page,
        "command.html",
        section="overview",
        command=command,
        device=device,
        steps=command_steps(command),
        refresh=still_moving(command, page.now),
    )
