"""The city-platform API: read-only API keys scoped to communities, a rate
limit every worker shares, cursor pages that never skip or repeat a reading
while readings are being written, and a month as CSV or Parquet."""

import csv
import importlib.util
import io
import json
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kapok.cloud.crud import ingest as ingest_crud
from kapok.cloud.crud import platform as platform_crud
from kapok.cloud.main import create_app
from kapok.cloud.models import Gateway
from kapok.protocols import cose

from .helpers import batch, meter_reading, public_of

T0 = 1767225600  # 2026-01-01 00:00 UTC, 08:00 in Shanghai


def make_key(world, communities, headers=None, rate=600) -> str:
    body = {"name": "城市平台", "communities": communities, "rate_per_minute": rate}
    return world.ok("POST", "/api/v1/api-keys", 201, headers=headers, json=body)["key"]


def readings(client, key, **params):
    r = client.get("/api/v1/platform/readings", params=params, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    return r.json()


def ingest_meter(world, place, seqs, *, t0=T0):
    world.ingest(place, [(t0 + s, meter_reading(place.gas, s, t0 + s, 100.0 + s)) for s in seqs])


def page_all(client, key, cursor=None, limit=7, **params):
    got = []
    while True:
        page = readings(client, key, cursor=cursor, limit=limit, **params)
        got += page["items"]
        if not page["items"]:
            return got, page["cursor"]
        cursor = page["cursor"]


def test_a_key_is_shown_once_and_sees_only_its_communities(world, client):
    a, b = world.a, world.b
    key = make_key(world, [a.community])
    assert key.startswith("kapok_ak_")
    listed = world.ok("GET", "/api/v1/api-keys")
    assert len(listed) == 1 and "key" not in listed[0] and key.startswith(listed[0]["prefix"])
    ingest_meter(world, a, range(1, 4))
    ingest_meter(world, b, range(1, 4))
    items = readings(client, key)["items"]
    assert {i["device"] for i in items} == {a.gas}
    assert {i["community"] for i in items} == {a.community}
    # another community, named outright: as if it did not exist
    r = client.get(
        "/api/v1/platform/readings", params={"community": b.community}, headers={"X-API-Key": key}
    )
    assert r.status_code == 404
    r = client.get(
        "/api/v1/platform/readings/export",
        params={"community": b.community, "month": "2026-01"},
        headers={"X-API-Key": key},
    )
    assert r.status_code == 404


def test_keys_are_refused_unless_valid_and_user_tokens_are_not_keys(world, client):
    a = world.a
    key = make_key(world, [a.community])
    url = "/api/v1/platform/readings"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"X-API-Key": "kapok_ak_forged"}).status_code == 401
    assert client.get(url, headers={"X-API-Key": key[:-1] + "x"}).status_code == 401
    assert client.get(url, headers=a.manager_headers).status_code == 401
    assert client.get(url, headers={"X-API-Key": a.gateway_token}).status_code == 401
    # a key is no login either
    assert (
        client.get("/api/v1/devices", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    )
    key_id = world.ok("GET", "/api/v1/api-keys")[0]["id"]
    assert client.get(url, headers={"X-API-Key": key}).status_code == 200
    world.ok("DELETE", f"/api/v1/api-keys/{key_id}", 204)
    assert client.get(url, headers={"X-API-Key": key}).status_code == 401
    actions = [e["action"] for e in world.ok("GET", "/api/v1/audit")]
    assert "api_key.create" in actions and "api_key.revoke" in actions


def test_managers_make_and_revoke_keys_of_their_own_communities_only(world, client):
    a, b = world.a, world.b
    r = client.post(
        "/api/v1/api-keys",
        json={"name": "x", "communities": [a.community]},
        headers=b.manager_headers,
    )
    assert r.status_code == 404
    mine = make_key(world, [b.community], headers=b.manager_headers)
    assert mine
    admins = make_key(world, [a.community, b.community])
    assert admins
    seen = client.get("/api/v1/api-keys", headers=b.manager_headers).json()
    assert [k["communities"] for k in seen] == [[b.community]]  # not the one spanning A too
    spanning = next(k for k in world.ok("GET", "/api/v1/api-keys") if len(k["communities"]) == 2)
    r = client.delete(f"/api/v1/api-keys/{spanning['id']}", headers=b.manager_headers)
    assert r.status_code == 404
    assert (
        client.post("/api/v1/api-keys", json={"name": "x", "communities": [1]}).status_code == 401
    )


def test_pages_give_every_reading_once_in_order_and_the_cursor_waits_at_the_end(world, client):
    a = world.a
    key = make_key(world, [a.community])
    ingest_meter(world, a, range(1, 51))
    got, cursor = page_all(client, key, n="vol")
    assert [i["seq"] for i in got] == list(range(1, 51))
    assert readings(client, key, cursor=cursor, n="vol")["cursor"] == cursor  # nothing new
    ingest_meter(world, a, range(51, 56))
    more, _ = page_all(client, key, cursor=cursor, n="vol")
    assert [i["seq"] for i in more] == list(range(51, 56))
    r = client.get(
        "/api/v1/platform/readings", params={"cursor": "not-ours"}, headers={"X-API-Key": key}
    )
    assert r.status_code == 422


# SQLite's writers take turns (BEGIN IMMEDIATE): a late commit cannot happen there
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_transaction_that_commits_late_is_not_skipped(app, backend, world, client):
    """Writer 1 (community A's gateway) stores readings (lower ids) and has
    not committed; writer 2 (community B's) stores more and commits; a
    platform pages meanwhile, then writer 1 commits. An id cursor would have
    moved past writer 1's rows for good."""
    a, b = world.a, world.b
    key = make_key(world, [a.community, b.community])
    sessions = app.state.sessions
    late = sessions()
    gateway = late.get(Gateway, a.gateway)
    _, body1 = batch([(T0 + s, meter_reading(a.gas, s, T0 + s, 1.0 * s)) for s in range(1, 6)])
    ingest_crud.ingest(late, gateway=gateway, body=body1, keys=app.state.keys, now=T0)
    late.flush()  # rows and ids exist, not committed
    try:
        ingest_meter(world, b, range(6, 11))  # committed at once
        got, cursor = page_all(client, key, n="vol")
        assert got == []  # held back: an older transaction is still running
        late.commit()
    finally:
        late.close()
    more, _ = page_all(client, key, cursor=cursor, n="vol")
    seen = [(i["device"], i["seq"]) for i in got + more]
    assert sorted(seen) == sorted(
        [(a.gas, s) for s in range(1, 6)] + [(b.gas, s) for s in range(6, 11)]
    )
    assert len(set(seen)) == len(seen)


def test_paging_while_readings_stream_in_never_skips_or_repeats(world, client):
    a = world.a
    key = make_key(world, [a.community])
    done = threading.Event()

    def write():
        try:
            for first in range(1, 201, 10):
                ingest_meter(world, a, range(first, first + 10))
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    seen, cursor = [], None
    while True:
        finished = done.is_set()
        page, cursor = page_all(client, key, cursor=cursor, limit=13, n="vol")
        seen += page
        if finished:
            break
    writer.join()
    assert [i["seq"] for i in seen] == list(range(1, 201))


def test_the_rate_limit_is_counted_in_the_database_for_every_worker(world, client, settings, clock):
    a = world.a
    key = make_key(world, [a.community], rate=3)
    headers = {"X-API-Key": key}
    other = create_app(settings, clock=clock)  # a second worker on the same database
    from fastapi.testclient import TestClient

    with TestClient(other) as second:
        codes = [
            c.get("/api/v1/platform/alarms", headers=headers).status_code
            for c in (client, second, client)
        ]
        assert codes == [200, 200, 200]
        r = second.get("/api/v1/platform/alarms", headers=headers)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        clock.advance(60)
        assert client.get("/api/v1/platform/alarms", headers=headers).status_code == 200


def test_alarms_page_from_a_cursor(world, client):
    a, b = world.a, world.b
    key = make_key(world, [a.community])
    world.ingest(a, [(T0, meter_reading(a.gas, 1, T0, 1.0, events=[("gas.leak", T0, 20.0)]))])
    world.ingest(b, [(T0, meter_reading(b.gas, 1, T0, 1.0, events=[("gas.leak", T0, 20.0)]))])
    page = client.get("/api/v1/platform/alarms", headers={"X-API-Key": key}).json()
    assert [(x["device"], x["code"], x["state"]) for x in page["items"]] == [
        (a.gas, "gas.leak", "open")
    ]
    again = client.get(
        "/api/v1/platform/alarms", params={"cursor": page["cursor"]}, headers={"X-API-Key": key}
    ).json()
    assert again["items"] == [] and again["cursor"] == page["cursor"]


def test_a_month_as_csv_and_parquet_each_row_verifiable(world, client):
    a = world.a
    key = make_key(world, [a.community])
    ingest_meter(world, a, range(1, 21))
    # a reading of February (Shanghai time) stays out of January
    world.ingest(a, [(T0 + 32 * 86400, meter_reading(a.gas, 99, T0 + 32 * 86400, 500.0))])
    params = {"community": a.community, "month": "2026-01"}
    r = client.get("/api/v1/platform/readings/export", params=params, headers={"X-API-Key": key})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    vol = [row for row in rows if row["n"] == "vol"]
    assert [int(row["seq"]) for row in vol] == list(range(1, 21))
    for row in vol[:3]:  # the signed original says what the row says
        payload = cose.verify1(bytes.fromhex(row["cose"]), public_of(a.gas))
        assert payload
    r = client.get(
        "/api/v1/platform/readings/export",
        params={**params, "format": "parquet"},
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200
    table = pq.read_table(io.BytesIO(r.content)).to_pylist()
    assert len(table) == len(rows)
    first = next(x for x in table if x["n"] == "vol")
    assert (first["seq"], first["v"], first["device"]) == (1, 101.0, a.gas)
    assert first["cose"] == vol[0]["cose"]


def load_example():
    path = Path(__file__).parents[2] / "docs" / "examples" / "platform_client.py"
    spec = importlib.util.spec_from_file_location("platform_client", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_example_client_follows_the_cursor_across_runs(world, client, tmp_path):
    example = load_example()
    a = world.a
    key = make_key(world, [a.community])
    client.headers["X-API-Key"] = key
    state, out = tmp_path / "cursor.txt", io.StringIO()
    ingest_meter(world, a, range(1, 21))
    assert example.follow(client, state, out, n="vol", limit=6) == 20
    ingest_meter(world, a, range(21, 26))
    assert example.follow(client, state, out, n="vol", limit=6) == 5  # a later run: only new
    assert example.follow(client, state, out, n="vol") == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [x["seq"] for x in lines] == list(range(1, 26))
    data = example.month(client, a.community, "2026-01")
    assert data.decode().splitlines()[0] == ",".join(platform_crud.EXPORT_COLUMNS)
