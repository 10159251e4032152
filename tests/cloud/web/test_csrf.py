"""Every state-changing form needs the session's CSRF token: without it,
or with another session's, 403 and nothing changes."""

from ..helpers import MANAGER_PASSWORD
from .helpers import FORMS, WebClient, fill, routes


def _state(world):
    audit = world.ok("GET", "/api/v1/audit", params={"limit": 5000})
    return (
        [e for e in audit if e["action"] != "user.login"],  # the second session's login
        world.ok("GET", "/api/v1/alarms", params={"limit": 5000}),
        world.ok("GET", "/api/v1/commands"),
        world.ok("GET", "/api/v1/gateways"),
        world.ok("GET", "/api/v1/devices"),
        world.ok("GET", "/api/v1/users"),
        world.ok("GET", "/api/v1/firmware/rollouts"),
    )


def test_every_form_without_the_csrf_token_is_403(app, admin_web, world, seeded):
    before = _state(world)
    other = WebClient(app)
    other.login(world.a.manager, MANAGER_PASSWORD)
    walked = 0
    for path, _ in routes("POST"):
        if path == "/login":
            continue
        url = fill(path, seeded)
        form = {
            k: seeded.get(v, v) if isinstance(v, str) else v for k, v in FORMS.get(path, {}).items()
        }
        for token in (None, "0" * 64, other.csrf):
            data = dict(form)
            if token is not None:
                data["csrf"] = token
            r = admin_web.post(url, data=data, csrf=False)
            assert r.status_code == 403, f"POST {path} with csrf {token!r}: {r.status_code}"
            assert "text/html" in r.headers["content-type"]
        walked += 1
    assert walked >= 18
    assert _state(world) == before
    assert admin_web.get("/").status_code == 200  # still logged in
