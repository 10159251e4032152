"""Monthly bills through the API and their CSV / XLSX exports, checked
against what the meters signed."""

import csv
import io

import pytest
from openpyxl import load_workbook

from kapok.protocols import cose, messages

from .helpers import meter_reading, public_of, uplink

# month boundaries in Asia/Shanghai (the communities' default zone)
JAN = 1767196800  # 2026-01-01 00:00 +08:00
FEB = 1769875200  # 2026-02-01 00:00 +08:00
MAR = 1772294400  # 2026-03-01 00:00 +08:00
HOUR = 3600


def read(world, place, device_id, values, mac=False):
    """Send register readings [(t, value)] with seqs 1, 2, ... (per call offset)."""
    base = read.seq.get(device_id, 0)
    items = []
    for i, (t, v) in enumerate(values, start=1):
        items.append((t, meter_reading(device_id, base + i, t, v, mac=mac)))
    read.seq[device_id] = base + len(values)
    assert world.ingest(place, items)["accepted"] == len(values)


read.seq = {}


def bill(world, month="2026-01", **params):
    params = {"community": world.a.community, "month": month, "cose": True, **params}
    return world.ok("GET", "/api/v1/billing", params=params)


def setup_function():
    read.seq = {}


@pytest.fixture(autouse=True)
def installed_in_december(world):
    """The world's meters were put in before the months billed here."""
    for device_id in (world.a.gas, world.a.water):
        world.ok("PATCH", f"/api/v1/devices/{device_id}", json={"installed_at": JAN - 30 * 86400})


def test_a_month_read_at_both_ends_is_actual(world):
    a = world.a
    read(world, a, a.gas, [(JAN - 600, 100.0), (JAN + 10 * 86400, 110.5), (FEB + 300, 121.25)])
    [row] = bill(world, utility="gas")
    assert (row["building"], row["unit"], row["utility"], row["uom"]) == ("1栋", "101", "gas", "m3")
    assert row["consumption"] == 21.25 and row["status"] == "ACTUAL" and row["notes"] == []
    [part] = row["parts"]
    assert part["device"] == a.gas
    start, end = part["start"], part["end"]
    assert (start["at"], start["value"], start["flag"]) == (JAN, 100.0, "ACTUAL")
    assert (end["at"], end["value"], end["flag"]) == (FEB, 121.25, "ACTUAL")
    # each boundary names its reading and carries the signed original
    [r0] = start["readings"]
    assert (r0["seq"], r0["t"]) == (1, JAN - 600)
    payload = cose.verify1(bytes.fromhex(r0["cose"]), public_of(a.gas))
    assert messages.parse_uplink(payload, a.gas)["seq"] == 1
    # without cose=true the bill is lighter and otherwise the same
    [light] = bill(world, utility="gas", cose=False)
    assert "cose" not in light["parts"][0]["start"]["readings"][0]
    assert light["consumption"] == row["consumption"]


def test_boundaries_far_from_readings_are_interpolated_and_flagged(world):
    a = world.a
    read(world, a, a.gas, [(JAN - 5 * 86400, 50.0), (JAN + 5 * 86400, 60.0), (FEB + 86400, 92.0)])
    [row] = bill(world, utility="gas")
    part = row["parts"][0]
    assert part["start"]["flag"] == "ESTIMATED" and part["start"]["value"] == 55.0
    assert [r["seq"] for r in part["start"]["readings"]] == [1, 2]
    assert part["end"]["flag"] == "ESTIMATED"
    assert row["status"] == "ESTIMATED"
    # the two months together use exactly what the register moved
    [feb] = bill(world, "2026-02", utility="gas")
    assert feb["status"] == "MISSING" and feb["consumption"] is None  # no reading after March 1
    read(world, a, a.gas, [(MAR, 100.0)])
    [feb] = bill(world, "2026-02", utility="gas")
    assert abs(row["consumption"] + feb["consumption"] - (100.0 - 55.0)) < 1e-9


def test_a_register_roll_over_adds_the_capacity(world):
    a = world.a
    world.ok("PATCH", f"/api/v1/devices/{a.gas}", json={"register_capacity": 1000})
    read(world, a, a.gas, [(JAN, 990.0), (JAN + 86400 * 20, 999.5), (FEB, 4.5)])
    [row] = bill(world, utility="gas")
    assert row["consumption"] == 14.5 and row["notes"] == ["rollover"]
    assert row["parts"][0]["rollover"] is True


