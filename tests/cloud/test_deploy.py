"""The deployment of deploy/cloud/ with the real parts: HAProxy in front of
two `kapok cloud serve` processes, PgBouncer in transaction mode between
them and PostgreSQL, the LISTEN for command wake-ups straight to the server.

The shipped configuration files are used as they are, except for the
addresses (free ports on 127.0.0.1), file paths and the authentication
method (the test server trusts local connections).
"""

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from kapok.protocols import messages

from .helpers import batch, meter_reading, public_of
from .pg import free_port
from .test_cli import PASSWORD, Server, env

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "cloud"


def run_as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


class Daemon:
    """A foreground daemon process, stopped at the end."""

    def __init__(self, cmd: list[str], log: Path):
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def wait_port(self, port: int, timeout: float = 15) -> "Daemon":
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited: {self.log.read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return self
            time.sleep(0.05)
        raise AssertionError(f"port {port} never opened: {self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def pgbouncer_config(folder: Path, *, port: int, pg_port: int, database: str) -> Path:
    text = (DEPLOY / "pgbouncer.ini").read_text()
    text = re.sub(
        r"(?m)^kapok = .*$", f"kapok = host=127.0.0.1 port={pg_port} dbname={database}", text
    )
    text = re.sub(r"(?m)^listen_port = .*$", f"listen_port = {port}", text)
    text = re.sub(r"(?m)^auth_type = .*$", "auth_type = trust", text)
    text = re.sub(r"(?m)^auth_file = .*$", f"auth_file = {folder / 'userlist.txt'}", text)
    text = re.sub(r"(?m)^logfile = .*$", f"logfile = {folder / 'pgbouncer.log'}", text)
    text = re.sub(r"(?m)^pidfile = .*$", f"pidfile = {folder / 'pgbouncer.pid'}", text)
    assert "pool_mode = transaction" in text
    (folder / "userlist.txt").write_text('"postgres" ""\n')
    path = folder / "pgbouncer.ini"
    path.write_text(text)
    return path


def haproxy_config(folder: Path, *, port: int, servers: list[int]) -> Path:
    text = (DEPLOY / "haproxy.cfg").read_text()
    text = re.sub(r"(?m)^\s*log .*$\n", "", text)
    text = re.sub(r"(?m)^\s*bind .*$\n", "", text)  # TLS and :80: one plain port here
    text = re.sub(r"(?m)^\s*http-request redirect .*$\n", "", text)
    text = text.replace("frontend kapok\n", f"frontend kapok\n    bind 127.0.0.1:{port}\n")
    for i, server in enumerate(servers, 1):
        text = re.sub(
            rf"(?m)^(\s*server cloud{i}) \S+ check", rf"\1 127.0.0.1:{server} check", text
        )
    assert text.count(" check\n") == len(servers)
    path = folder / "haproxy.cfg"
    path.write_text(text)
    return path


@pytest.fixture
def stack(tmp_path, pg_databases):
    for tool in ("haproxy", "pgbouncer"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.fail(f"{tool} is not installed (Debian package {tool}; .ci/run installs it)")
    database = pg_databases.create()
    direct = pg_databases.url_of(database)
    pg_port = int(re.search(r":(\d+)/", direct).group(1))
    # PgBouncer runs as `postgres` (it refuses root): a folder it can reach
    folder = Path(tempfile.mkdtemp(prefix="kapok-deploy-"))
    chown_postgres(folder)
    daemons = []
    servers: list[Server] = []
    try:
        bouncer_port = free_port()
        ini = pgbouncer_config(folder, port=bouncer_port, pg_port=pg_port, database=database)
        for f in folder.iterdir():
            chown_postgres(f)
        pgbouncer = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        daemons.append(
            Daemon(run_as_postgres([pgbouncer, str(ini)]), tmp_path / "pgbouncer.out").wait_port(
                bouncer_port
            )
        )
        environ = env(
            tmp_path,
            KAPOK_ADMIN_PASSWORD=PASSWORD,
            KAPOK_DB=f"postgresql://postgres@127.0.0.1:{bouncer_port}/kapok",
            KAPOK_DB_POOLER="pgbouncer",
            KAPOK_LISTEN_DB=direct,
            KAPOK_LONG_POLL_RECHECK_SECONDS="60",  # only a notification wakes a poll
        )
        for _ in range(2):  # one after the other: the first one migrates
            servers.append(Server(environ).wait_ready(timeout=60))
        lb_port = free_port()
        cfg = haproxy_config(folder, port=lb_port, servers=[s.port for s in servers])
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        check = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        daemons.append(
            Daemon([haproxy, "-db", "-f", str(cfg)], tmp_path / "haproxy.out").wait_port(lb_port)
        )
        yield f"http://127.0.0.1:{lb_port}", servers
    finally:
        for d in reversed(daemons):
            d.stop()
        for s in servers:
            s.stop()
        shutil.rmtree(folder, ignore_errors=True)


def wait_both_up(url: str, timeout: float = 15) -> set[int]:
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while time.monotonic() < deadline and len(seen) < 2:
        with httpx.Client(base_url=url) as c:  # a new connection each time
            r = c.get("/api/v1/health")
            if r.status_code == 200:
                seen.add(r.json()["worker"])
        time.sleep(0.05)
    return seen


def test_two_processes_behind_haproxy_on_pgbouncer(stack):
    url, servers = stack
    assert wait_both_up(url) == {s.proc.pid for s in servers}  # both serve, health-checked
    r = httpx.post(url + "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    community = httpx.post(url + "/api/v1/communities", json={"name": "部署"}, headers=admin)
    assert community.status_code == 201, community.text
    gw = httpx.post(
        url + "/api/v1/gateways",
        json={"name": "gw", "community": community.json()["id"]},
        headers=admin,
    ).json()
    gateway = {"Authorization": f"Bearer {gw['token']}"}
    device = {"id": "gm-d1", "kind": "gas-meter", "gateway": gw["id"]}
    device["public_key"] = public_of("gm-d1").hex()
    assert httpx.post(url + "/api/v1/devices", json=device, headers=admin).status_code == 201

    # long polls spread over both processes wake when a command is queued on either
    results = []

    def poll():
        with httpx.Client(base_url=url, timeout=60) as c:
            t0 = time.monotonic()
            r = c.get("/api/v1/gateway/commands", params={"wait": 30}, headers=gateway)
            results.append((r.status_code, r.json(), time.monotonic() - t0))

    polls = [threading.Thread(target=poll) for _ in range(6)]
    for t in polls:
        t.start()
    time.sleep(1.0)
    r = httpx.post(
        url + "/api/v1/devices/gm-d1/commands", json={"op": "valve.close"}, headers=admin
    )
    assert r.status_code == 201, r.text
    for t in polls:
        t.join(45)
    assert len(results) == 6
    for status, commands, seconds in results:
        assert status == 200 and [c["op"] for c in commands] == ["valve.close"]
        assert seconds < 25  # woken, not timed out

    # ingest through the whole stack; the pooled connections never prepare
    t0 = 1767225600
    items = [(t0 + i, meter_reading("gm-d1", 1 + i, t0 + i, 5.0 + i)) for i in range(30)]
    _, body = batch(items)
    cbor = {**gateway, "Content-Type": "application/cbor"}
    for _ in range(3):  # the same batch again: the same reply, stored once
        r = httpx.post(url + "/api/v1/ingest", content=body, headers=cbor, timeout=30)
        assert r.status_code == 200, r.text
        assert messages.parse_batch_reply(r.content)["accepted"] == 30

    # many workers' transactions interleaved on the pooled server connections:
    # a statement prepared on one would be missing on the next (PgBouncer 1.18)
    def ingest_and_read(k):
        codes = []
        with httpx.Client(base_url=url, timeout=60) as c:
            for j in range(8):
                seq = 100 + k * 8 + j
                _, body = batch([(t0 + seq, meter_reading("gm-d1", seq, t0 + seq, 50.0 + seq))])
                codes.append(c.post("/api/v1/ingest", content=body, headers=cbor).status_code)
                got = c.get("/api/v1/devices/gm-d1/readings", params={"n": "vol"}, headers=admin)
                codes.append(got.status_code)
        return codes

    with ThreadPoolExecutor(8) as pool:
        codes = [c for result in pool.map(ingest_and_read, range(8)) for c in result]
    assert set(codes) == {200}, sorted(set(codes))
    readings = httpx.get(
        url + "/api/v1/devices/gm-d1/readings", params={"n": "vol"}, headers=admin
    ).json()
    assert [x["seq"] for x in readings] == list(range(1, 31)) + list(range(100, 164))

    # one process dies: HAProxy's health check takes it out, nothing fails after
    servers[0].proc.send_signal(signal.SIGKILL)
    servers[0].proc.wait(10)
    time.sleep(3)  # two failed checks at 1 s
    for _ in range(20):
        with httpx.Client(base_url=url) as c:
            r = c.get("/api/v1/health")
            assert r.status_code == 200 and r.json()["worker"] == servers[1].proc.pid
    got = httpx.get(url + "/api/v1/devices/gm-d1", headers=admin)
    assert got.status_code == 200
