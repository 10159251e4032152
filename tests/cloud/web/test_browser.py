"""The dashboard in a real browser (Debian's chromium driven by Playwright)
against a real `kapok cloud serve`, fed through ingest as a gateway feeds
it: log in (Chinese), see the alarm count and an alarm appear, the chart
drawn by uPlot, switch to English, acknowledge an alarm, close a valve with
confirmation and follow it to "confirmed by reading", download a bill and
read its rows, and use it all on a phone-sized screen.

Set KAPOK_UPDATE_SCREENSHOT=1 to write docs/dashboard.png from this run.
"""

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from kapok.protocols import messages, senml

from ..helpers import batch, public_of, uplink

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-admin-pw"
SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "dashboard.png"
SHANGHAI = ZoneInfo("Asia/Shanghai")
STEP = 3 * 3600  # a reading every 3 hours


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(base: str, proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kapok cloud serve exited with {proc.returncode}")
        try:
            if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base} did not answer within {timeout} s")


@pytest.fixture
def cloud(tmp_path):
    """`kapok cloud serve` on a free port with a fresh SQLite database."""
    port = free_port()
    env = {
        **os.environ,
        "KAPOK_DATA_DIR": str(tmp_path / "data"),
        "KAPOK_ADMIN_PASSWORD": PASSWORD,
        "KAPOK_SCRYPT_N": "1024",
        "KAPOK_DB": "",
    }
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "kapok.cloud", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class Site:
    """What the seeding made: ids and the gateway's credentials."""

    def __init__(self, base: str):
        self.http = httpx.Client(base_url=base, timeout=30)
        token = self.http.post(
            "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
        ).json()["access_token"]
        self.admin = {"Authorization": f"Bearer {token}"}

    def ok(self, method, url, **kwargs):
        r = self.http.request(method, url, headers=kwargs.pop("headers", self.admin), **kwargs)
        assert r.is_success, f"{method} {url}: {r.status_code} {r.text}"
        return r.json() if "json" in r.headers.get("content-type", "") else r

    def ingest(self, items):
        _, body = batch(items)
        r = self.http.post(
            "/api/v1/ingest",
            content=body,
            headers={**self.gateway, "Content-Type": "application/cbor"},
        )
        assert r.status_code == 200, r.text
        reply = messages.parse_batch_reply(r.content)
        assert not reply["rejects"], reply


def month_start(t: float, back: int = 0) -> float:
    d = datetime.fromtimestamp(t, SHANGHAI)
    year, month = d.year, d.month - back
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=SHANGHAI).timestamp()