def test_a_replaced_meter_and_its_successor_add_up(world):
    a = world.a
    swap = JAN + 15 * 86400
    read(world, a, a.gas, [(JAN, 500.0), (swap - HOUR, 530.0)])
    world.ok("PATCH", f"/api/v1/devices/{a.gas}", json={"removed_at": swap})
    world.register("gm-a1-new", "gas-meter", a.gateway, unit=a.unit, installed_at=swap)
    read(world, a, "gm-a1-new", [(swap + 600, 0.0), (FEB, 12.5)])
    [row] = bill(world, utility="gas")
    assert row["consumption"] == 30.0 + 12.5 and row["notes"] == ["replaced"]
    assert [(p["device"], p["consumption"]) for p in row["parts"]] == [
        (a.gas, 30.0),
        ("gm-a1-new", 12.5),
    ]
    old, new = row["parts"]
    assert old["end"]["at"] == swap and old["end"]["flag"] == "ACTUAL"
    assert new["start"]["at"] == swap and new["start"]["flag"] == "ACTUAL"


def test_all_utilities_of_a_unit(world):
    a = world.a
    world.register("em-a1", "electricity-meter", a.gateway, unit=a.unit, installed_at=JAN - 86400)
    read(world, a, a.gas, [(JAN, 1.0), (FEB, 3.0)])
    read(world, a, a.water, [(JAN, 10.0), (FEB, 15.0)], mac=True)
    power = [(JAN, 1000.0), (FEB, 1210.5)]
    items = []
    for i, (t, v) in enumerate(power, start=1):
        from kapok.protocols import senml

        items.append((t, uplink("em-a1", i, t, compact=senml.compact(2, [v, -90]))))
    world.ingest(a, items)
    rows = bill(world)
    assert [(r["utility"], r["uom"], r["consumption"]) for r in rows] == [
        ("gas", "m3", 2.0),
        ("water", "m3", 5.0),
        ("electricity", "kWh", 210.5),
    ]


def export(world, fmt, lang):
    r = world.client.get(
        "/api/v1/billing/export",
        params={"community": world.a.community, "month": "2026-01", "format": fmt, "lang": lang},
        headers=world.a.manager_headers,
    )
    assert r.status_code == 200, r.text
    return r


def test_csv_export_in_chinese_and_english(world):
    a = world.a
    read(world, a, a.gas, [(JAN, 100.0), (FEB, 121.25)])
    zh = export(world, "csv", "zh-CN")
    assert zh.headers["content-type"].startswith("text/csv")
    assert "attachment" in zh.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(zh.content.decode("utf-8-sig"))))
    header, row = rows[0], dict(zip(rows[0], rows[1], strict=True))
    assert header[:6] == ["月份", "楼栋", "房号", "类别", "计量单位", "表号"]
    assert (row["类别"], row["表号"], row["用量"], row["状态"]) == ("燃气", a.gas, "21.25", "实抄")
    en = list(csv.reader(io.StringIO(export(world, "csv", "en").content.decode("utf-8-sig"))))
    row = dict(zip(en[0], en[1], strict=True))
    assert (row["Utility"], row["Meter"], row["Consumption"], row["Status"]) == (
        "gas",
        a.gas,
        "21.25",
        "ACTUAL",
    )
    # the row can be re-checked against what the meter signed (what `kapok verify` does)
    for side in ("Start", "End"):
        msg = bytes.fromhex(row[f"{side} reading COSE (hex)"])
        up = messages.parse_uplink(cose.verify1(msg, public_of(a.gas)), a.gas)
        assert str(up["seq"]) == row[f"{side} reading seq"]
        assert float(row[f"{side} register"]) == up["readings"][0]["v"]


def test_xlsx_export_opens_with_its_headers(world):
    a = world.a
    read(world, a, a.gas, [(JAN, 100.0), (FEB, 121.25)])
    for lang, month_header, total_header in (
        ("zh-CN", "月份", "本户合计"),
        ("en", "Month", "Unit total"),
    ):
        r = export(world, "xlsx", lang)
        book = load_workbook(io.BytesIO(r.content))
        sheet = book.active
        values = list(sheet.iter_rows(values_only=True))
        header = list(values[0])
        assert header[0] == month_header and total_header in header
        gas = dict(zip(header, values[1], strict=True))
        assert gas[total_header] == 21.25
        # the water meter sent nothing: its row is there, flagged missing
        water = dict(zip(header, values[2], strict=True))
        assert water[total_header] is None
        assert water["状态" if lang == "zh-CN" else "Status"] == (
            "缺失" if lang == "zh-CN" else "MISSING"
        )
        assert len(values) == 3


def test_a_bad_month_or_format_gets_422(world, client):
    for params in (
        {"month": "2026-13"},
        {"month": "January"},
        {"month": "2026-01", "format": "pdf"},
    ):
        r = client.get(
            "/api/v1/billing/export",
            params={"community": world.a.community, **params},
            headers=world.admin_headers,
        )
        assert r.status_code == 422, params
