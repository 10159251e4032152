"""`python -m kapok.cloud` (= `kapok cloud`): a real server in a subprocess."""

import json
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from .pg import free_port

PASSWORD = "first-start-pw"


def env(tmp_path, **extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("KAPOK_")}
    e.update({"KAPOK_DATA_DIR": str(tmp_path / "data"), "KAPOK_SCRYPT_N": "1024", **extra})
    return e


def cli(*args, environ, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "kapok.cloud", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Server:
    def __init__(self, environ, *args):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kapok.cloud",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *args,
            ],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.stdout.read()}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("server did not come up")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def login(self, password=PASSWORD):
        r = httpx.post(
            self.url + "/api/v1/auth/token", data={"username": "admin", "password": password}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_first_start_without_an_admin_password_is_a_one_line_error(tmp_path):
    proc = cli("serve", "--port", str(free_port()), environ=env(tmp_path))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "KAPOK_ADMIN_PASSWORD" in lines[0]
    assert proc.stdout == ""


def test_serve_creates_admin_on_first_start_and_keeps_data(tmp_path):
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    server = Server(env(tmp_path, KAPOK_ADMIN_PASSWORD=PASSWORD), "--db", db).wait_ready()
    try:
        headers = server.login()
        r = httpx.post(server.url + "/api/v1/communities", json={"name": "木棉"}, headers=headers)
        assert r.status_code == 201
        community = r.json()["id"]
        spec = httpx.get(server.url + "/openapi.json").json()
        assert "/api/v1/ingest" in spec["paths"]
    finally:
        server.stop()
    keys = tmp_path / "data" / "keys"
    assert {p.name for p in keys.iterdir()} == {"cloud.key", "firmware.key"}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in keys.iterdir())

    # add-gateway (the database from KAPOK_DB this time) prints the id and the token once
    proc = cli(
        "add-gateway",
        "--name",
        "机房",
        "--community",
        str(community),
        environ=env(tmp_path, KAPOK_DB=db),
    )
    assert proc.returncode == 0, proc.stderr
    gateway = json.loads(proc.stdout)
    assert set(gateway) == {"id", "token"}

    # later starts need no password; the data and the keys are still there
    server = Server(env(tmp_path, KAPOK_DB=db)).wait_ready()
    try:
        headers = server.login()
        gw = {"Authorization": f"Bearer {gateway['token']}"}
        registry = httpx.get(server.url + "/api/v1/gateway/registry", headers=gw)
        assert registry.status_code == 200
        assert registry.json()["gateway"]["community"] == community
        # the long poll of a real server wakes when a command is queued
        server_long_poll_wakes(server, headers, gw, community)
    finally:
        server.stop()


def server_long_poll_wakes(server, headers, gw, community):
    registry = httpx.get(server.url + "/api/v1/gateway/registry", headers=gw).json()
    body = {
        "id": "gm-cli1",
        "kind": "gas-meter",
        "gateway": registry["gateway"]["id"],
        "public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    }
    assert httpx.post(server.url + "/api/v1/devices", json=body, headers=headers).status_code == 201
    result = {}

    def wait():
        started = time.monotonic()
        result["commands"] = httpx.get(
            server.url + "/api/v1/gateway/commands", params={"wait": 25}, headers=gw, timeout=40
        ).json()
        result["seconds"] = time.monotonic() - started

    poller = threading.Thread(target=wait)
    poller.start()
    time.sleep(0.5)
    r = httpx.post(
        server.url + "/api/v1/devices/gm-cli1/commands", json={"op": "valve.close"}, headers=headers
    )
    assert r.status_code == 201
    poller.join(30)
    assert [c["op"] for c in result["commands"]] == ["valve.close"]
    assert result["seconds"] < 20


def test_serve_on_postgresql(tmp_path, pg_databases):
    # the plain URL an operator writes; Kapok picks the psycopg 3 driver itself
    url = pg_databases.url_of(pg_databases.create()).replace(
        "postgresql+psycopg://", "postgresql://"
    )
    server = Server(env(tmp_path, KAPOK_ADMIN_PASSWORD=PASSWORD), "--db", url).wait_ready()
    try:
        headers = server.login()
        r = httpx.post(server.url + "/api/v1/communities", json={"name": "pg"}, headers=headers)
        assert r.status_code == 201
    finally:
        server.stop()


def test_rotate_key_prints_the_new_public_key(tmp_path):
    environ = env(
        tmp_path, KAPOK_ADMIN_PASSWORD=PASSWORD, KAPOK_DB=f"sqlite:///{tmp_path / 'c.db'}"
    )
    first = cli("rotate-key", "cloud", environ=environ)
    assert first.returncode == 0, first.stderr
    second = cli("rotate-key", "cloud", environ=environ)
    assert len(first.stdout.strip()) == 64 and first.stdout != second.stdout
    assert cli("rotate-key", "nonsense", environ=environ).returncode != 0


@pytest.mark.parametrize("db", ["sqlite:///{tmp}/a-file/x.db", "postgresql://nobody@127.0.0.1:1/x"])
def test_an_unusable_database_is_a_clear_error(tmp_path, db):
    (tmp_path / "a-file").write_text("not a folder")
    db = db.format(tmp=tmp_path)
    proc = cli(
        "serve",
        "--port",
        str(free_port()),
        "--db",
        db,
        environ=env(tmp_path, KAPOK_ADMIN_PASSWORD=PASSWORD),
    )
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "kapok cloud:" in proc.stderr
