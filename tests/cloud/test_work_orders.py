"""Work orders: from an alarm or by hand, assigned to a technician of the
community, open → assigned → in_progress → done / cancelled; done resolves
the alarm (or keeps it open with a reason); notes and photos; a technician
sees only its own orders; every step audited."""

import pytest

from .helpers import meter_reading

T0 = 1767225600
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)


@pytest.fixture
def leak(world):
    a = world.a
    world.ingest(a, [(T0, meter_reading(a.gas, 1, T0, 1.0, events=[("gas.leak", T0, 23.5)]))])
    return world.ok("GET", "/api/v1/alarms", params={"community": a.community})[0]


@pytest.fixture
def tech(world):
    return world.technician(world.a, "tech-a")


def order_from(world, alarm, headers=None, **extra):
    return world.ok(
        "POST",
        "/api/v1/work-orders",
        201,
        json={"alarm": alarm["id"], **extra},
        headers=headers or world.a.manager_headers,
    )


def test_an_alarm_becomes_an_order_a_technician_closes_and_the_alarm_resolves(world, leak, tech):
    tech_id, tech_headers = tech
    order = order_from(world, leak, assignee=tech_id, due_at=T0 + 3600)
    assert order["state"] == "assigned" and order["assignee_name"] == "tech-a"
    assert order["device"] == world.a.gas and order["unit"] == world.a.unit
    assert order["place"] == {"community": "Community A", "building": "1栋", "unit": "101"}
    assert order["alarm_code"] == "gas.leak" and order["alarm_severity"] == "critical"
    # dispatching someone acknowledges the alarm: its escalation stops
    alarm = world.ok("GET", f"/api/v1/alarms/{leak['id']}")
    assert alarm["state"] == "acknowledged" and f"work order #{order['id']}" in alarm["note"]

    mine = world.ok("GET", "/api/v1/work-orders", headers=tech_headers)
    assert [o["id"] for o in mine] == [order["id"]]
    url = f"/api/v1/work-orders/{order['id']}"
    world.ok("POST", f"{url}/start", headers=tech_headers)
    world.ok("POST", f"{url}/notes", 201, json={"text": "valve replaced"}, headers=tech_headers)
    done = world.ok("POST", f"{url}/done", json={"note": "no more gas"}, headers=tech_headers)
    assert done["state"] == "done" and done["closed_at"] is not None
    assert [e["kind"] for e in done["events"]] == [
        "open",
        "assigned",
        "in_progress",
        "note",
        "done",
    ]
    alarm = world.ok("GET", f"/api/v1/alarms/{leak['id']}")
    assert alarm["state"] == "resolved" and alarm["resolved_by"] == "tech-a"
    assert "no more gas" in alarm["note"]

    audit = world.ok("GET", "/api/v1/audit", params={"community": world.a.community})
    actions = [e["action"] for e in audit if e["target"] == f"work_order:{order['id']}"]
    assert sorted(actions) == sorted(
        [
            "work_order.create",
            "work_order.assign",
            "work_order.start",
            "work_order.note",
            "work_order.done",
        ]
    )


def test_done_can_keep_the_alarm_open_with_a_reason(world, leak, tech):
    order = order_from(world, leak, assignee=tech[0])
    url = f"/api/v1/work-orders/{order['id']}/done"
    r = world.client.post(url, json={"resolve_alarm": False}, headers=tech[1])
    assert r.status_code == 422  # a reason is needed
    done = world.ok(
        "POST", url, json={"resolve_alarm": False, "reason": "part on order"}, headers=tech[1]
    )
    assert done["state"] == "done" and done["outcome"] == "part on order"
    assert world.ok("GET", f"/api/v1/alarms/{leak['id']}")["state"] == "acknowledged"


