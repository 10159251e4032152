"""The audit page: a manager sees their communities' entries, filtered by
kind, person and day; each chain downloads for `kapok verify`."""

from kapok.cloud.crud import audit as audit_crud

from ..helpers import meter_reading
from .helpers import T0


def test_a_manager_sees_and_filters_their_communitys_entries(manager_a, world, seeded):
    a, b = world.a, world.b
    world.ok("PUT", f"/api/v1/communities/{b.community}/rules", json={"battery_low_v": 3.0})
    alarm = seeded["alarm_id"]
    assert manager_a.post(f"/alarms/{alarm}/ack", data={"note": "上门"}).status_code == 303
    page = manager_a.get("/audit").text
    assert "审计日志" in page and "确认告警" in page and "Community B" not in page
    assert f"user:{a.manager}" in page
    only_rules = manager_a.get("/audit", params={"kind": "rules"}).text
    assert "确认告警" not in only_rules
    mine = manager_a.get("/audit", params={"user": a.manager, "lang": "en"}).text
    assert "Alarm acknowledged" in mine
    later = manager_a.get("/audit", params={"since": "2030-01-01"}).text
    assert "No entries match." in later
    bad = manager_a.get("/audit", params={"since": "yesterday"})
    assert bad.status_code == 422 and "“yesterday” is not a date" in bad.text
    assert manager_a.get("/audit", params={"community": b.community}).status_code == 404


def test_the_page_downloads_a_chain_that_verifies(manager_a, world, seeded):
    a = world.a
    world.ingest(a, [(T0, meter_reading(a.gas, 9, T0, 1.0, events=[("tamper", T0)]))])
    r = manager_a.get("/audit/chain.csv", params={"community": a.community})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = audit_crud.from_csv(r.text)
    assert rows and all(row["community"] == a.community for row in rows)
    from kapok.cloud import auditchain

    assert auditchain.check(rows) == []
    assert manager_a.get("/audit/chain.csv").status_code == 403  # the system chain: admins
