"""A TestClient that behaves like a browser on the dashboard: its own
cookie jar, the login form, and the CSRF token read from the pages."""

import re

from fastapi.testclient import TestClient

from kapok.cloud.web.router import page_routes

T0 = 1767225600  # the tests' clock: 2026-01-01 00:00 UTC, 08:00 in Shanghai

ADMIN_ONLY = {
    ("GET", "/admin/users"),
    ("POST", "/admin/users"),
    ("GET", "/admin/users/{user_id}"),
    ("POST", "/admin/users/{user_id}"),
    ("POST", "/admin/users/{user_id}/delete"),
    ("POST", "/firmware/releases"),
    ("POST", "/firmware/rollouts"),
    ("POST", "/firmware/rollouts/{rollout_id}/halt"),
    ("POST", "/firmware/rollouts/{rollout_id}/resume"),
}
# not community data, or nothing to scope
UNSCOPED = {"/login", "/logout", "/live.json", "/"}

# Query parameters naming community A on pages without an id in the path
COMMUNITY_QUERIES = {
    "/alarms": {"community": "community_id"},
    "/billing": {"community": "community_id"},
    "/billing/export": {"community": "community_id", "month": None},
    "/admin/gateways": {"community": "community_id"},
    "/admin/devices": {"gateway": "gateway_id"},
    "/audit": {"community": "community_id"},
    "/audit/chain.csv": {"community": "community_id"},
    "/work-orders": {"community": "community_id"},
    "/work-orders/new": {"community": "community_id"},
}
# Form fields that make each POST well-formed
FORMS = {
    "/devices/{device_id}/valve": {"op": "valve.close", "confirm": "yes"},
    "/alarms/{alarm_id}/ack": {"note": "x"},
    "/alarms/{alarm_id}/resolve": {"confirm": "1"},
    "/admin/gateways": {"name": "x", "community": "community_id"},
    "/admin/devices": {
        "device_id": "gm-x",
        "kind": "gas-meter",
        "gateway": "gateway_id",
        "key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    },
    "/admin/devices/{device_id}/key": {
        "key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    },
    "/admin/devices/{device_id}/unit": {"unit": ""},
    "/admin/users": {"username": "someone", "password": "long enough pw"},
    "/admin/users/{user_id}": {"role": "manager", "locale": "en"},
    "/firmware/rollouts": {"release": "release_id", "communities": "community_id"},
    "/work-orders": {"community": "community_id", "title": "x"},
    "/work-orders/{order_id}/assign": {"assignee": "technician_id"},
    "/work-orders/{order_id}/done": {"note": "x"},
    "/work-orders/{order_id}/cancel": {"reason": "x"},
    "/work-orders/{order_id}/notes": {"text": "x"},
    "/communities/{community_id}/channels": {"kind": "email", "target": "duty@a.example"},
    "/channels/{channel_id}": {"target": "https://hooks.example/other"},
    "/channels/{channel_id}/active": {"active": "0"},
    "/communities/{community_id}/roster": {
        "kind": "weekly",
        "channel": "channel_id",
        "weekdays": "5",
        "start": "08:00",
        "end": "18:00",
    },
}


CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


class WebClient:
    def __init__(self, app, base_url: str = "http://testserver"):
        # no `with`: the app's lifespan is run by the cloud tests' `client`
        self.http = TestClient(app, base_url=base_url, follow_redirects=False)
        self.csrf: str | None = None

    def login(self, username: str, password: str, next_url: str = "/"):
        form = self.http.get("/login")
        assert form.status_code == 200, form.text
        r = self.http.post(
            "/login",
            data={
                "username": username,
                "password": password,
                "csrf": csrf_of(form.text),
                "next": next_url,
            },
        )
        if r.status_code == 303:
            home = self.http.get("/", follow_redirects=True)  # a technician's is its orders
            assert home.status_code == 200, home.text
            self.csrf = csrf_of(home.text)
        return r

    def get(self, url: str, **kwargs):
        return self.http.get(url, **kwargs)

    def post(self, url: str, data: dict | None = None, *, csrf: bool = True, **kwargs):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf", self.csrf)
        return self.http.post(url, data=data, **kwargs)


def fill(path: str, ids: dict) -> str:
    """Put ids into a route path's {params} (named like `device_id`)."""
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)


def routes(method: str):
    """(path, route) of every page route answering `method`."""
    return [(r.path, r) for r in page_routes() if method in r.methods]
