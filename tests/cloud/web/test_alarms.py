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
    r = manager_a.post(f"/alarms/{alarm}/resolve", data={"note": "阀门已关"})
    assert r.status_code == 422 and "现场核实" in r.text  # a gas leak: never in one click
    assert world.ok("GET", f"/api/v1/alarms/{alarm}")["state"] == "acknowledged"
    r = manager_a.post(f"/alarms/{alarm}/resolve", data={"note": "阀门已关", "confirm": "1"})
    assert r.status_code == 303
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

    # the leak's first step went out when it opened; 5 min on, the managers
    run_checks(app, clock.advance(6 * 60))
    page = manager_a.get("/alarms").text
    assert re.search(r'class="badge hot" title="未及时确认，已升级">↑1<', page)
    run_checks(app, clock.advance(10 * 60))  # and the emergency contacts
    assert "↑2<" in manager_a.get("/alarms").text


def test_an_alarm_says_what_happened_in_words_and_units(manager_a, world, seeded):
    page = manager_a.get("/alarms", params={"lang": "en"}).text
    assert "%LEL" in page and "{" not in page.split("<tbody>")[1].split("</tbody>")[0]


def test_alarm_details_are_sentences_in_each_language():
    from kapok.cloud.web.i18n import Translator

    en, zh = Translator("en", "Asia/Shanghai"), Translator("zh-CN", "Asia/Shanghai")
    silent = {"last_seen": 1767275100.0, "silent_seconds": 185}  # 21:45 in Shanghai
    assert en.alarm_detail("silent", silent) == "silent for 3 min, last seen 2026-01-01 21:45"
    assert zh.alarm_detail("silent", silent) == "已静默 3 分钟，最后上报 2026-01-01 21:45"
    long = {"last_seen": None, "silent_seconds": 90000}
    assert en.alarm_detail("silent", long) == ("not heard from in 1 d 1 h since it was registered")
    assert en.alarm_detail("quality.turb", 4.5) == "measured 4.5 NTU"
    assert zh.alarm_detail("gas.leak", 35) == "35 %LEL"
    assert en.alarm_detail("flow.continuous", 12.0) == "flowing for 12 h"
    assert en.alarm_detail("water.leak", True) == ""  # a flag says nothing more
    assert en.alarm_detail("smoke", {"from": "a newer node"}) == ""  # never raw data


def test_unknown_pages_and_form_addresses_are_error_pages_in_one_language(manager_a, client):
    r = manager_a.get("/no-such-page", params={"lang": "en"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "Not found" in r.text and "未找到" not in r.text
    r = manager_a.get("/alarms/1/resolve")  # a form's address, opened again as a page
    assert r.status_code == 405 and "Not a page" in r.text  # the language chosen stays
    assert "Method Not Allowed" not in r.text and "不是页面" not in r.text
    r = client.get("/api/v1/no-such-route")  # the API keeps its JSON
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
