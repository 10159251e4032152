"""Device pages: the reading chart's data and history, completeness and
gaps; valve control that sends a signed command only after confirmation,
and the command's way to done and confirmed by a reading."""

import json
import re

from kapok.cloud.web import vendor
from kapok.protocols import cose, messages, senml

from ..helpers import uplink
from .helpers import T0, csrf_of


def chart_data(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html, re.S)
    assert found, "no chart data on the page"
    return json.loads(found.group(1))


def test_the_device_page_draws_the_readings_and_lists_their_history(admin_web, seeded, world):
    html = admin_web.get(f"/devices/{world.a.gas}").text
    data = chart_data(html)
    assert data["name"] == "累计用量" and data["unit"] == "m³" and data["tz"] == "Asia/Shanghai"
    assert data["v"] == [101.0, 102.0, 103.0, 105.0, 106.5]
    assert data["t"] == sorted(data["t"]) and data["t"][-1] == T0 - 60
    assert '<div id="chart"' in html and "/vendor/uplot/uPlot.iife.min.js" in html
    # history: newest first, with unit, seq and where the time came from
    rows = re.findall(
        r"<tr><td>([^<]+)</td><td class=\"num\">([^<]+)</td><td class=\"num\">(\d+)</td>", html
    )
    assert rows[0] == ("2026-01-01 07:59:00", "106.500 m³", "6")
    assert rows[-1][2] == "1"
    # health: battery and signal from the newest reading, valve state, gap of seq 4
    assert "3.30 V" in html and "-100 dBW" in html
    assert 'class="valve-state">开启' in html
    assert re.search(r'<td class="num">4</td><td>丢失</td>', html)
    # completeness over the last day: 5 received, 1 missing
    assert "83.3%" in html


def test_other_readings_and_windows_can_be_chosen(admin_web, seeded, world):
    html = admin_web.get(f"/devices/{world.a.gas}", params={"n": "bat", "days": 1}).text
    assert chart_data(html)["v"] == [3.6] * 4 + [3.3]
    valve = admin_web.get(f"/devices/{world.a.gas}", params={"n": "valve"}).text
    assert 'id="chart-data"' not in valve  # a yes/no reading: table only
    assert valve.count(">开启</td>") == 4


def test_without_the_chart_library_the_page_says_so_and_keeps_the_table(
    admin_web, seeded, world, monkeypatch
):
    monkeypatch.setattr(vendor, "uplot_dir", lambda: None)
    html = admin_web.get(f"/devices/{world.a.gas}").text
    assert 'id="chart-missing"' in html and "npm ci" in html
    assert "uPlot.iife" not in html
    assert "106.500 m³" in html


