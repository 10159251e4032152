"""Every page is scoped by the API's own `Scope`: a manager of community B
gets 404 for every page of community A (403 where the page is for admins),
on GET and POST alike, and nothing changes."""

from .helpers import ADMIN_ONLY, COMMUNITY_QUERIES, FORMS, UNSCOPED, fill, routes


def _params(path: str, ids: dict) -> dict:
    return {
        name: ("2025-12" if key is None else ids[key])
        for name, key in COMMUNITY_QUERIES.get(path, {}).items()
    }


def _form(path: str, ids: dict) -> dict:
    return {k: ids.get(v, v) if isinstance(v, str) else v for k, v in FORMS.get(path, {}).items()}


def test_every_page_of_another_community_is_404(manager_b, seeded):
    walked = 0
    for path, _ in routes("GET"):
        if path in UNSCOPED:
            continue
        expected = 403 if ("GET", path) in ADMIN_ONLY else 404
        if "{" not in path and path not in COMMUNITY_QUERIES and expected == 404:
            continue  # listings: tested below to show only B's things
        r = manager_b.get(fill(path, seeded), params=_params(path, seeded))
        assert r.status_code == expected, f"GET {path}: {r.status_code}"
        assert "text/html" in r.headers["content-type"]
        walked += 1
    assert walked >= 13


def test_the_same_pages_work_for_the_community_s_own_manager(manager_a, seeded):
    for path, _ in routes("GET"):
        if path in ("/login",) or ("GET", path) in ADMIN_ONLY:
            continue
        r = manager_a.get(fill(path, seeded), params=_params(path, seeded))
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:2000]}"


def test_admins_see_every_page(admin_web, seeded):
    for path, _ in routes("GET"):
        if path == "/login":
            continue
        r = admin_web.get(fill(path, seeded), params=_params(path, seeded))
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:2000]}"


def test_every_form_aimed_at_another_community_is_refused_and_changes_nothing(
    manager_b, world, seeded
):
    audit_before = world.ok("GET", "/api/v1/audit", params={"limit": 5000})
    walked = 0
    for path, _ in routes("POST"):
        if path in UNSCOPED:
            continue
        if "{" not in path and path not in FORMS:
            continue
        r = manager_b.post(fill(path, seeded), data=_form(path, seeded))
        expected = 403 if ("POST", path) in ADMIN_ONLY else 404
        assert r.status_code == expected, f"POST {path}: {r.status_code} {r.text[:1000]}"
        walked += 1
    assert walked >= 15
    assert world.ok("GET", "/api/v1/audit", params={"limit": 5000}) == audit_before
    assert world.ok("GET", f"/api/v1/alarms/{seeded['alarm_id']}")["state"] == "open"
    assert world.ok("GET", "/api/v1/devices", params={"community": world.a.community}) == (
        world.ok("GET", "/api/v1/devices", params={"community": world.a.community})
    )


def test_listings_show_only_the_manager_s_own_community(manager_b, world, seeded):
    a, b = world.a, world.b
    for url in ("/", "/alarms", "/admin/gateways", "/admin/devices", "/billing", "/firmware"):
        html = manager_b.get(url).text
        assert "Community A" not in html, url
        assert a.gas not in html and a.gateway not in html, url
    assert "Community B" in manager_b.get("/").text
    assert b.gas in manager_b.get("/admin/devices").text


def test_a_building_of_another_community_is_not_found_even_for_admins(admin_web, world):
    a, b = world.a, world.b
    r = admin_web.get(f"/communities/{b.community}", params={"building": a.building})
    assert r.status_code == 404


def test_a_filter_left_on_all_is_no_filter(admin_web, seeded):
    """A filter form's "all" sends `community=` (and empty fields): the page
    reads them as not given, not as a 422."""
    walked = 0
    for path, _ in routes("GET"):
        if "{" in path or path not in COMMUNITY_QUERIES:
            continue
        query = "&".join(f"{name}=" for name in COMMUNITY_QUERIES[path] if name != "month")
        blank = admin_web.get(f"{path}?{query}&user=")
        plain = admin_web.get(path)
        assert blank.status_code == plain.status_code, f"GET {path}?{query}: {blank.status_code}"
        walked += 1
    assert walked >= 5
