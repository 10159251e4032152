"""Fixtures of the cloud tests: the same tests run on SQLite and on a real
PostgreSQL server.

PostgreSQL: `KAPOK_TEST_POSTGRES_URL` (a server and a role that may create
databases), or else a throwaway server this session starts with Debian's
binaries (initdb + pg_ctl in a temp dir, as the `postgres` user when we are
root). Missing binaries are a failure, never a skip: CI installs them.

Each test gets a fresh database: a copy of a migrated SQLite template file,
or `CREATE DATABASE ... TEMPLATE` on PostgreSQL (both take milliseconds).
"""

import itertools
import os
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kapok.cloud.bootstrap import prepare
from kapok.cloud.core.config import Settings
from kapok.cloud.core.db import make_engine, normalize_url, upgrade
from kapok.cloud.main import create_app

from .helpers import ADMIN_PASSWORD, Clock, World
from .pg import PostgresMissing, PostgresServer

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a PostgreSQL server (its maintenance database)."""
    url = os.environ.get("KAPOK_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        server = PostgresServer()
    except PostgresMissing as e:
        pytest.fail(str(e))
    try:
        yield server.start()
    finally:
        server.stop()


class PostgresDatabases:
    """Creates databases on the server; drops them at the end."""

    def __init__(self, url: str):
        self.url = make_url(normalize_url(url))
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []
        self.counter = itertools.count()
        self.prefix = f"kapok_test_{os.getpid()}_"

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def create(self, template: str | None = None) -> str:
        name = f"{self.prefix}{next(self.counter)}"
        with self.admin.connect() as conn:
            sql = f'CREATE DATABASE "{name}"'
            if template:
                sql += f' TEMPLATE "{template}"'
            conn.execute(text(sql))
        self.names.append(name)
        return name

    def drop_all(self):
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_databases(postgres_url):
    dbs = PostgresDatabases(postgres_url)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def pg_template(pg_databases) -> str:
    name = pg_databases.create()
    engine = make_engine(pg_databases.url_of(name))
    upgrade(engine)
    engine.dispose()
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "kapok.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(request, backend, tmp_path) -> str:
    """A fresh, migrated database of the backend under test."""
    if backend == "sqlite":
        path = tmp_path / "kapok.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    dbs = request.getfixturevalue("pg_databases")
    name = dbs.create(template=request.getfixturevalue("pg_template"))
    return dbs.url_of(name)


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        db=db_url,
        admin_password=ADMIN_PASSWORD,
        scrypt_n=1024,  # cheap hashes for tests; the cost is recorded per hash
        background_checks=False,
        # notifications are sent by the tests' own calls (deliver_due)
        notify_worker=False,
        long_poll_max_seconds=30,
        # KAPOK_DASHBOARD=0 runs the API tests without the dashboard mounted
        dashboard=os.environ.get("KAPOK_DASHBOARD", "1") not in ("0", "false"),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(1767225600.0)  # 2026-01-01 00:00:00 UTC


@pytest.fixture
def app(settings, clock):
    prepare(settings, now=clock())
    return create_app(settings, clock=clock)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture
def world(client, clock) -> World:
    """Two communities (A and B) with a building, unit, gateway and meters
    each, an admin and one manager per community."""
    return World.build(client, clock)