def test_the_chart_library_is_served_by_kapok_itself(admin_web):
    r = admin_web.get("/vendor/uplot/uPlot.iife.min.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert "uPlot" in r.text[:5000]
    assert (
        admin_web.get("/vendor/uplot/uPlot.min.css").headers["content-type"].startswith("text/css")
    )
    assert admin_web.get("/vendor/uplot/package.json").status_code == 404
    assert admin_web.get("/static/kapok.js").status_code == 200


def _commands(world, device):
    return world.ok("GET", f"/api/v1/devices/{device}/commands")


def test_closing_a_valve_needs_a_confirmation_then_sends_a_signed_command(
    manager_a, world, client, seeded
):
    a = world.a
    before = _commands(world, a.gas)
    page = manager_a.get(f"/devices/{a.gas}").text
    assert "关阀" in page
    # the first post only asks
    ask = manager_a.post(f"/devices/{a.gas}/valve", data={"op": "valve.close"})
    assert ask.status_code == 200
    assert "确认关阀" in ask.text and 'name="confirm" value="yes"' in ask.text
    assert _commands(world, a.gas) == before
    # a forged confirmation without the token does nothing either
    forged = manager_a.post(
        f"/devices/{a.gas}/valve", data={"op": "valve.close", "confirm": "yes"}, csrf=False
    )
    assert forged.status_code == 403 and _commands(world, a.gas) == before
    # confirmed: one command, signed with the cloud key, for this device
    confirm = {"op": "valve.close", "confirm": "yes", "csrf": csrf_of(ask.text)}
    done = manager_a.post(f"/devices/{a.gas}/valve", data=confirm)
    assert done.status_code == 303
    command_id = int(done.headers["location"].rsplit("/", 1)[1])
    (new,) = [c for c in _commands(world, a.gas) if c not in before]
    assert new["id"] == command_id and new["created_by"] == a.manager and new["state"] == "queued"
    raw = bytes.fromhex(new["cose"])
    assert cose.kid(raw) == b"cloud"
    keys = world.ok("GET", "/api/v1/keys")
    cloud_key = next(k for k in keys if k["name"] == "cloud" and k["retired_at"] is None)
    payload = messages.parse_command(cose.verify1(raw, bytes.fromhex(cloud_key["public_key"])))
    assert payload["device_id"] == a.gas and payload["op"] == "valve.close"
    assert payload["cmd_id"] == new["cmd_id"] and payload["not_after"] > T0
    audit = world.ok("GET", "/api/v1/audit", params={"action": "command.create"})
    assert audit[0]["actor"] == f"user:{a.manager}" and audit[0]["detail"]["op"] == "valve.close"

    # the command page follows it: queued → sent → delivered → done → confirmed
    page = manager_a.get(f"/commands/{command_id}").text
    assert "排队中" in page and 'http-equiv="refresh"' in page
    status = lambda state, at: client.post(  # noqa: E731
        f"/api/v1/gateway/commands/{command_id}/status",
        json={"state": state, "at": at},
        headers=a.gateway_headers,
    )
    assert status("sent", T0 + 5).status_code == 204
    assert status("delivered", T0 + 10).status_code == 204
    page = manager_a.get(f"/commands/{command_id}").text
    assert re.search(r'class="state state-delivered">已送达设备', page)
    # the node runs it and says so in its next signed uplink, with the valve shut
    reading = senml.compact(3, [106.6, False, 3.6, -90])
    world.ingest(
        a,
        [(T0 + 20, uplink(a.gas, 7, T0 + 20, compact=reading, results=[(new["cmd_id"], 0, None)]))],
    )
    page = manager_a.get(f"/commands/{command_id}").text
    assert "已执行" in page and "读数已确认" in page
    assert 'http-equiv="refresh"' not in page  # nothing left to wait for
    device = manager_a.get(f"/devices/{a.gas}").text
    assert 'class="valve-state">关闭' in device


def test_opening_a_gas_valve_warns_about_the_button_on_the_meter(manager_a, world, seeded):
    ask = manager_a.post(f"/devices/{world.a.gas}/valve", data={"op": "valve.open"})
    assert "确认开阀" in ask.text and "按键确认" in ask.text


def test_only_valve_ops_are_accepted(manager_a, world, seeded):
    before = _commands(world, world.a.gas)
    r = manager_a.post(f"/devices/{world.a.gas}/valve", data={"op": "reboot", "confirm": "yes"})
    assert r.status_code == 422 and "输入有误" in r.text
    assert _commands(world, world.a.gas) == before


def test_a_failed_command_says_why(manager_a, world, client, seeded):
    command = seeded["command_id"]
    r = client.post(
        f"/api/v1/gateway/commands/{command}/status",
        json={"state": "failed", "detail": "node asleep past expiry", "at": T0},
        headers=world.a.gateway_headers,
    )
    assert r.status_code == 204
    page = manager_a.get(f"/commands/{command}").text
    assert "失败" in page and "网关无法送达" in page and "node asleep past expiry" in page


def test_a_long_window_keeps_the_newest_readings(admin_web, seeded, world, monkeypatch):
    from kapok.cloud.web.pages import devices

    monkeypatch.setattr(devices, "CHART_POINTS", 3)
    monkeypatch.setattr(devices, "HISTORY_ROWS", 2)
    html = admin_web.get(f"/devices/{world.a.gas}").text
    assert chart_data(html)["v"] == [103.0, 105.0, 106.5]
    assert "最新 2 条" in html