def test_one_unfinished_order_per_alarm_and_none_for_a_resolved_one(world, leak):
    order = order_from(world, leak)
    r = world.client.post(
        "/api/v1/work-orders", json={"alarm": leak["id"]}, headers=world.a.manager_headers
    )
    assert r.status_code == 409
    world.ok("POST", f"/api/v1/work-orders/{order['id']}/cancel", json={"reason": "dup"})
    order_from(world, leak)  # a cancelled one no longer counts
    world.ok("POST", f"/api/v1/alarms/{leak['id']}/resolve")
    r = world.client.post(
        "/api/v1/work-orders", json={"alarm": leak["id"]}, headers=world.admin_headers
    )
    assert r.status_code == 409


def test_states_move_only_forward(world, tech):
    order = world.ok(
        "POST",
        "/api/v1/work-orders",
        201,
        json={"unit": world.a.unit, "title": "door closer broken"},
        headers=world.a.manager_headers,
    )
    assert order["state"] == "open" and order["alarm"] is None
    url = f"/api/v1/work-orders/{order['id']}"
    assert world.client.post(f"{url}/start", headers=world.admin_headers).status_code == 409
    world.ok("POST", f"{url}/assign", json={"assignee": tech[0]})
    world.ok("POST", f"{url}/start", headers=tech[1])
    world.ok("POST", f"{url}/done", json={}, headers=tech[1])
    for action, body in (("start", None), ("done", {}), ("cancel", {"reason": "x"})):
        r = world.client.post(f"{url}/{action}", json=body, headers=world.admin_headers)
        assert r.status_code == 409, action
    r = world.client.patch(url, json={"title": "new"}, headers=world.admin_headers)
    assert r.status_code == 409


def test_orders_go_only_to_technicians_of_the_community(world, leak, tech):
    order = order_from(world, leak)
    url = f"/api/v1/work-orders/{order['id']}/assign"
    other_id, _ = world.technician(world.b, "tech-b")
    users = {u["username"]: u["id"] for u in world.ok("GET", "/api/v1/users")}
    # another community's technician, the admin, the community's own manager, nobody
    for who in (other_id, users["admin"], users["manager-a"], 999):
        r = world.client.post(url, json={"assignee": who}, headers=world.a.manager_headers)
        assert r.status_code == 404, who
    listed = world.ok(
        "GET",
        f"/api/v1/communities/{world.a.community}/technicians",
        headers=world.a.manager_headers,
    )
    assert listed == [{"id": tech[0], "username": "tech-a", "open_orders": 0}]


def test_a_technician_sees_only_its_own_orders_and_nothing_else(world, leak, tech):
    tech_id, headers = tech
    other_id, other_headers = world.technician(world.a, "tech-a2")
    mine = order_from(world, leak, assignee=tech_id)
    theirs = world.ok(
        "POST",
        "/api/v1/work-orders",
        201,
        json={"community": world.a.community, "title": "check the gateway", "assignee": other_id},
    )
    c = world.client
    assert [o["id"] for o in c.get("/api/v1/work-orders", headers=headers).json()] == [mine["id"]]
    assert c.get(f"/api/v1/work-orders/{theirs['id']}", headers=headers).status_code == 404
    r = c.post(f"/api/v1/work-orders/{theirs['id']}/start", headers=headers)
    assert r.status_code == 404
    # nothing of the community itself: no alarms, devices, readings or people
    assert c.get("/api/v1/alarms", headers=headers).json() == []
    assert c.get("/api/v1/devices", headers=headers).json() == []
    assert c.get(f"/api/v1/alarms/{leak['id']}", headers=headers).status_code == 404
    assert c.get(f"/api/v1/devices/{world.a.gas}", headers=headers).status_code == 404
    # and it cannot dispatch, reassign or cancel
    for method, url, body in (
        ("POST", "/api/v1/work-orders", {"alarm": leak["id"]}),
        ("POST", f"/api/v1/work-orders/{mine['id']}/assign", {"assignee": tech_id}),
        ("POST", f"/api/v1/work-orders/{mine['id']}/cancel", {"reason": "no"}),
        ("PATCH", f"/api/v1/work-orders/{mine['id']}", {"title": "x"}),
        ("POST", f"/api/v1/devices/{world.a.gas}/commands", {"op": "valve.close"}),
    ):
        assert c.request(method, url, json=body, headers=headers).status_code in (403, 404), url
    # reassigned away, the order is no longer its own
    world.ok("POST", f"/api/v1/work-orders/{mine['id']}/assign", json={"assignee": other_id})
    assert c.get(f"/api/v1/work-orders/{mine['id']}", headers=headers).status_code == 404
    assert len(c.get("/api/v1/work-orders", headers=other_headers).json()) == 2


