"""Alarms: filter, acknowledge and resolve through the forms, with who and
when; the same rules and audit entries as the API."""

import re

from ..helpers import meter_reading
from .helpers import T0


def test_acknowledge_then_resolve_records_who_and_when(manager_a, world, seeded, clock):
    alarm = seeded["alarm_id"]
    page = manager_a.get("/alarms").text
    assert f'id="alarm-{alarm}"' in page and "燃气泄漏" in page and "未处理" in page
    clock.advance(120)
    r = manager_a.post(f"/alarms/{alarm}/ack", data={"note": "已派人上门", "next": "/alarms"})
    assert r.status_code == 303 and r.headers["location"] == "/alarms"
    got = world.ok("GET", f"/api/v1/alarms/{alarm}")
    assert (got["state"], got["acked_by"], got["acked_at"], got["note"]) == (
        "acknowledged",
        world.a.manager,
        T0 + 120,
        "已派人上门",
    )
    page = manager_a.get("/alarms").text
    assert f"{world.a.manager} 于 2026-01-01 08:02 确认" in page
    clock.advance(600)
    assert manager_a.post(f"/alarms/{alarm}/resolve", data={}).status_code == 303
    assert world.ok("GET", f"/api/v1/alarms/{alarm}")["resolved_by"] == world.a.manager
    assert f'id="alarm-{alarm}"' not in manager_a.get("/alarms").text  # only unresolved
    resolved = manager_a.get("/alarms", params={"state": "resolved", "lang": "en"}).text
    assert f"Resolved by {world.a.manager} at 2026-01-01 08:12" in resolved
    actions = [e["action"] for e in world.ok("GET", "/api/v1/audit")]
    assert "alarm.ack" in actions and "alarm.resolve" in actions


def test_acknowledging_twice_is_a_conflict_and_changes_nothing(manager_a, world, seeded):
    alarm = seeded["alarm_id"]
    assert manager_a.post(f"/alarms/{alarm}/ack").status_code == 303
    before = world.ok("GET", f"/api/v1/alarms/{alarm}")
    r = manager_a.post(f"/alarms/{alarm}/ack", data={"note": "again"})
    assert r.status_code == 409 and "无法执行" in r.text
    assert world.ok("GET", f"/api/v1/alarms/{alarm}") == before


def test_filters_by_state_and_severity(manager_a, world, seeded):
    a = world.a
    world.ingest(a, [(T0, meter_reading(a.gas, 7, T0, 106.6, events=[("battery.low", T0)]))])
    page = manager_a.get("/alarms", params={"severity": "minor"}).text
    assert "电池电量低" in page and "燃气泄漏" not in page
    page = manager_a.get("/alarms", params={"severity": "critical"}).text
    assert "燃气泄漏" in page and "电池电量低" not in page
    assert manager_a.get("/alarms", params={"state": "bogus"}).status_code == 422


def test_after_acting_on_an_alarm_the_form_returns_to_a_local_page_only(manager_a, seeded):
    alarm = seeded["alarm_id"]
    r = manager_a.post(f"/alarms/{alarm}/ack", data={"next": "https://evil.example/"})
    assert r.headers["location"] == "/"


def test_escalated_alarms_are_marked(manager_a, world, seeded, app, clock):
    from kapok.cloud.checks import run_checks

    run_checks(app, clock.advance(16 * 60))
    page = manager_a.get("/alarms").text
    assert re.search(r'class="badge hot" title="未及时确认，已升级">↑1<', page)
