"""Several cloud worker processes on one PostgreSQL database: nothing that
matters lives in one worker's memory.

- `kapok cloud serve --workers N` refuses SQLite with a clear error;
- a command queued through one worker wakes the long polls held by every
  other worker (PostgreSQL LISTEN/NOTIFY), with the periodic re-look turned
  off so nothing else could explain the wake-up;
- the same batch sent to several workers at once is stored once, and every
  sender gets the same reply;
- the periodic checks run one round at a time.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from kapok.cloud.checks import ROUND_LOCK, run_checks
from kapok.cloud.core.db import session_scope
from kapok.protocols import messages

from .helpers import batch, meter_reading, public_of
from .pg import free_port
from .test_cli import PASSWORD, Server, cli, env

WORKERS = 3
# polls look at the database again only after a minute: a wake-up within
# the test's time can only come from the notification
NO_RECHECK = {"KAPOK_LONG_POLL_RECHECK_SECONDS": "60"}


def test_several_workers_refuse_sqlite(tmp_path):
    proc = cli(
        "serve",
        "--port",
        str(free_port()),
        "--workers",
        "2",
        "--db",
        f"sqlite:///{tmp_path / 'k.db'}",
        environ=env(tmp_path, KAPOK_ADMIN_PASSWORD=PASSWORD),
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs PostgreSQL" in lines[0], proc.stderr
    assert not (tmp_path / "k.db").exists()  # refused before touching anything


@pytest.fixture
def cluster(tmp_path, pg_databases):
    """`kapok cloud serve --workers 3` on a fresh PostgreSQL database, with a
    community, a gateway and a gas meter."""
    url = pg_databases.url_of(pg_databases.create())
    environ = env(tmp_path, KAPOK_ADMIN_PASSWORD=PASSWORD, **NO_RECHECK)
    server = Server(environ, "--db", url, "--workers", str(WORKERS)).wait_ready(timeout=60)
    try:
        admin = server.login()
        c = httpx.post(server.url + "/api/v1/communities", json={"name": "多进程"}, headers=admin)
        community = c.json()["id"]
        gw = httpx.post(
            server.url + "/api/v1/gateways",
            json={"name": "gw", "community": community},
            headers=admin,
        ).json()
        r = httpx.post(
            server.url + "/api/v1/devices",
            json={
                "id": "gm-w1",
                "kind": "gas-meter",
                "gateway": gw["id"],
                "public_key": public_of("gm-w1").hex(),
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
        server.admin = admin
        server.gateway = {"Authorization": f"Bearer {gw['token']}"}
        server.db_url = url
        yield server
    finally:
        server.stop()


def worker_pids(server, connections=24) -> set[int]:
    """The processes answering (each connection lands on some worker)."""
    pids = set()
    for _ in range(connections):
        with httpx.Client(base_url=server.url) as c:
            pids.add(c.get("/api/v1/health").json()["worker"])
    return pids


def test_a_command_queued_on_one_worker_wakes_polls_on_all(cluster):
    assert len(worker_pids(cluster)) >= 2  # the connections do spread over the workers
    polls = 12  # each on its own connection: they spread over the workers too
    results: list = [None] * polls
    started = threading.Barrier(polls + 1)

    def poll(i):
        with httpx.Client(base_url=cluster.url, timeout=60) as c:
            started.wait()
            t0 = time.monotonic()
            r = c.get("/api/v1/gateway/commands", params={"wait": 30}, headers=cluster.gateway)
            results[i] = (r.json(), time.monotonic() - t0)

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(polls)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(1.0)  # the polls are waiting now
    assert all(r is None for r in results)
    r = httpx.post(
        cluster.url + "/api/v1/devices/gm-w1/commands",
        json={"op": "valve.close"},
        headers=cluster.admin,
    )
    assert r.status_code == 201, r.text
    for t in threads:
        t.join(45)
    for commands, seconds in results:
        assert [c["op"] for c in commands] == ["valve.close"]
        # woken: neither the 30 s wait nor the 60 s re-look ran out
        assert seconds < 25


def test_the_same_batch_on_several_workers_is_stored_once(cluster):
    items = [
        (1767225600 + i, meter_reading("gm-w1", 100 + i, 1767225600 + i, 10.0 + i))
        for i in range(20)
    ]
    _, body = batch(items)
    headers = {**cluster.gateway, "Content-Type": "application/cbor"}

    def send(_):
        with httpx.Client(base_url=cluster.url, timeout=60) as c:
            r = c.post("/api/v1/ingest", content=body, headers=headers)
            return r.status_code, r.content

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(send, range(16)))
    assert {status for status, _ in replies} == {200}
    assert len({content for _, content in replies}) == 1  # byte-identical replies
    reply = messages.parse_batch_reply(replies[0][1])
    assert (reply["accepted"], reply["duplicates"]) == (20, 0)

    # the same messages under new batch ids, at once: each (device, seq) once
    def resend(_):
        _, other = batch(items)
        with httpx.Client(base_url=cluster.url, timeout=60) as c:
            r = c.post("/api/v1/ingest", content=other, headers=headers)
            return r.status_code, messages.parse_batch_reply(r.content)

    with ThreadPoolExecutor(8) as pool:
        again = list(pool.map(resend, range(8)))
    assert all(
        status == 200 and r["accepted"] == 0 and r["duplicates"] == 20 for status, r in again
    )
    readings = httpx.get(
        cluster.url + "/api/v1/devices/gm-w1/readings", params={"n": "vol"}, headers=cluster.admin
    ).json()
    assert [r["seq"] for r in readings] == list(range(100, 120))


def test_one_checks_round_at_a_time(app, backend, clock):
    """A worker whose round finds another round running skips it."""
    if backend != "postgresql":
        assert run_checks(app, clock()).get("skipped") is None
        return
    from sqlalchemy import text

    with session_scope(app.state.sessions) as other:
        # another worker is in the middle of its round
        assert other.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": ROUND_LOCK})
        assert run_checks(app, clock()) == {"skipped": 1}
    assert run_checks(app, clock()).get("skipped") is None  # its round is over


def test_health_names_the_worker(client):
    # /health names the answering process: it is what tells workers apart above
    assert client.get("/api/v1/health").json()["worker"] == os.getpid()


def test_a_pooler_without_a_direct_listen_url_is_refused_at_start(tmp_path):
    proc = cli(
        "serve",
        "--port",
        str(free_port()),
        environ=env(
            tmp_path,
            KAPOK_ADMIN_PASSWORD=PASSWORD,
            KAPOK_DB="postgresql://kapok@127.0.0.1:6432/kapok",
            KAPOK_DB_POOLER="pgbouncer",
        ),
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "KAPOK_LISTEN_DB" in lines[0], proc.stderr
