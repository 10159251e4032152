"""Logging in and out of the dashboard: the API's own password check, rate
limit and tokens, kept in an HttpOnly, SameSite=Strict cookie."""

from http.cookies import SimpleCookie

from ..helpers import ADMIN_PASSWORD, MANAGER_PASSWORD
from .helpers import WebClient, csrf_of, routes


def set_cookies(response) -> dict[str, dict]:
    """name -> attributes of every Set-Cookie header."""
    out = {}
    for header in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            attrs = {k: v for k, v in morsel.items() if v}
            out[name] = {"value": morsel.value, **attrs, "raw": header}
    return out


def test_every_page_sends_a_visitor_without_a_session_to_the_login(app, world):
    web = WebClient(app)
    for path, _ in routes("GET"):
        if path == "/login":
            continue
        url = path.replace("{", "").replace("}", "")  # any id: login comes first
        r = web.get(url)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next="), path
    r = web.get("/alarms?state=open")
    assert r.headers["location"] == "/login?next=/alarms%3Fstate%3Dopen"


def test_the_login_page_is_chinese_and_logging_in_sets_a_strict_httponly_cookie(app, world):
    web = WebClient(app)
    form = web.get("/login")
    assert '<html lang="zh-CN">' in form.text and "登录" in form.text
    r = web.login("admin", ADMIN_PASSWORD, next_url="/alarms")
    assert r.status_code == 303 and r.headers["location"] == "/alarms"
    cookie = set_cookies(r)["kapok_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "strict"
    assert "secure" not in cookie  # plain http (a test server): no Secure flag
    assert cookie["path"] == "/"
    # the cookie holds an ordinary access token: the API accepts it too
    me = web.get("/api/v1/users/me", headers={"Authorization": f"Bearer {cookie['value']}"})
    assert me.json()["username"] == "admin"
    assert web.get("/alarms").status_code == 200


def test_over_https_the_session_cookie_is_secure(app, world):
    web = WebClient(app, base_url="https://testserver")
    r = web.login("admin", ADMIN_PASSWORD)
    assert r.status_code == 303
    assert set_cookies(r)["kapok_session"]["secure"] is True


def test_a_wrong_password_is_refused_and_counts_towards_the_api_s_rate_limit(app, world, client):
    web = WebClient(app)
    for _ in range(5):  # KAPOK_LOGIN_MAX_FAILURES
        r = web.login(world.a.manager, "wrong password")
        assert r.status_code == 401
        assert "用户名或密码错误" in r.text
        assert "kapok_session" not in set_cookies(r)
    r = web.login(world.a.manager, MANAGER_PASSWORD)  # right, but too late
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert "kapok_session" not in set_cookies(r)
    # one limit for both doors
    api = client.post(
        "/api/v1/auth/token", data={"username": world.a.manager, "password": MANAGER_PASSWORD}
    )
    assert api.status_code == 429
    world.clock.advance(15 * 60 + 1)
    assert web.login(world.a.manager, MANAGER_PASSWORD).status_code == 303


def test_a_login_form_without_its_csrf_cookie_is_refused(app, world):
    web = WebClient(app)
    token = csrf_of(web.get("/login").text)
    web.http.cookies.clear()  # e.g. posted from another site's page
    r = web.http.post(
        "/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": token}
    )
    assert r.status_code == 403
    assert "kapok_session" not in set_cookies(r)


def test_logout_revokes_the_token(app, world):
    web = WebClient(app)
    r = web.login("admin", ADMIN_PASSWORD)
    token = set_cookies(r)["kapok_session"]["value"]
    assert web.post("/logout", csrf=False).status_code == 403  # CSRF first
    assert web.get("/").status_code == 200
    r = web.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert web.get("/").status_code == 303
    # the old cookie value is dead everywhere
    again = WebClient(app)
    again.http.cookies.set("kapok_session", token)
    assert again.get("/").status_code == 303
    api = again.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401


def test_after_login_only_local_pages_are_followed(app, world):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        web = WebClient(app)
        r = web.login("admin", ADMIN_PASSWORD, next_url=target)
        assert r.headers["location"] == "/", target


def test_a_logged_in_visitor_of_the_login_page_goes_on(admin_web):
    r = admin_web.get("/login?next=/billing")
    assert r.status_code == 303 and r.headers["location"] == "/billing"


def test_pages_carry_security_headers(admin_web):
    r = admin_web.get("/")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert admin_web.get("/login").headers["x-frame-options"] == "DENY"
