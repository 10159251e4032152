"""Work orders in a real browser (Debian's chromium driven by Playwright)
against a real `kapok cloud serve`: a manager at a desk turns the gas leak
into a work order for a technician; the technician, on a phone, in
Chinese, starts it, writes a note, takes a photo and finishes it; the alarm
resolves, the order reads right in English and the pages fit the phone."""

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from .conftest import PNG
from .test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    cloud,  # noqa: F401 - the fixture
    no_horizontal_overflow,
    seed,
)

TECH_PASSWORD = "browser-tech-pw"


def login(page, base: str, username: str, password: str, next_url: str = "/") -> None:
    page.goto(f"{base}/login?next={next_url}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_a_gas_leak_becomes_a_work_order_a_technician_closes_on_a_phone(
    cloud,  # noqa: F811 - the fixture
    tmp_path,
):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is needed at /usr/bin/chromium (apt install chromium)")
    site = seed(cloud)
    tech = site.ok(
        "POST",
        "/api/v1/users",
        json={
            "username": "li.gong",
            "password": TECH_PASSWORD,
            "role": "technician",
            "communities": [site.community],
        },
    )
    (alarm,) = site.ok("GET", "/api/v1/alarms", params={"state": "open"})
    photo = tmp_path / "valve.png"
    photo.write_bytes(PNG)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            desk = browser.new_context(viewport={"width": 1366, "height": 900})
            desk.set_default_timeout(20000)
            page = desk.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            login(page, cloud, "admin", PASSWORD, "/alarms")
            page.click(f"#alarm-{alarm['id']} a[href='/work-orders/new?alarm={alarm['id']}']")
            expect(page.locator("h1")).to_have_text("新建工单")
            page.select_option("select[name=assignee]", str(tech["id"]))
            page.fill("textarea[name=description]", "厨房燃气报警，请上门检查")
            page.click("#new-order button[type=submit]")
            expect(page.locator("h1")).to_contain_text("工单 #")
            expect(page.locator(".figures")).to_contain_text("已派单")
            expect(page.locator(".figures")).to_contain_text("li.gong")
            order = page.url.rsplit("/", 1)[1]
            desk.close()

            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
            )
            phone.set_default_timeout(20000)
            page = phone.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            login(page, cloud, "li.gong", TECH_PASSWORD)
            expect(page.locator("h1")).to_have_text("我的工单")
            card = page.locator(f"#wo-{order}")
            expect(card).to_contain_text("已派单")
            expect(card).to_contain_text("Block 1 · 101")
            assert no_horizontal_overflow(page)
            card.locator("a").click()
            page.click("text=开始处理")
            expect(page.locator(".figures")).to_contain_text("处理中")
            page.fill("#note-form textarea", "关闭表前阀，更换灶具软管")
            page.click("#note-form button[type=submit]")
            page.set_input_files("#photo-form input[type=file]", str(photo))
            page.fill("#photo-form input[name=caption]", "新软管")
            page.click("#photo-form button[type=submit]")
            expect(page.locator("ol.timeline img.photo")).to_have_count(1)
            assert page.evaluate(
                "() => document.querySelector('ol.timeline img.photo').naturalWidth === 4"
            )
            page.fill("#done-form textarea[name=note]", "复测无泄漏")
            page.click("#done-form button[type=submit]")
            expect(page.locator(".figures")).to_contain_text("已完成")
            timeline = page.locator("ol.timeline")
            for text in ("创建", "派单", "开始处理", "关闭表前阀，更换灶具软管", "新软管", "完工"):
                expect(timeline).to_contain_text(text)
            assert no_horizontal_overflow(page)
            page.screenshot(path=str(tmp_path / "work-order-phone.png"), full_page=True)
            page.click("a.lang[hreflang=en]")
            expect(page.locator(".figures")).to_contain_text("Done")
            expect(timeline).to_contain_text("Work started")
            assert no_horizontal_overflow(page)
            phone.close()

            # afterwards, at the desk: who did what, on the audit page
            desk = browser.new_context(
                viewport={"width": 1366, "height": 900}, accept_downloads=True
            )
            desk.set_default_timeout(20000)
            page = desk.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            login(page, cloud, "admin", PASSWORD, "/audit?lang=zh-CN")
            expect(page.locator("h1")).to_have_text("审计日志")
            page.select_option("select[name=kind]", "work_order")
            page.click("form.filters button[type=submit]")
            table = page.locator("table.audit")
            for text in ("创建工单", "派单", "开始处理", "工单备注", "工单照片", "工单完工"):
                expect(table).to_contain_text(text)
            expect(table).to_contain_text("li.gong")
            expect(table).not_to_contain_text("alarm.ack")  # the kind filter holds
            page.click("a.lang[hreflang=en]")
            expect(page.locator("h1")).to_have_text("Audit log")
            expect(table).to_contain_text("Work order done")
            page.select_option("select[name=kind]", "alarm")
            page.click("form.filters button[type=submit]")
            expect(table).to_contain_text("Alarm resolved")
            with page.expect_download() as download:
                page.click(f"a[href='/audit/chain.csv?community={site.community}']")
            chain = Path(download.value.path()).read_text(encoding="utf-8")
            assert "work_order.done" in chain and "li.gong" in chain
            desk.close()
        finally:
            browser.close()
    resolved = site.ok("GET", f"/api/v1/alarms/{alarm['id']}")
    assert resolved["state"] == "resolved" and resolved["resolved_by"] == "li.gong"
    assert "复测无泄漏" in resolved["note"]
    assert not errors, errors
