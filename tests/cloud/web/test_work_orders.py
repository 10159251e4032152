"""Work orders in the dashboard: a manager makes one from an alarm and
assigns it; the technician, who sees nothing else, starts it, adds a note
and a photo and finishes it; the alarm resolves. Forms go through the API's
own route functions (same checks, same audit)."""

from .conftest import PNG
from .helpers import WebClient


def technician_web(app, username: str) -> WebClient:
    from ..helpers import MANAGER_PASSWORD

    web = WebClient(app)
    r = web.login(username, MANAGER_PASSWORD)
    assert r.status_code == 303
    return web


def test_a_manager_dispatches_an_alarm_and_the_technician_closes_it(app, world, seeded, manager_a):
    alarm = seeded["alarm_id"]
    assert f'href="/work-orders/new?alarm={alarm}"' in manager_a.get("/alarms").text
    form = manager_a.get("/work-orders/new", params={"alarm": alarm}).text
    assert "创建工单即确认该告警" in form and "tech-a" in form
    r = manager_a.post(
        "/work-orders",
        data={"alarm": alarm, "assignee": seeded["technician_id"], "due": "2026-01-01T12:00"},
    )
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    order_id = int(url.rsplit("/", 1)[1])
    page = manager_a.get(url).text
    assert "已派单" in page and "燃气泄漏" in page and "2026-01-01 12:00" in page
    assert world.ok("GET", f"/api/v1/alarms/{alarm}")["state"] == "acknowledged"

    tech = technician_web(app, "tech-a")
    home = tech.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/work-orders"
    mine = tech.get("/work-orders").text
    assert "我的工单" in mine and f'id="wo-{order_id}"' in mine
    assert 'href="/billing"' not in mine and 'href="/alarms"' not in mine  # its nav is its orders
    assert tech.post(f"{url}/start").status_code == 303
    assert tech.post(f"{url}/notes", {"text": "关闭表前阀，更换接头"}).status_code == 303
    r = tech.http.post(
        f"{url}/photos",
        data={"csrf": tech.csrf, "caption": "接头"},
        files={"file": ("a.png", PNG, "image/png")},
    )
    assert r.status_code == 303, r.text
    page = tech.get(url).text
    assert "关闭表前阀，更换接头" in page and "处理中" in page
    photo = next(
        e
        for e in world.ok("GET", f"/api/v1/work-orders/{order_id}")["events"]
        if e["kind"] == "photo"
    )
    got = tech.get(f"{url}/photos/{photo['id']}")
    assert got.status_code == 200 and got.content == PNG
    assert tech.post(f"{url}/done", {"note": "已无泄漏"}).status_code == 303
    alarm_now = world.ok("GET", f"/api/v1/alarms/{alarm}")
    assert alarm_now["state"] == "resolved" and alarm_now["resolved_by"] == "tech-a"
    english = tech.get(url, params={"lang": "en"}).text
    assert "Done" in english and "Work started" in english and "Photo" in english


def test_a_technician_sees_nothing_but_its_orders(app, world, seeded):
    tech = technician_web(app, "tech-a")
    order = seeded["order_id"]
    assert tech.get(f"/work-orders/{order}").status_code == 200
    for url in (
        f"/devices/{seeded['device_id']}",
        f"/communities/{seeded['community_id']}",
        f"/units/{seeded['unit_id']}",
    ):
        assert tech.get(url).status_code == 404, url
    assert f"alarm-{seeded['alarm_id']}" not in tech.get("/alarms").text
    assert tech.get("/work-orders/new").status_code == 403
    r = tech.post(f"/work-orders/{order}/cancel", {"reason": "不想做"})
    assert r.status_code == 403
    assert world.ok("GET", f"/api/v1/work-orders/{order}")["state"] == "assigned"


def test_bad_forms_come_back_with_the_reason_and_change_nothing(app, world, seeded, manager_a):
    order = seeded["order_id"]
    url = f"/work-orders/{order}"
    before = world.ok("GET", f"/api/v1{url}")
    r = manager_a.post(f"{url}/cancel", {"reason": " "})
    assert r.status_code == 422 and "请填写原因" in r.text
    r = manager_a.http.post(
        f"{url}/photos",
        data={"csrf": manager_a.csrf},
        files={"file": ("x.png", b"<script>alert(1)</script>", "image/png")},
    )
    assert r.status_code == 415
    r = manager_a.post(
        "/work-orders", {"community": seeded["community_id"], "due": "tomorrow", "title": "x"}
    )
    assert r.status_code == 422 and "不是有效的日期时间" in r.text
    assert world.ok("GET", f"/api/v1{url}") == before
    other = world.technician(world.b, "tech-b")[0]
    r = manager_a.post(f"{url}/assign", {"assignee": other})
    assert r.status_code == 404
    assert world.ok("GET", f"/api/v1{url}") == before
