"""The audit log is append-only and hash-chained per community: an export
re-derives with `kapok verify`, and a removed or changed entry is named."""

import threading

from sqlalchemy import delete, update
from typer.testing import CliRunner

from kapok.cloud import auditchain
from kapok.cloud.crud import audit as audit_crud
from kapok.cloud.models import AuditLog
from kapok.tools.cli import app as kapok

from .helpers import ADMIN_PASSWORD, meter_reading

T0 = 1767225600


def export(client, headers, community=None):
    params = {"community": community} if community is not None else {}
    r = client.get("/api/v1/audit/export", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.text


def verify(tmp_path, text: str):
    path = tmp_path / "audit.csv"
    path.write_text(text, encoding="utf-8")
    return CliRunner().invoke(kapok, ["verify", str(path)])


def make_history(world):
    a = world.a
    world.ingest(a, [(T0, meter_reading(a.gas, 1, T0, 1.0, events=[("gas.leak", T0, 20.0)]))])
    [alarm] = world.ok("GET", "/api/v1/alarms", headers=a.manager_headers)
    world.ok("POST", f"/api/v1/alarms/{alarm['id']}/ack", headers=a.manager_headers, json={})
    world.ok(
        "PUT",
        f"/api/v1/communities/{a.community}/rules",
        headers=a.manager_headers,
        json={"battery_low_v": 3.2},
    )


def test_a_communitys_chain_verifies_and_a_removed_or_changed_entry_is_named(
    app, world, client, tmp_path
):
    a = world.a
    make_history(world)
    text = export(client, a.manager_headers, a.community)
    rows = audit_crud.from_csv(text)
    assert {"alarm.ack", "rules.update"} <= {r["action"] for r in rows}
    assert {r["community"] for r in rows} == {a.community}
    result = verify(tmp_path, text)
    assert result.exit_code == 0, result.output
    assert f"{len(rows)} audit entries" in result.output
    # someone with database access removes the acknowledgement...
    ack = next(r for r in rows if r["action"] == "alarm.ack")
    with app.state.sessions() as s, s.begin():
        s.execute(delete(AuditLog).where(AuditLog.id == ack["id"]))
    result = verify(tmp_path, export(client, a.manager_headers, a.community))
    assert result.exit_code == 1 and "missing or was changed" in result.output
    # ... or rewrites who did something
    with app.state.sessions() as s, s.begin():
        s.execute(update(AuditLog).where(AuditLog.id == rows[-1]["id"]).values(actor="user:x"))
    result = verify(tmp_path, export(client, a.manager_headers, a.community))
    assert f"entry {rows[-1]['id']}: its content does not match its hash" in result.output


def test_logins_are_audited_in_the_system_chain_for_admins_only(world, client, tmp_path):
    bad = client.post("/api/v1/auth/token", data={"username": "admin", "password": "wrong"})
    assert bad.status_code == 401
    world.login("admin", ADMIN_PASSWORD)
    text = export(client, world.admin_headers)
    actions = [r["action"] for r in audit_crud.from_csv(text)]
    assert "user.login_failed" in actions and "user.login" in actions
    assert verify(tmp_path, text).exit_code == 0
    r = client.get("/api/v1/audit/export", headers=world.a.manager_headers)
    assert r.status_code == 403  # a manager names a community of theirs
    r = client.get(
        "/api/v1/audit/export",
        params={"community": world.b.community},
        headers=world.a.manager_headers,
    )
    assert r.status_code == 404
    assert client.get("/api/v1/audit/export").status_code == 401


def test_writers_at_once_never_fork_a_chain(app, world, client):
    a = world.a
    errors = []

    def write(n):
        try:
            for i in range(10):
                with app.state.sessions() as s, s.begin():
                    audit_crud.record(
                        s,
                        actor=f"user:w{n}",
                        action="test.write",
                        target=f"x:{i}",
                        community_id=a.community,
                        detail={"i": i},
                        now=T0 + i,
                    )
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with app.state.sessions() as s:
        rows = list(audit_crud.chain(s, community_id=a.community))
    assert sum(r["action"] == "test.write" for r in rows) == 40
    assert auditchain.check(rows) == []


def test_no_route_changes_or_deletes_an_audit_entry(app):
    for route in app.routes:
        path = getattr(route, "path", "")
        if "audit" in path:
            assert getattr(route, "methods", {"GET"}) <= {"GET", "HEAD"}, path
