"""Fixtures of the end-to-end tests: one real PostgreSQL server for the
session (Debian's binaries, a cluster in a temp dir, run as the `postgres`
user when we are root; or KAPOK_TEST_POSTGRES_URL), and per test module a
fresh database with a cloud, a gateway and its agent on it; release
bundles built once with `kapok fw build`; a real browser."""

import itertools
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kapok.cloud.core.db import normalize_url
from tests.cloud.pg import PostgresMissing, PostgresServer

from .helpers import CHROMIUM, CHROMIUM_ARGS, Stack, kapok

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    """URL of the PostgreSQL server's maintenance database."""
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


@pytest.fixture(scope="module")
def database(postgres):
    """A fresh database for one test module; dropped afterwards."""
    url = make_url(normalize_url(postgres))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"kapok_e2e_{os.getpid()}_{next(_names)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def stack(database, tmp_path_factory):
    """`kapok cloud serve` on that database, a community, a gateway and
    `kapok agent run` for it."""
    s = Stack(tmp_path_factory.mktemp("stack"), database)
    try:
        s.set_up()
        yield s
    finally:
        s.tear_down()


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Release bundles of the meter app for the virtual board, versions 1
    and 2, built by `kapok fw build`."""
    out = tmp_path_factory.mktemp("dist")
    built = {}
    for version in ("1", "2"):
        kapok(
            "fw",
            "build",
            "--board",
            "virtual",
            "--app",
            "meter",
            "--version",
            version,
            "--out",
            out,
        )
        built[version] = out / f"kapok-virtual-meter-{version}.kpk"
    return built


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed at /usr/bin/chromium (apt install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, stack):
    """A logged-in admin's browser tab on the stack's dashboard, in English."""
    from .helpers import ADMIN_PASSWORD

    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(30000)
    tab = context.new_page()
    tab.goto(stack.url + "/login?lang=en")
    tab.fill("input[name=username]", "admin")
    tab.fill("input[name=password]", ADMIN_PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda url: "/login" not in url)
    try:
        yield tab
    finally:
        context.close()