def test_another_community_s_manager_sees_no_order(world, leak, tech):
    order = order_from(world, leak, assignee=tech[0])
    b = world.b.manager_headers
    c = world.client
    assert c.get("/api/v1/work-orders", headers=b).json() == []
    for method, suffix in (
        ("GET", ""),
        ("POST", "/start"),
        ("POST", "/notes"),
        ("GET", "/photos/1"),
    ):
        r = c.request(
            method, f"/api/v1/work-orders/{order['id']}{suffix}", json={"text": "x"}, headers=b
        )
        assert r.status_code == 404, suffix
    r = c.post("/api/v1/work-orders", json={"unit": world.a.unit, "title": "x"}, headers=b)
    assert r.status_code == 404
    r = c.post(
        "/api/v1/work-orders", json={"community": world.a.community, "title": "x"}, headers=b
    )
    assert r.status_code == 404
    r = c.post(
        "/api/v1/work-orders",
        json={"unit": world.b.unit, "community": world.a.community, "title": "x"},
        headers=b,
    )
    assert r.status_code == 404


def test_photos_are_checked_by_their_bytes_and_size(world, leak, tech, settings):
    order = order_from(world, leak, assignee=tech[0])
    url = f"/api/v1/work-orders/{order['id']}/photos"
    c = world.client

    def upload(data, ctype, name="p.jpg"):
        return c.post(
            url, files={"file": (name, data, ctype)}, data={"caption": "meter"}, headers=tech[1]
        )

    r = upload(JPEG, "image/jpeg")
    assert r.status_code == 201, r.text
    event = r.json()
    assert event["kind"] == "photo" and event["photo_type"] == "image/jpeg"
    assert event["photo_size"] == len(JPEG) and event["text"] == "meter"
    got = c.get(event["photo"], headers=tech[1])
    assert got.content == JPEG and got.headers["content-type"] == "image/jpeg"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert upload(PNG, "image/png", "p.png").status_code == 201
    assert upload(b"<svg onload=alert(1)>", "image/svg+xml").status_code == 415
    assert upload(b"<html>", "image/jpeg").status_code == 415
    assert upload(PNG, "image/jpeg").status_code == 415  # says one thing, is another
    assert upload(b"", "image/jpeg").status_code == 422
    big = JPEG + bytes(settings.max_photo_bytes)
    assert upload(big, "image/jpeg").status_code == 413
    photos = [
        e
        for e in world.ok("GET", f"/api/v1/work-orders/{order['id']}")["events"]
        if e["kind"] == "photo"
    ]
    assert len(photos) == 2  # the refused ones left nothing


def test_listing_filters_and_overdue(world, clock, tech):
    def make(title, due):
        return world.ok(
            "POST",
            "/api/v1/work-orders",
            201,
            json={"community": world.a.community, "title": title, "due_at": due},
        )

    late = make("late", clock() - 60)
    later = make("later", clock() + 3600)
    undated = make("undated", None)
    world.ok("POST", f"/api/v1/work-orders/{undated['id']}/cancel", json={"reason": "no need"})
    active = world.ok("GET", "/api/v1/work-orders", params={"state": "active"})
    assert [o["title"] for o in active] == ["late", "later"]
    assert [o["overdue"] for o in active] == [True, False]
    cancelled = world.ok("GET", "/api/v1/work-orders", params={"state": "cancelled"})
    assert [o["outcome"] for o in cancelled] == ["no need"]
    assert {o["id"] for o in world.ok("GET", "/api/v1/work-orders")} == {
        late["id"],
        later["id"],
        undated["id"],
    }
