"""A manager of one community sees nothing of another: every route of the
OpenAPI document, called with the other community's ids, answers 404 (or
403 where the route is for admins only), and changes nothing."""

import re

import pytest

from kapok.protocols import senml

from .helpers import CBOR, batch, meter_reading, uplink

T0 = 1767225600

# Routes for admins only: a manager gets 403 whatever the ids.
ADMIN_ONLY = {
    ("POST", "/api/v1/communities"),
    ("PATCH", "/api/v1/communities/{id}"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/{id}"),
    ("PATCH", "/api/v1/users/{id}"),
    ("DELETE", "/api/v1/users/{id}"),
    ("POST", "/api/v1/firmware/releases"),
    ("POST", "/api/v1/firmware/releases/form"),
    ("GET", "/api/v1/firmware/releases/{id}/bundle"),
    ("POST", "/api/v1/firmware/rollouts"),
    ("POST", "/api/v1/firmware/rollouts/{id}/halt"),
    ("POST", "/api/v1/firmware/rollouts/{id}/resume"),
    ("POST", "/api/v1/keys/{name}/rotate"),
}
# Not community data: the same for every user (firmware releases are global).
SHARED = {("GET", "/api/v1/firmware/releases/{id}")}
# Bearer: a gateway token (tested in test_gateway_api.py with another community's gateway).
GATEWAY_PREFIXES = ("/api/v1/gateway/", "/api/v1/ingest")
# X-API-Key: an outside system's key (tested in test_platform.py with another community's key).
API_KEY_PREFIXES = ("/api/v1/platform/",)
NOT_USER_ROUTES = GATEWAY_PREFIXES + API_KEY_PREFIXES


@pytest.fixture
def targets(world, client):
    """Ids of community A's objects, one of each kind."""
    a = world.a
    world.ingest(
        a,
        [(T0, meter_reading(a.gas, 1, T0, 1.0, events=[("gas.leak", T0, 23.5)]))],
    )
    alarm = world.ok("GET", "/api/v1/alarms", params={"community": a.community})[0]["id"]
    command = world.ok(
        "POST", f"/api/v1/devices/{a.gas}/commands", 201, json={"op": "valve.close"}
    )["id"]
    release = world.ok(
        "POST",
        "/api/v1/firmware/releases",
        201,
        params={"version": "1.0.0", "board": "esp32", "app": "meter"},
        content=b"bundle bytes",
        headers={**world.admin_headers, "Content-Type": "application/octet-stream"},
    )["id"]
    rollout = world.ok(
        "POST",
        "/api/v1/firmware/rollouts",
        201,
        json={"release": release, "communities": [a.community]},
    )["id"]
    api_key = world.ok(
        "POST", "/api/v1/api-keys", 201, json={"name": "city", "communities": [a.community]}
    )["id"]
    world.ok(
        "PUT", f"/api/v1/communities/{a.community}/rules", json={"battery_low_v": 3.2}
    )  # rules version 1
    channel = world.ok(
        "POST",
        "/api/v1/channels",
        201,
        json={"community": a.community, "kind": "email", "target": "duty@a.example"},
    )["id"]
    shift = world.ok(
        "POST",
        "/api/v1/duty-shifts",
        201,
        json={
            "community": a.community,
            "channel": channel,
            "weekdays": [0, 1],
            "start": "08:00",
            "end": "20:00",
        },
    )["id"]
    notification = world.ok("POST", f"/api/v1/channels/{channel}/test", 202)["id"]
    order = world.ok("POST", "/api/v1/work-orders", 201, json={"alarm": alarm})["id"]
    photo = world.ok(
        "POST",
        f"/api/v1/work-orders/{order}/photos",
        201,
        files={"file": ("p.png", b"\x89PNG\r\n\x1a\n" + bytes(8), "image/png")},
    )["id"]
    return {
        "work-orders": order,
        "photos": photo,
        "channels": channel,
        "duty-shifts": shift,
        "notifications": notification,
        "api-keys": api_key,
        "communities": a.community,
        "buildings": a.building,
        "units": a.unit,
        "gateways": a.gateway,
        "devices": a.gas,
        "alarms": alarm,
        "commands": command,
        "rollouts": rollout,
        "releases": release,
        "users": 1,
        "keys": "cloud",
        "seq": 1,
        "versions": 1,
    }


def fill(path: str, ids: dict) -> str:
    """Put the right id into each {param} of an OpenAPI path."""

    def value(match):
        name = match.group(1)
        if name == "seq":
            return str(ids["seq"])
        before = path[: match.start()].rstrip("/").split("/")[-1]
        return str(ids[before])

    return re.sub(r"\{(\w+)\}", value, path)


def operations(app):
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def test_every_route_with_an_id_answers_404_for_another_community(app, world, client, targets):
    headers = world.b.manager_headers
    walked = 0
    for method, path, op in operations(app):
        if path.startswith(NOT_USER_ROUTES) or (method, path) in SHARED:
            continue
        has_path_id = "{" in path
        has_community = any(p["name"] == "community" for p in op.get("parameters", []))
        if not (has_path_id or has_community):
            continue
        url = fill(path, targets)
        params = {"community": targets["communities"], "month": "2026-01"} if has_community else {}
        kwargs = {"json": {}} if "requestBody" in op else {}
        r = client.request(method, url, params=params, headers=headers, **kwargs)
        expected = 403 if (method, path) in ADMIN_ONLY else 404
        assert r.status_code == expected, f"{method} {url}: {r.status_code} {r.text}"
        walked += 1
    assert walked >= 35  # the walk really covered the API


def test_the_same_routes_work_for_the_community_s_own_manager(app, world, client, targets):
    """The 404s above are about scope, not broken routes."""
    headers = world.a.manager_headers
    for method, path, op in operations(app):
        if method != "GET" or path.startswith(NOT_USER_ROUTES) or (method, path) in ADMIN_ONLY:
            continue
        if "{" not in path and not any(p["name"] == "community" for p in op.get("parameters", [])):
            continue
        params = {"community": targets["communities"], "month": "2026-01"}
        r = client.get(fill(path, targets), params=params, headers=headers)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"


def test_listings_show_only_the_manager_s_communities(world, client):
    a, b = world.a, world.b
    world.ingest(a, [(T0, meter_reading(a.gas, 1, T0, 1.0, events=[("smoke", T0)]))])
    world.ingest(b, [(T0, meter_reading(b.gas, 1, T0, 1.0, events=[("smoke", T0)]))])
    headers = b.manager_headers
    for url, key, own in (
        ("/api/v1/communities", "id", {b.community}),
        ("/api/v1/buildings", "community_id", {b.community}),
        ("/api/v1/gateways", "community_id", {b.community}),
        ("/api/v1/devices", "community", {b.community}),
        ("/api/v1/alarms", "community", {b.community}),
    ):
        r = client.get(url, headers=headers)
        assert r.status_code == 200
        assert {x[key] for x in r.json()} == own, url
    units = client.get("/api/v1/units", headers=headers).json()
    assert [u["id"] for u in units] == [b.unit]
    audit = client.get("/api/v1/audit", headers=headers).json()
    assert audit and {e["community"] for e in audit} == {b.community}


def test_bodies_naming_another_community_s_objects_get_404_and_change_nothing(world, client):
    a, b = world.a, world.b
    headers = b.manager_headers
    cases = [
        ("POST", "/api/v1/buildings", {"community": a.community, "name": "x"}),
        ("POST", "/api/v1/units", {"building": a.building, "name": "x"}),
        ("POST", "/api/v1/gateways", {"community": a.community, "name": "x"}),
        (
            "POST",
            "/api/v1/devices",
            {"id": "gm-x", "kind": "gas-meter", "gateway": a.gateway, "public_key": "00" * 32},
        ),
        (
            "POST",
            "/api/v1/devices",
            {
                "id": "gm-x",
                "kind": "gas-meter",
                "gateway": b.gateway,
                "unit": a.unit,
                "public_key": "00" * 32,
            },
        ),
        ("PATCH", f"/api/v1/devices/{b.gas}", {"unit": a.unit}),
        ("PATCH", f"/api/v1/devices/{b.gas}", {"gateway": a.gateway}),
        (
            "POST",
            "/api/v1/channels",
            {"community": a.community, "kind": "sms", "target": "13800138000"},
        ),
    ]
    for method, url, body in cases:
        r = client.request(method, url, json=body, headers=headers)
        assert r.status_code == 404, f"{method} {url} {body}: {r.status_code} {r.text}"
    for url, params in (
        ("/api/v1/devices", {"unit": a.unit}),
        ("/api/v1/devices", {"gateway": a.gateway}),
        ("/api/v1/units", {"building": a.building}),
        ("/api/v1/alarms", {"device": a.gas}),
        ("/api/v1/billing", {"community": b.community, "month": "2026-01", "building": a.building}),
    ):
        assert client.get(url, params=params, headers=headers).status_code == 404, url
    assert world.ok("GET", f"/api/v1/devices/{b.gas}")["unit"] == b.unit
    assert client.get("/api/v1/devices/gm-x", headers=world.admin_headers).status_code == 404


def test_a_gateway_sees_nothing_of_another_community(world, client):
    a, b = world.a, world.b
    command = world.ok("POST", f"/api/v1/devices/{a.gas}/commands", 201, json={"op": "valve.close"})
    headers = b.gateway_headers
    r = client.post(
        f"/api/v1/gateway/commands/{command['id']}/status", json={"state": "sent"}, headers=headers
    )
    assert r.status_code == 404
    assert world.ok("GET", f"/api/v1/commands/{command['id']}")["state"] == "queued"
    assert client.get("/api/v1/gateway/commands", headers=headers).json() == []
    registry = client.get("/api/v1/gateway/registry", headers=headers).json()
    assert {d["id"] for d in registry["devices"]} == {b.gas, b.water, b.hub}
    r = client.post(
        "/api/v1/gateway/local-commands",
        json={"device": a.gas, "op": "valve.close", "cmd_id": 1, "at": T0, "cose": "00"},
        headers=headers,
    )
    assert r.status_code == 404
    # and it cannot ingest for them (test_ingest.py) nor fetch their firmware (test_firmware.py)
    _, body = batch([(T0, uplink(a.gas, 1, T0, compact=senml.compact(1, [1.0, 3.3, -100])))])
    reply = client.post("/api/v1/ingest", content=body, headers={**headers, **CBOR})
    assert reply.status_code == 200 and b"unknown device" in reply.content


def test_a_technician_reaches_nothing_of_its_community_but_its_own_orders(
    app, world, client, targets
):
    """A technician of community A, with A's ids, on every user route: 403
    or 404 (the order in `targets` is not given to it); listings are empty."""
    _, headers = world.technician(world.a, "tech-a")
    walked = 0
    for method, path, op in operations(app):
        if path.startswith(NOT_USER_ROUTES) or (method, path) in SHARED:
            continue
        if path.startswith(("/api/v1/auth/", "/api/v1/users/me", "/api/v1/health")):
            continue
        url = fill(path, targets)
        has_community = any(p["name"] == "community" for p in op.get("parameters", []))
        params = {"community": targets["communities"], "month": "2026-01"} if has_community else {}
        kwargs = {"json": {}} if "requestBody" in op else {}
        r = client.request(method, url, params=params, headers=headers, **kwargs)
        if "{" in path or method != "GET":
            assert r.status_code in (403, 404, 422), f"{method} {url}: {r.status_code} {r.text}"
        else:
            assert r.status_code in (200, 403, 404), f"{method} {url}: {r.status_code}"
            if r.status_code == 200 and r.headers["content-type"].startswith("application/json"):
                # public keys and firmware releases are the same for everyone
                shared = path in ("/api/v1/firmware/releases", "/api/v1/keys")
                assert r.json() in ([], {}) or shared, url
        walked += 1
    assert walked >= 60
