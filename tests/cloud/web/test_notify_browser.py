"""The notification pages in a real browser (Debian's chromium driven by
Playwright) against a real `kapok cloud serve`, on a phone in Chinese: a
manager adds an e-mail channel for the person on duty, sends it a test
message and finds it in the log, puts it on the weekday roster and sees it
on duty; then the same pages in English at a desk. Nothing overflows the
phone's width and no script fails."""

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from .test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    cloud,  # noqa: F401 - the fixture
    no_horizontal_overflow,
    seed,
)
from .test_work_orders_browser import login


def test_a_manager_sets_up_alarm_notifications_on_a_phone(
    cloud,  # noqa: F811 - the fixture
    tmp_path,
):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is needed at /usr/bin/chromium (apt install chromium)")
    site = seed(cloud)
    base = f"/communities/{site.community}"
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
            )
            phone.set_default_timeout(20000)
            page = phone.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            login(page, cloud, "admin", PASSWORD, f"{base}/channels")
            expect(page.locator("h1")).to_have_text("通知渠道")
            expect(page.locator("#no-channels")).to_be_visible()
            assert no_horizontal_overflow(page)

            page.click("#add-email summary")
            form = page.locator("#add-email form")
            form.locator("input[name=target]").fill("duty@wy.example")
            form.locator("input[name=name]").fill("值班邮箱")
            form.locator("select[name=audience]").select_option("duty")
            form.locator("button[type=submit]").click()
            card = page.locator("li.channel").first
            expect(card).to_contain_text("值班邮箱")
            expect(card).to_contain_text("duty@wy.example")
            expect(card).to_contain_text("值班人员")
            assert no_horizontal_overflow(page)

            card.locator("form[action$='/test'] button").click()
            expect(page.locator("h1")).to_have_text("通知记录")
            expect(page.locator("table")).to_contain_text("测试消息")
            expect(page.locator("table")).to_contain_text("值班邮箱")
            assert no_horizontal_overflow(page)

            page.click("#tab-roster")
            expect(page.locator("h1")).to_have_text("值班表")
            expect(page.locator("#nobody")).to_be_visible()
            weekly = page.locator("#add-weekly")
            for day in range(7):
                weekly.locator(f"input[name=weekdays][value='{day}']").check()
            weekly.locator("input[name=start]").fill("00:00")
            weekly.locator("input[name=end]").fill("00:00")
            weekly.locator("input[name=note]").fill("物业值班")
            weekly.locator("button[type=submit]").click()
            expect(page.locator("#on-duty")).to_contain_text("值班邮箱")
            expect(page.locator("#weekly-table")).to_contain_text("全天")
            expect(page.locator("#weekly-table")).to_contain_text("物业值班")
            assert no_horizontal_overflow(page)
            page.screenshot(path=str(tmp_path / "roster-phone.png"), full_page=True)
            phone.close()

            desk = browser.new_context(viewport={"width": 1366, "height": 900})
            desk.set_default_timeout(20000)
            page = desk.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            login(page, cloud, "admin", PASSWORD, f"{base}/roster?lang=en")
            expect(page.locator("h1")).to_have_text("Duty roster")
            expect(page.locator("#on-duty")).to_contain_text("On duty now")
            page.click("#tab-log")
            expect(page.locator("h1")).to_have_text("Notification log")
            expect(page.locator("table")).to_contain_text("Test message")
            assert no_horizontal_overflow(page)
            desk.close()
        finally:
            browser.close()
    (channel,) = site.ok("GET", "/api/v1/channels", params={"community": site.community})
    assert (channel["kind"], channel["target"], channel["audience"]) == (
        "email",
        "duty@wy.example",
        "duty",
    )
    on_duty = site.ok("GET", f"/api/v1/communities/{site.community}/on-duty")
    assert [c["id"] for c in on_duty["channels"]] == [channel["id"]]
    assert not errors, errors
