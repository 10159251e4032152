"""Tariffs through the API, scoped like everything else, and a unit's
monthly bill priced under them (SQLite and PostgreSQL)."""

import pytest

from . import test_billing
from .test_billing import FEB, JAN, MAR, read

WATER = {
    "utility": "water",
    "effective_from": "2025-01-01",
    "fixed_monthly": "0",
    "period": "monthly",
    "tiers": [
        {"upto": "26", "price": "1.98"},
        {"upto": "34", "price": "3.30"},
        {"upto": None, "price": "4.62"},
    ],
}
GAS = {
    "utility": "gas",
    "effective_from": "2025-01-01",
    "fixed_monthly": "5.00",
    "period": "annual",
    "tiers": [{"upto": "30", "price": "3.45"}, {"upto": None, "price": "4.14"}],
}


@pytest.fixture(autouse=True)
def installed_in_december(world):
    test_billing.read.seq = {}
    for device_id in (world.a.gas, world.a.water):
        world.ok("PATCH", f"/api/v1/devices/{device_id}", json={"installed_at": JAN - 30 * 86400})


def tariff(world, body, headers=None, status=201):
    return world.ok(
        "POST", "/api/v1/tariffs", status, headers, json={"community": world.a.community, **body}
    )


def bill(world, month, headers=None):
    return world.ok(
        "GET", f"/api/v1/units/{world.a.unit}/bills", headers=headers, params={"month": month}
    )


def test_a_manager_sets_tariffs_of_their_community_only(world):
    a, b = world.a, world.b
    made = tariff(world, WATER, headers=a.manager_headers)
    assert made["tiers"][1] == {"upto": "34", "price": "3.30"} and made["created_by"] == a.manager
    listed = world.ok("GET", "/api/v1/tariffs", params={"community": a.community})
    assert [t["id"] for t in listed] == [made["id"]]
    # another community's manager: as if it did not exist; nobody: 401
    tariff(world, WATER, headers=b.manager_headers, status=404)
    world.ok("GET", "/api/v1/tariffs", 404, b.manager_headers, params={"community": a.community})
    r = world.client.post("/api/v1/tariffs", json={"community": a.community, **WATER})
    assert r.status_code == 401
    r = world.client.get(f"/api/v1/units/{a.unit}/bills", params={"month": "2026-01"})
    assert r.status_code == 401
    world.ok("GET", f"/api/v1/units/{a.unit}/bills", 404, b.manager_headers,
             params={"month": "2026-01"})  # fmt: skip
    # the same date twice is a conflict; bad money says why and stores nothing
    tariff(world, WATER, status=409)
    bad = {**WATER, "effective_from": "2025-06-01", "tiers": [{"upto": None, "price": 1.5}]}
    assert "not floats" in tariff(world, bad, status=422)["detail"]
    bad["tiers"] = [{"upto": None, "price": "0.12345"}]
    assert "4 decimal places" in tariff(world, bad, status=422)["detail"]
    assert len(world.ok("GET", "/api/v1/tariffs", params={"community": a.community})) == 1


def test_a_month_is_priced_per_tier_and_reproducibly(world):
    a = world.a
    tariff(world, WATER)
    tariff(world, GAS)
    read(world, a, a.water, [(JAN, 100.0), (FEB, 140.5)], mac=True)  # 40.5 m³
    read(world, a, a.gas, [(JAN, 10.0), (FEB, 30.0), (MAR, 45.0)])  # 20 then 15 m³
    jan = bill(world, "2026-01")
    assert jan["unit"] == a.unit and jan["month"] == "2026-01"
    got = [
        (x["utility"], x["item"], x["quantity"], x["unit_price"], x["amount"]) for x in jan["lines"]
    ]
    assert got == [
        ("gas", "fixed", "1", "5.00", "5.00"),
        ("gas", "tier-1", "20.000", "3.45", "69.00"),
        ("water", "tier-1", "26.000", "1.98", "51.48"),
        ("water", "tier-2", "8.000", "3.30", "26.40"),
        ("water", "tier-3", "6.500", "4.62", "30.03"),
    ]
    assert jan["total"] == "181.91" and jan["status"] == "ACTUAL"
    # February's gas continues the year's counter: 10 m³ left in tier 1
    feb = bill(world, "2026-02")
    gas = [(x["item"], x["quantity"], x["amount"]) for x in feb["lines"] if x["utility"] == "gas"]
    assert gas == [("fixed", "1", "5.00"), ("tier-1", "10.000", "34.50"),
                   ("tier-2", "5.000", "20.70")]  # fmt: skip
    # same readings, same tariffs: the same bytes
    url = f"/api/v1/units/{a.unit}/bills?month=2026-01"
    one = world.client.get(url, headers=world.admin_headers).content
    assert one == world.client.get(url, headers=world.admin_headers).content


def test_estimated_consumption_is_priced_and_marked(world):
    a = world.a
    tariff(world, WATER)
    read(
        world, a, a.water, [(JAN - 5 * 86400, 0.0), (JAN + 5 * 86400, 10.0), (FEB, 20.0)], mac=True
    )
    lines = bill(world, "2026-01")["lines"]
    assert [(x["item"], x["quantity"], x["amount"], x["status"]) for x in lines] == [
        ("tier-1", "15.000", "29.70", "ESTIMATED")
    ]


def test_the_guangzhou_examples_load_through_the_api_and_price_a_month(world):
    import json
    from importlib.resources import files

    data = json.loads(files("kapok.cloud").joinpath("tariffs/guangzhou.json").read_text("utf-8"))
    assert "example: check against the current published tariff" in data["note"]
    for t in data["tariffs"]:
        assert t["source"] and t["effective_from"]
        tariff(world, t, headers=world.a.manager_headers)
    a = world.a
    read(world, a, a.water, [(JAN, 0.0), (FEB, 30.0)], mac=True)
    got = bill(world, "2026-01")
    water = [(x["item"], x["quantity"]) for x in got["lines"] if x["utility"] == "water"]
    assert water == [("tier-1", "26.000"), ("tier-2", "4.000")]
    # the gas meter sent nothing: its line says so, and so does the bill
    [gas] = [x for x in got["lines"] if x["utility"] == "gas"]
    assert (gas["status"], gas["quantity"], gas["amount"]) == ("MISSING", None, "0.00")
    assert got["status"] == "MISSING"


def test_a_communitys_month_of_bills_as_csv(world):
    import csv
    import io

    a = world.a
    tariff(world, WATER)
    read(world, a, a.water, [(JAN, 100.0), (FEB, 140.5)], mac=True)
    url = f"/api/v1/communities/{a.community}/bills.csv"
    r = world.client.get(url, params={"month": "2026-01"}, headers=a.manager_headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["month", "building", "unit"]
    assert [row[4:8] for row in rows[1:]] == [
        ["tier-1", "26.000", "1.98", "51.48"],
        ["tier-2", "8.000", "3.30", "26.40"],
        ["tier-3", "6.500", "4.62", "30.03"],
        ["total", "", "", "107.91"],
    ]
    assert world.client.get(url, params={"month": "2026-01"}).status_code == 401
    other = world.client.get(url, params={"month": "2026-01"}, headers=world.b.manager_headers)
    assert other.status_code == 404
