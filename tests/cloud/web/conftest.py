"""Fixtures of the dashboard tests: browsers-without-a-browser (TestClients
with their own cookie jars) logged in through the login form, and a
community A with data on every kind of page.

The cloud tests' fixtures (app, client, world, clock) come from
tests/cloud/conftest.py, so these tests run on SQLite and PostgreSQL too.
"""

import struct
import zlib

import pytest

from kapok.cloud.web import i18n
from kapok.protocols import senml

from ..helpers import ADMIN_PASSWORD, MANAGER_PASSWORD, meter_reading, uplink
from .helpers import T0, WebClient


@pytest.fixture(autouse=True)
def strict_catalogues(monkeypatch):
    """A page asking the catalogue for a key it lacks fails the test instead
    of showing the key to a user."""
    original = i18n.Translator.__call__

    def strict(self, key, **values):
        if key not in self.messages:
            raise AssertionError(f"{self.lang} catalogue has no {key!r}")
        return original(self, key, **values)

    monkeypatch.setattr(i18n.Translator, "__call__", strict)


def _png(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny, red) PNG: browsers show it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xc0\x39\x2b" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = _png()


@pytest.fixture
def admin_web(app, world) -> WebClient:
    web = WebClient(app)
    web.login("admin", ADMIN_PASSWORD)
    return web


@pytest.fixture
def manager_a(app, world) -> WebClient:
    web = WebClient(app)
    web.login(world.a.manager, MANAGER_PASSWORD)
    return web


@pytest.fixture
def manager_b(app, world) -> WebClient:
    web = WebClient(app)
    web.login(world.b.manager, MANAGER_PASSWORD)
    return web


@pytest.fixture
def seeded(world, client, clock) -> dict:
    """Community A with readings (one seq lost), a gas-leak alarm, a valve
    command, a firmware release and a rollout; returns the ids every page
    route of A needs, by path parameter name."""
    a = world.a
    items = []
    for seq in (1, 2, 3, 5):  # seq 4 never arrives
        t = int(T0) - 3600 * (6 - seq)
        items.append(
            (t, uplink(a.gas, seq, t, compact=senml.compact(3, [100.0 + seq, True, 3.6, -90])))
        )
    leak = [("gas.leak", T0 - 60, 23.5)]
    items.append((T0 - 60, meter_reading(a.gas, 6, T0 - 60, 106.5, events=leak)))
    world.ingest(a, items)
    alarm = world.ok("GET", "/api/v1/alarms", params={"community": a.community})[0]["id"]
    command = world.ok("POST", f"/api/v1/devices/{a.gas}/commands", 201, json={"op": "siren.off"})[
        "id"
    ]
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
    tech_id, _ = world.technician(a, "tech-a")
    order = world.ok(
        "POST",
        "/api/v1/work-orders",
        201,
        json={"unit": a.unit, "title": "meter box door", "assignee": tech_id},
    )["id"]
    photo = world.ok(
        "POST",
        f"/api/v1/work-orders/{order}/photos",
        201,
        files={"file": ("p.png", PNG, "image/png")},
    )["id"]
    channel = world.ok(
        "POST",
        "/api/v1/channels",
        201,
        json={
            "community": a.community,
            "kind": "webhook",
            "target": "https://hooks.example/kapok",
            "secret": "seeded-hook-secret",
        },
    )["id"]
    shift = world.ok(
        "POST",
        "/api/v1/duty-shifts",
        201,
        json={
            "community": a.community,
            "channel": channel,
            "weekdays": [0, 1, 2, 3, 4],
            "start": "08:00",
            "end": "18:00",
        },
    )["id"]
    notification = world.ok("POST", f"/api/v1/channels/{channel}/test", 202)["id"]
    users = world.ok("GET", "/api/v1/users")
    manager_a_id = next(u["id"] for u in users if u["username"] == a.manager)
    return {
        "order_id": order,
        "photo": photo,
        "technician_id": tech_id,
        "community_id": a.community,
        "building_id": a.building,
        "unit_id": a.unit,
        "device_id": a.gas,
        "gateway_id": a.gateway,
        "alarm_id": alarm,
        "command_id": command,
        "rollout_id": rollout,
        "release_id": release,
        "user_id": manager_a_id,
        "channel_id": channel,
        "shift_id": shift,
        "notification_id": notification,
    }
