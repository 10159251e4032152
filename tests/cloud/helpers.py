"""Shared helpers of the cloud tests: a settable clock, signed node
messages, and a small two-community world built through the API."""

import hashlib
import os
from dataclasses import dataclass, field

from kapok.protocols import cose, ed25519, messages, senml

ADMIN_PASSWORD = "admin-pass-0001"
MANAGER_PASSWORD = "manager-pass-01"
CBOR = {"Content-Type": "application/cbor"}


class Clock:
    """The app's clock, moved by hand."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def seed_of(device_id: str) -> bytes:
    return hashlib.sha256(b"kapok test seed " + device_id.encode()).digest()


def public_of(device_id: str) -> bytes:
    return ed25519.public_key(seed_of(device_id))


def mac_key_of(device_id: str) -> bytes:
    return hashlib.sha256(b"kapok test mac " + device_id.encode()).digest()


def uplink(device_id: str, seq: int, t: int | None = None, *, mac: bool = False, **parts) -> bytes:
    """A node's COSE message: parts as messages.build_uplink takes them
    (compact=, records=, events=, results=)."""
    payload = messages.build_uplink(seq, t, **parts)
    if mac:
        return cose.mac0(payload, mac_key_of(device_id), device_id.encode())
    return cose.sign1(payload, seed_of(device_id), device_id.encode())


def meter_reading(device_id: str, seq: int, t: int | None, vol: float, **parts) -> bytes:
    """The routine reading of a gas or water meter (compact profile 1)."""
    return uplink(device_id, seq, t, compact=senml.compact(1, [vol, 3.3, -100]), **parts)


def batch(items, batch_id: bytes | None = None) -> tuple[bytes, bytes]:
    """(batch id, CBOR body) for [(rx time, COSE bytes), ...]."""
    batch_id = batch_id or os.urandom(16)
    return batch_id, messages.build_batch(batch_id, [list(i) for i in items])


@dataclass
class Place:
    community: int
    building: int
    unit: int
    gateway: str
    gateway_token: str
    gas: str
    water: str
    hub: str
    manager: str
    manager_headers: dict = field(default_factory=dict)

    @property
    def gateway_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.gateway_token}"}


class World:
    """Communities A and B, each with a building, a unit, a gateway, a gas
    meter (Sign1), a water meter (Mac0) and a hub; an admin and a manager
    per community."""

    def __init__(self, client, clock):
        self.client = client
        self.clock = clock
        self.admin_headers = self.login("admin", ADMIN_PASSWORD)
        self.a: Place
        self.b: Place

    def login(self, username: str, password: str) -> dict:
        r = self.client.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def ok(self, method: str, url: str, status: int = 200, headers=None, **kwargs):
        r = self.client.request(method, url, headers=headers or self.admin_headers, **kwargs)
        assert r.status_code == status, f"{method} {url}: {r.status_code} {r.text}"
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else r

    def place(self, tag: str) -> Place:
        c = self.ok("POST", "/api/v1/communities", 201, json={"name": f"Community {tag}"})["id"]
        b = self.ok("POST", "/api/v1/buildings", 201, json={"community": c, "name": "1栋"})["id"]
        u = self.ok("POST", "/api/v1/units", 201, json={"building": b, "name": "101"})["id"]
        gw = self.ok("POST", "/api/v1/gateways", 201, json={"name": f"gw {tag}", "community": c})
        t = tag.lower()
        gas, water, hub = f"gm-{t}1", f"wm-{t}1", f"hub-{t}1"
        self.register(gas, "gas-meter", gw["id"], unit=u, board="esp32")
        self.register(water, "water-meter", gw["id"], unit=u, mac=True, board="esp32")
        self.register(hub, "hub", gw["id"], unit=u, board="rp2")
        manager = f"manager-{t}"
        self.ok(
            "POST",
            "/api/v1/users",
            201,
            json={
                "username": manager,
                "password": MANAGER_PASSWORD,
                "role": "manager",
                "communities": [c],
            },
        )
        place = Place(c, b, u, gw["id"], gw["token"], gas, water, hub, manager)
        place.manager_headers = self.login(manager, MANAGER_PASSWORD)
        return place

    def technician(self, place: Place, username: str) -> tuple[int, dict]:
        """A technician of `place`'s community: (user id, its headers)."""
        user = self.ok(
            "POST",
            "/api/v1/users",
            201,
            json={
                "username": username,
                "password": MANAGER_PASSWORD,
                "role": "technician",
                "communities": [place.community],
            },
        )
        return user["id"], self.login(username, MANAGER_PASSWORD)

    def register(self, device_id, kind, gateway, *, unit=None, mac=False, **extra):
        body = {"id": device_id, "kind": kind, "gateway": gateway, "unit": unit, **extra}
        if mac:
            body["mac_key"] = mac_key_of(device_id).hex()
        else:
            body["public_key"] = public_of(device_id).hex()
        return self.ok("POST", "/api/v1/devices", 201, json=body)

    @classmethod
    def build(cls, client, clock) -> "World":
        world = cls(client, clock)
        world.a = world.place("A")
        world.b = world.place("B")
        return world

    def ingest(self, place: Place, items, batch_id: bytes | None = None, status: int = 200):
        """Post a batch as `place`'s gateway; returns the parsed reply."""
        _, body = batch(items, batch_id)
        r = self.client.post(
            "/api/v1/ingest", content=body, headers={**place.gateway_headers, **CBOR}
        )
        assert r.status_code == status, r.text
        if status != 200:
            return r
        assert r.headers["content-type"] == "application/cbor"
        return messages.parse_batch_reply(r.content)
