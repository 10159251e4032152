"""Administration pages: gateways (the token shown once, rotation,
revocation), device registration and keys, users and roles."""

import re

from ..helpers import MANAGER_PASSWORD, public_of
from .helpers import WebClient


def _token(html: str) -> str:
    return re.search(r'id="gateway-token" value="([^"]+)"', html).group(1)


def test_registering_a_gateway_shows_its_token_once(manager_a, world, client):
    a = world.a
    r = manager_a.post("/admin/gateways", data={"name": "东门机房", "community": a.community})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    token = _token(r.text)
    assert "只显示这一次" in r.text and f"--token {token}" in r.text
    registry = client.get("/api/v1/gateway/registry", headers={"Authorization": f"Bearer {token}"})
    assert registry.status_code == 200
    gateway = registry.json()["gateway"]
    assert gateway["name"] == "东门机房" and gateway["community"] == a.community
    listing = manager_a.get("/admin/gateways").text
    assert "东门机房" in listing and token not in listing

    # a new token replaces the old one at once
    r = manager_a.post(f"/admin/gateways/{gateway['id']}/token")
    assert r.status_code == 200
    new = _token(r.text)
    headers = lambda t: {"Authorization": f"Bearer {t}"}  # noqa: E731
    assert client.get("/api/v1/gateway/registry", headers=headers(token)).status_code == 401
    assert client.get("/api/v1/gateway/registry", headers=headers(new)).status_code == 200
    # revoked: the gateway is locked out
    assert manager_a.post(f"/admin/gateways/{gateway['id']}/revoke").status_code == 303
    assert client.get("/api/v1/gateway/registry", headers=headers(new)).status_code == 401
    assert "已吊销" in manager_a.get("/admin/gateways").text


def test_a_manager_cannot_register_a_gateway_in_another_community(manager_b, world):
    r = manager_b.post("/admin/gateways", data={"name": "x", "community": world.a.community})
    assert r.status_code == 404


def test_registering_a_device_with_its_public_key(manager_a, world):
    a = world.a
    key = public_of("gm-new1").hex()
    r = manager_a.post(
        "/admin/devices",
        data={
            "device_id": "gm-new1",
            "kind": "gas-meter",
            "gateway": a.gateway,
            "unit": a.unit,
            "key": key,
            "board": "esp32",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/devices/gm-new1"
    device = world.ok("GET", "/api/v1/devices/gm-new1")
    assert (device["public_key"], device["unit"], device["gateway"]) == (key, a.unit, a.gateway)
    page = manager_a.get("/admin/devices/gm-new1").text
    assert key in page and "1栋 101" in page
    assert "gm-new1" in manager_a.get("/admin/devices").text


def test_a_bad_key_is_refused_and_nothing_is_registered(manager_a, world):
    for key in ("zz" * 32, "00" * 31, "00" * 32):  # not hex, too short, not a point
        r = manager_a.post(
            "/admin/devices",
            data={
                "device_id": "gm-bad",
                "kind": "gas-meter",
                "gateway": world.a.gateway,
                "key": key,
            },
        )
        assert r.status_code == 422, key
        assert "输入有误" in r.text
    r = world.client.get("/api/v1/devices/gm-bad", headers=world.admin_headers)
    assert r.status_code == 404


def test_rekeying_moving_and_removing_a_device(manager_a, world, clock):
    a = world.a
    new_key = public_of("another seed").hex()
    r = manager_a.post(f"/admin/devices/{a.gas}/key", data={"key": new_key})
    assert r.status_code == 303
    assert world.ok("GET", f"/api/v1/devices/{a.gas}")["public_key"] == new_key
    assert manager_a.post(f"/admin/devices/{a.gas}/unit", data={"unit": ""}).status_code == 303
    assert world.ok("GET", f"/api/v1/devices/{a.gas}")["unit"] is None
    assert manager_a.post(f"/admin/devices/{a.gas}/remove").status_code == 303
    assert world.ok("GET", f"/api/v1/devices/{a.gas}")["removed_at"] == clock()
    audit = [e["action"] for e in world.ok("GET", "/api/v1/audit")]
    assert audit.count("device.update") == 3


def test_an_admin_creates_a_manager_who_sees_only_their_community(admin_web, app, world):
    r = admin_web.post(
        "/admin/users",
        data={
            "username": "wang.li",
            "password": "a good password",
            "role": "manager",
            "locale": "en",
            "communities": [world.b.community],
        },
    )
    assert r.status_code == 303
    assert "wang.li" in admin_web.get("/admin/users").text
    web = WebClient(app)
    assert web.login("wang.li", "a good password").status_code == 303
    home = web.get("/").text
    assert '<html lang="en">' in home and "Community B" in home and "Community A" not in home
    assert web.get("/admin/users").status_code == 403


def test_an_admin_edits_and_deletes_a_user(admin_web, app, world):
    users = world.ok("GET", "/api/v1/users")
    manager = next(u for u in users if u["username"] == world.a.manager)
    page = admin_web.get(f"/admin/users/{manager['id']}").text
    assert 'name="active" value="yes" checked' in page
    r = admin_web.post(
        f"/admin/users/{manager['id']}",
        data={"role": "manager", "locale": "zh-CN", "communities": [world.a.community]},
    )  # "active" unticked
    assert r.status_code == 303
    assert world.ok("GET", f"/api/v1/users/{manager['id']}")["active"] is False
    assert WebClient(app).login(world.a.manager, MANAGER_PASSWORD).status_code == 401
    assert admin_web.post(f"/admin/users/{manager['id']}/delete").status_code == 303
    r = world.client.get(f"/api/v1/users/{manager['id']}", headers=world.admin_headers)
    assert r.status_code == 404


def test_a_weak_password_is_refused(admin_web, world):
    r = admin_web.post("/admin/users", data={"username": "short", "password": "1234"})
    assert r.status_code == 422 and "8" in r.text
    assert all(u["username"] != "short" for u in world.ok("GET", "/api/v1/users"))


def test_an_admin_cannot_lock_themselves_out(admin_web, world):
    r = admin_web.post("/admin/users/1", data={"role": "manager", "locale": "zh-CN"})
    assert r.status_code == 409
    assert world.ok("GET", "/api/v1/users/1")["role"] == "admin"
