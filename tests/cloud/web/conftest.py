"""Fixtures of the dashboard tests: browsers-without-a-browser (TestClients
with their own cookie jars) logged in through the login form, and a
community A with data on every kind of page.

The cloud tests' fixtures (app, client, world, clock) come from
tests/cloud/conftest.py, so these tests run on SQLite and PostgreSQL too.
"""

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
    users = world.ok("GET", "/api/v1/users")
    manager_a_id = next(u["id"] for u in users if u["username"] == a.manager)
    return {
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
    }