def seed(base: str) -> Site:
    """A community with two buildings, a gas meter with a valve, a water
    meter, 1.5 months of readings through ingest (one lost), a gas leak."""
    site = Site(base)
    now = time.time()
    site.community = site.ok("POST", "/api/v1/communities", json={"name": "Kapok Gardens"})["id"]
    units = {}
    for building in ("Block 1", "Block 2"):
        b = site.ok(
            "POST", "/api/v1/buildings", json={"community": site.community, "name": building}
        )
        for name in ("101", "102", "201"):
            u = site.ok("POST", "/api/v1/units", json={"building": b["id"], "name": name})
            units[building, name] = u["id"]
    gw = site.ok(
        "POST", "/api/v1/gateways", json={"name": "East gate", "community": site.community}
    )
    site.gateway = {"Authorization": f"Bearer {gw['token']}"}
    start = month_start(now, back=1) - 86400
    site.gas, site.water = "gm-0001a3", "wm-0002b7"
    for device, kind, unit in (
        (site.gas, "gas-meter", ("Block 1", "101")),
        (site.water, "water-meter", ("Block 1", "102")),
    ):
        site.ok(
            "POST",
            "/api/v1/devices",
            json={
                "id": device,
                "kind": kind,
                "gateway": gw["id"],
                "unit": units[unit],
                "public_key": public_of(device).hex(),
                "board": "esp32",
                "installed_at": start - 86400,
            },
        )
    items, seq, t = [], 0, start
    while t < now - 600:
        seq += 1
        hours = (t - start) / 3600
        if seq != 40:  # one message lost on the way
            gas = senml.compact(3, [1200.0 + 0.05 * hours, True, 3.6, -92])
            items.append((int(t), uplink(site.gas, seq, int(t), compact=gas)))
            water = senml.compact(1, [300.0 + 0.02 * hours, 3.5, -95])
            items.append((int(t), uplink(site.water, seq, int(t), compact=water)))
        t += STEP
    site.seq = seq + 1
    leak = [("gas.leak", int(now) - 300, 21.5)]
    gas = senml.compact(3, [1200.0 + 0.05 * (now - start) / 3600, True, 3.6, -92])
    items.append(
        (int(now) - 300, uplink(site.gas, site.seq, int(now) - 300, compact=gas, events=leak))
    )
    for i in range(0, len(items), 200):
        site.ingest(items[i : i + 200])
    return site


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_a_manager_s_morning_in_a_real_browser(cloud, tmp_path):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is needed at /usr/bin/chromium (apt install chromium)")
    site = seed(cloud)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, accept_downloads=True
            )
            context.set_default_timeout(20000)
            page = context.new_page()

            # log in: the Chinese UI is the default
            page.goto(cloud + "/devices/" + site.gas)
            expect(page).to_have_url(f"{cloud}/login?next=/devices/{site.gas}")
            expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page).to_have_url(f"{cloud}/devices/{site.gas}")

            # the chart: uPlot drew the readings on its canvas
            canvas = page.locator(".uplot canvas")
            expect(canvas).to_be_visible()
            box = canvas.bounding_box()
            assert box["width"] > 300 and box["height"] > 150
            painted = page.evaluate(
                """() => { const c = document.querySelector('.uplot canvas');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
            )
            assert painted > 1000
            expect(page.locator("table.history tbody tr").first).to_contain_text("m³")

            # the overview: the alarm count, and a new alarm appears by itself
            page.goto(f"{cloud}/communities/{site.community}")
            expect(page.locator("#alarms-open")).to_have_text("1")
            badge = page.locator('[data-live="open"]')
            expect(badge).to_have_text("1")
            t = int(time.time())
            water = senml.compact(1, [320.0, 3.5, -95])
            site.ingest(
                [(t, uplink(site.water, site.seq, t, compact=water, events=[("water.leak", t)]))]
            )
            expect(badge).to_have_text("2", timeout=30000)  # the page polls every 10 s

            # English, and the layout captured for the documentation
            page.click("a.lang[hreflang=en]")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator("nav.nav")).to_contain_text("Alarms")
            page.reload()
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("KAPOK_UPDATE_SCREENSHOT"):
                shutil.copyfile(shot, SCREENSHOT)

            # acknowledge the gas leak
            page.click("nav.nav >> text=Alarms")
            row = page.locator("tr", has_text="Gas leak")
            row.locator("button", has_text="Acknowledge").click()
            expect(page.locator("tr", has_text="Gas leak")).to_contain_text("Acknowledged by admin")

            # close the valve: asked first, then signed, delivered, done, confirmed
            page.goto(f"{cloud}/devices/{site.gas}")
            expect(page.locator(".valve-state")).to_have_text("Open")
            page.click("text=Close valve")
            expect(page.locator("h1")).to_have_text("Confirm valve command")
            assert site.ok("GET", f"/api/v1/devices/{site.gas}/commands") == []
            page.click("#confirm")
            expect(page.locator("h1")).to_contain_text("Close valve")
            expect(page.locator("p .state")).to_have_text("Queued")
            (command,) = site.ok("GET", "/api/v1/gateway/commands", headers=site.gateway)
            for state in ("sent", "delivered"):
                site.ok(
                    "POST",
                    f"/api/v1/gateway/commands/{command['id']}/status",
                    json={"state": state, "at": time.time()},
                    headers=site.gateway,
                )
            t = int(time.time())
            gas = senml.compact(3, [1300.0, False, 3.6, -92])
            site.ingest(
                [
                    (
                        t,
                        uplink(
                            site.gas,
                            site.seq + 1,
                            t,
                            compact=gas,
                            results=[(command["cmd_id"], 0, None)],
                        ),
                    )
                ]
            )
            expect(page.locator(".state-confirmed").first).to_be_visible(timeout=20000)  # refreshes
            expect(page.locator("p .state").first).to_have_text("Done")

            # download last month's bill (CSV, English headers) and read it
            page.click("nav.nav >> text=Billing")
            with page.expect_download() as download:
                page.click("text=CSV (English)")
            path = download.value.path()
            rows = list(csv.reader(io.StringIO(Path(path).read_bytes().decode("utf-8-sig"))))
            header = rows[0]
            assert header[:3] == ["Month", "Building", "Unit"]
            gas_row = next(r for r in rows[1:] if site.gas in r)
            assert gas_row[header.index("Status")] == "ACTUAL"
            assert float(gas_row[header.index("Consumption")]) > 30  # ~0.05 m³/h × a month
            assert gas_row[header.index("End reading COSE (hex)")]  # re-verifiable
            context.close()

            # a phone: every page fits the screen's width (tables scroll inside)
            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
            )
            phone.set_default_timeout(20000)
            page = phone.new_page()
            page.goto(cloud + "/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
            for url in (
                "/",
                f"/communities/{site.community}",
                f"/devices/{site.gas}",
                "/alarms?state=all",
                "/billing",
                "/admin/devices",
                "/admin/gateways",
                "/firmware",
                "/admin/users",
            ):
                page.goto(cloud + url)
                assert no_horizontal_overflow(page), url
            page.goto(f"{cloud}/devices/{site.gas}")
            expect(page.locator(".uplot canvas")).to_be_visible()
            assert page.locator(".uplot canvas").bounding_box()["width"] <= 390
            page.goto(f"{cloud}/communities/{site.community}")
            page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
            phone.close()
        finally:
            browser.close()
