"""Logging in: passwords, tokens, expiry, the rate limit, users and roles."""

from sqlalchemy import create_engine, select

from kapok.cloud.core.db import normalize_url
from kapok.cloud.models import User

from .helpers import ADMIN_PASSWORD, MANAGER_PASSWORD


def token(client, username, password):
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_login_gives_a_bearer_token(client):
    r = token(client, "admin", ADMIN_PASSWORD)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and len(body["access_token"]) >= 40
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "admin" and me.json()["role"] == "admin"


def test_wrong_password_and_unknown_user_get_401(client):
    for username, password in (("admin", "wrong-password"), ("nobody", ADMIN_PASSWORD)):
        r = token(client, username, password)
        assert r.status_code == 401
        assert r.json() == {"detail": "wrong username or password"}
        assert r.headers["www-authenticate"] == "Bearer"


def test_requests_without_a_valid_token_get_401(client):
    assert client.get("/api/v1/users/me").status_code == 401
    r = client.get("/api/v1/users/me", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401


def test_passwords_are_stored_as_scrypt_hashes(client, settings):
    engine = create_engine(normalize_url(settings.database_url))
    with engine.connect() as conn:
        stored = conn.execute(select(User.password_hash).where(User.username == "admin")).scalar()
    engine.dispose()
    assert ADMIN_PASSWORD not in stored
    scheme, n, r, p, _salt, _digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "1024", "8", "1")


def test_failed_logins_are_rate_limited_per_user_and_address(client, settings, clock):
    for _ in range(settings.login_max_failures):
        assert token(client, "admin", "wrong-password").status_code == 401
    r = token(client, "admin", ADMIN_PASSWORD)  # even the right password waits now
    assert r.status_code == 429
    assert "too many failed logins" in r.json()["detail"]
    assert 1 <= int(r.headers["retry-after"]) <= settings.login_window_seconds
    # another user is not locked out by it
    assert token(client, "someone-else", "x").status_code == 401
    clock.advance(settings.login_window_seconds + 1)
    assert token(client, "admin", ADMIN_PASSWORD).status_code == 200


def test_a_good_login_clears_earlier_failures(client, settings):
    for _ in range(settings.login_max_failures - 1):
        token(client, "admin", "wrong-password")
    assert token(client, "admin", ADMIN_PASSWORD).status_code == 200
    for _ in range(settings.login_max_failures - 1):
        assert token(client, "admin", "wrong-password").status_code == 401
    assert token(client, "admin", ADMIN_PASSWORD).status_code == 200


def test_tokens_expire_and_can_be_revoked(client, settings, clock):
    headers = {
        "Authorization": f"Bearer {token(client, 'admin', ADMIN_PASSWORD).json()['access_token']}"
    }
    clock.advance(settings.access_token_minutes * 60 - 1)
    assert client.get("/api/v1/users/me", headers=headers).status_code == 200
    clock.advance(2)
    r = client.get("/api/v1/users/me", headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == "invalid or expired token"

    headers = {
        "Authorization": f"Bearer {token(client, 'admin', ADMIN_PASSWORD).json()['access_token']}"
    }
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401


def test_admins_manage_users_and_managers_cannot(world, client):
    created = world.ok(
        "POST",
        "/api/v1/users",
        201,
        json={
            "username": "li.wei",
            "password": "a-long-pass",
            "role": "manager",
            "communities": [world.a.community],
        },
    )
    assert created["communities"] == [world.a.community] and created["role"] == "manager"
    r = client.post(
        "/api/v1/users",
        json={"username": "li.wei", "password": "another-pass"},
        headers=world.admin_headers,
    )
    assert r.status_code == 409
    r = client.post(
        "/api/v1/users", json={"username": "x", "password": "short"}, headers=world.admin_headers
    )
    assert r.status_code == 422 and "at least 8" in r.json()["detail"]
    r = client.get("/api/v1/users", headers=world.a.manager_headers)
    assert r.status_code == 403
    # deactivating a user ends their sessions at once
    li = world.login("li.wei", "a-long-pass")
    world.ok("PATCH", f"/api/v1/users/{created['id']}", json={"active": False})
    assert client.get("/api/v1/users/me", headers=li).status_code == 401
    assert token(client, "li.wei", "a-long-pass").status_code == 401
    audit = world.ok("GET", "/api/v1/audit", params={"action": "user.update"})
    assert audit[0]["detail"]["active"] is False and audit[0]["actor"] == "user:admin"


def test_a_user_changes_their_own_password(world, client):
    headers = world.a.manager_headers
    r = client.post(
        "/api/v1/users/me/password",
        json={"current_password": "wrong", "new_password": "new-password-1"},
        headers=headers,
    )
    assert r.status_code == 401
    r = client.post(
        "/api/v1/users/me/password",
        json={"current_password": MANAGER_PASSWORD, "new_password": "new-password-1"},
        headers=headers,
    )
    assert r.status_code == 204
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401  # tokens revoked
    assert token(client, world.a.manager, "new-password-1").status_code == 200


def test_an_admin_cannot_lock_themself_out(world, client):
    me = world.ok("GET", "/api/v1/users/me")
    r = client.patch(
        f"/api/v1/users/{me['id']}", json={"role": "manager"}, headers=world.admin_headers
    )
    assert r.status_code == 409
    r = client.delete(f"/api/v1/users/{me['id']}", headers=world.admin_headers)
    assert r.status_code == 409
