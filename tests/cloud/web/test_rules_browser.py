"""The rules page in a real browser (Debian's chromium driven by
Playwright) against a real `kapok cloud serve`: a manager reads the
GB 5749-2022 defaults in Chinese, raises the turbidity limit, sees the new
version with its change and the thresholds.set going to the water-quality
station, follows its delivery, reads it all in English, gets a wrong value
back with the reason, and the page fits a phone."""

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from ..helpers import public_of
from .test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    Site,
    cloud,  # noqa: F401 - the fixture
    no_horizontal_overflow,
)


def seed(base: str) -> Site:
    site = Site(base)
    site.community = site.ok("POST", "/api/v1/communities", json={"name": "Kapok Gardens"})["id"]
    gw = site.ok(
        "POST", "/api/v1/gateways", json={"name": "East gate", "community": site.community}
    )
    site.gateway = {"Authorization": f"Bearer {gw['token']}"}
    site.station = "wq-0001"
    site.ok(
        "POST",
        "/api/v1/devices",
        json={
            "id": site.station,
            "kind": "water-quality",
            "gateway": gw["id"],
            "public_key": public_of(site.station).hex(),
        },
    )
    return site


def test_a_manager_changes_the_rules_in_a_real_browser(cloud, tmp_path):  # noqa: F811
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is needed at /usr/bin/chromium (apt install chromium)")
    site = seed(cloud)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            context.set_default_timeout(20000)
            page = context.new_page()
            page.goto(f"{cloud}/login?next=/communities/{site.community}")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

            # the defaults, marked, with their source
            page.click("#rules-link")
            expect(page.locator("h1")).to_have_text("规则与阈值")
            expect(page.locator("#rules-version")).to_have_text("默认规则（从未修改）")
            turb = page.locator("#current-turb")
            expect(turb).to_contain_text("≤ 1")
            expect(turb).to_contain_text("默认 · GB 5749-2022 Table 1")

            # raise the turbidity limit (a small supply: 3 NTU)
            page.fill("input[name=turb_high]", "3")
            page.fill("input[name=note]", "小型集中式供水")
            page.click("#rules-form button[type=submit]")
            expect(page.locator("#rules-version")).to_contain_text("第 1 版，admin")
            expect(turb).to_contain_text("≤ 3")
            expect(turb).to_contain_text("已修改")
            version = page.locator("#version-1")
            expect(version).to_contain_text("quality.turb")
            expect(version).to_contain_text("≤ 1")
            expect(version).to_contain_text("小型集中式供水")
            delivery = page.locator(f"#delivery-{site.station}")
            expect(delivery).to_contain_text("排队中")
            expect(delivery).to_contain_text("turb ≤ 3")

            # the gateway takes it to the station
            polled = site.ok("GET", "/api/v1/gateway/commands", headers=site.gateway)
            (command,) = [c for c in polled if c["op"] == "thresholds.set"]
            site.ok(
                "POST",
                f"/api/v1/gateway/commands/{command['id']}/status",
                json={"state": "delivered"},
                headers=site.gateway,
            )
            page.reload()
            expect(delivery).to_contain_text("已送达")

            # in English
            page.click("a.lang[hreflang=en]")
            expect(page.locator("h1")).to_have_text("Rules and thresholds")
            expect(page.locator("#rules-version")).to_contain_text("Version 1, changed by admin")
            expect(delivery).to_contain_text("Delivered")

            # a wrong value: the form comes back as typed, with the reason
            page.fill("input[name=ph_low]", "9")
            page.click("#rules-form button[type=submit]")
            expect(page.locator("#rules-errors")).to_contain_text(
                "pH: the lower limit 9.0 is above the upper limit 8.5"
            )
            expect(page.locator("input[name=ph_low]")).to_have_value("9")
            rules = site.ok("GET", f"/api/v1/communities/{site.community}/rules")
            assert rules["version"] == 1 and rules["rules"]["quality"]["ph"] == [6.5, 8.5]
            context.close()

            # a phone: the page fits the screen's width
            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
            )
            phone.set_default_timeout(20000)
            page = phone.new_page()
            page.goto(f"{cloud}/login?next=/communities/{site.community}/rules")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("规则与阈值")
            assert no_horizontal_overflow(page)
            page.screenshot(path=str(tmp_path / "rules-phone.png"), full_page=True)
            phone.close()
        finally:
            browser.close()
