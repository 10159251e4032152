"""Communities, buildings, units and device registration: what a property
manager sets up, and the clear errors for what does not fit."""

from .helpers import mac_key_of, public_of


def test_communities_buildings_and_units(world, client):
    c = world.ok("POST", "/api/v1/communities", 201, json={"name": "木棉花园"})
    assert set(c) == {"id"}
    community = world.ok("GET", f"/api/v1/communities/{c['id']}")
    assert (community["name"], community["timezone"]) == ("木棉花园", "Asia/Shanghai")
    r = client.post("/api/v1/communities", json={"name": "木棉花园"}, headers=world.admin_headers)
    assert r.status_code == 409
    r = client.post(
        "/api/v1/communities",
        json={"name": "x", "timezone": "Mars/Olympus"},
        headers=world.admin_headers,
    )
    assert r.status_code == 422 and "time zone" in r.json()["detail"]

    b = world.ok("POST", "/api/v1/buildings", 201, json={"community": c["id"], "name": "2栋"})
    assert (
        client.post(
            "/api/v1/buildings",
            json={"community": c["id"], "name": "2栋"},
            headers=world.admin_headers,
        ).status_code
        == 409
    )
    u = world.ok("POST", "/api/v1/units", 201, json={"building": b["id"], "name": "1203"})
    assert world.ok("GET", "/api/v1/units", params={"building": b["id"]}) == [u]
    renamed = world.ok("PATCH", f"/api/v1/units/{u['id']}", json={"name": "1204"})
    assert renamed["name"] == "1204"
    # a building with units cannot go; an empty one can
    assert (
        client.delete(f"/api/v1/buildings/{b['id']}", headers=world.admin_headers).status_code
        == 409
    )
    world.ok("DELETE", f"/api/v1/units/{u['id']}", 204)
    world.ok("DELETE", f"/api/v1/buildings/{b['id']}", 204)
    assert (
        client.get(f"/api/v1/buildings/{b['id']}", headers=world.admin_headers).status_code == 404
    )


def test_a_manager_sets_up_their_own_community_but_creates_no_communities(world, client):
    headers = world.a.manager_headers
    r = client.post("/api/v1/communities", json={"name": "mine"}, headers=headers)
    assert r.status_code == 403
    b = world.ok(
        "POST",
        "/api/v1/buildings",
        201,
        json={"community": world.a.community, "name": "9栋"},
        headers=headers,
    )
    u = world.ok(
        "POST", "/api/v1/units", 201, json={"building": b["id"], "name": "901"}, headers=headers
    )
    world.ok(
        "POST",
        "/api/v1/devices",
        201,
        json={
            "id": "wm-901",
            "kind": "water-meter",
            "gateway": world.a.gateway,
            "unit": u["id"],
            "public_key": public_of("wm-901").hex(),
        },
        headers=headers,
    )
    assert (
        world.ok("GET", "/api/v1/devices", params={"unit": u["id"]}, headers=headers)[0]["id"]
        == "wm-901"
    )


def test_device_registration_checks_what_it_is_given(world, client):
    a = world.a
    post = lambda body: client.post("/api/v1/devices", json=body, headers=world.admin_headers)  # noqa: E731
    good = {
        "id": "gm-new",
        "kind": "gas-meter",
        "gateway": a.gateway,
        "public_key": public_of("gm-new").hex(),
    }
    cases = [
        ({**good, "id": "GM_NEW"}, 422, "bad device id"),
        ({**good, "id": "a" * 17}, 422, "bad device id"),
        ({**good, "kind": "toaster"}, 422, None),
        ({**good, "public_key": "xyz"}, 422, None),
        ({**good, "public_key": "00" * 32}, 422, "not a valid Ed25519"),
        ({**good, "mac_key": mac_key_of("gm-new").hex()}, 422, "exactly one"),
        ({k: v for k, v in good.items() if k != "public_key"}, 422, "exactly one"),
        ({**good, "gateway": "gw-nope"}, 404, None),
        ({**good, "unit": 999}, 404, None),
        ({**good, "id": a.gas}, 409, "taken"),
    ]
    for body, status, words in cases:
        r = post(body)
        assert r.status_code == status, (body, r.text)
        if words:
            assert words in str(r.json()["detail"]), r.text
    assert client.get("/api/v1/devices/gm-new", headers=world.admin_headers).status_code == 404
    created = post({**good, "unit": a.unit, "interval": 3600, "board": "esp32"})
    assert created.status_code == 201
    d = created.json()
    assert (d["id"], d["community"], d["unit"], d["interval"], d["board"]) == (
        "gm-new",
        a.community,
        a.unit,
        3600,
        "esp32",
    )
    audit = world.ok("GET", "/api/v1/audit", params={"action": "device.create"})
    assert audit[0]["target"] == "device:gm-new"


def test_a_device_moves_and_is_re_keyed(world, client):
    a = world.a
    gw2 = world.ok(
        "POST", "/api/v1/gateways", 201, json={"name": "second", "community": a.community}
    )
    moved = world.ok("PATCH", f"/api/v1/devices/{a.gas}", json={"gateway": gw2["id"], "unit": None})
    assert (moved["gateway"], moved["unit"]) == (gw2["id"], None)
    # to another community only with a unit of that community (or none)
    r = client.patch(
        f"/api/v1/devices/{a.gas}",
        json={"gateway": world.b.gateway, "unit": a.unit},
        headers=world.admin_headers,
    )
    assert r.status_code == 422 and "different communities" in r.json()["detail"]
    rekeyed = world.ok(
        "PATCH", f"/api/v1/devices/{a.gas}", json={"mac_key": mac_key_of(a.gas).hex()}
    )
    assert rekeyed["public_key"] is None and rekeyed["has_mac_key"] is True
    r = client.patch(
        f"/api/v1/devices/{a.gas}", json={"removed_at": 0}, headers=world.admin_headers
    )
    assert r.status_code == 422 and "before installed_at" in r.json()["detail"]
