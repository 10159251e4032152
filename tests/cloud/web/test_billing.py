"""Billing: the month per unit and utility with its flags, and the CSV /
XLSX downloads in Chinese and English through the dashboard session."""

import csv
import io

from openpyxl import load_workbook

from ..helpers import meter_reading
from .helpers import T0

DAY = 86400


def _a_month_of_readings(world):
    """The gas meter of A read every day of December 2025 (Shanghai)."""
    a = world.a
    start = T0 - 31 * DAY - 8 * 3600  # 2025-12-01 00:00 +08:00
    world.ok("PATCH", f"/api/v1/devices/{a.gas}", json={"installed_at": start - 30 * DAY})
    items = [
        (start + d * DAY, meter_reading(a.gas, d + 1, start + d * DAY, 100.0 + 2 * d))
        for d in range(32)
    ]
    world.ingest(a, items)


def test_the_bill_page_shows_each_unit_with_its_flags(manager_a, world):
    _a_month_of_readings(world)
    page = manager_a.get("/billing", params={"month": "2025-12"}).text
    assert 'value="2025-12"' in page
    assert "1栋" in page and world.a.gas in page
    assert "62.000" in page and "实抄" in page  # 31 days × 2 m³, boundaries read on time
    assert "/billing/export?community=" in page


def test_the_default_month_is_the_last_one(manager_a, world):
    assert 'value="2025-12"' in manager_a.get("/billing").text  # now is 2026-01-01


def test_csv_downloads_in_both_languages_carry_the_rows(manager_a, world):
    _a_month_of_readings(world)
    params = {"community": world.a.community, "month": "2025-12", "format": "csv"}
    zh = manager_a.get("/billing/export", params={**params, "lang": "zh-CN"})
    assert zh.status_code == 200 and zh.headers["content-type"].startswith("text/csv")
    assert "attachment" in zh.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(zh.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["月份", "楼栋", "房号"]
    gas = next(r for r in rows[1:] if world.a.gas in r)
    assert "燃气" in gas and "62.0" in gas
    en = manager_a.get("/billing/export", params={**params, "lang": "en"})
    rows = list(csv.reader(io.StringIO(en.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Month", "Building", "Unit"]
    header = rows[0]
    gas = next(r for r in rows[1:] if world.a.gas in r)
    assert gas[header.index("Status")] == "ACTUAL" and gas[header.index("Consumption")] == "62.0"
    # the page's language switch does not follow the file's language
    assert "kapok_lang" not in en.headers.get("set-cookie", "")


def test_the_xlsx_download_opens_as_a_workbook(manager_a, world):
    _a_month_of_readings(world)
    r = manager_a.get(
        "/billing/export",
        params={"community": world.a.community, "month": "2025-12", "format": "xlsx"},
    )
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "月份" and any(world.a.gas in row for row in rows[1:])


def test_a_bad_month_is_refused(manager_a, world):
    assert manager_a.get("/billing", params={"month": "2025-13"}).status_code == 422
    r = manager_a.get("/billing/export", params={"community": world.a.community, "month": "x"})
    assert r.status_code == 422
