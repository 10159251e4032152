"""The overview pages: communities with their live alarm count, a
community's buildings and per-meter completeness, a unit's devices."""

import re

import pytest

from kapok.cloud.crud import devices as devices_crud
from kapok.cloud.models import Device
from kapok.cloud.web import queries

from ..helpers import meter_reading
from .helpers import T0


def test_the_overview_counts_open_alarms_and_the_badge_follows_them_live(manager_a, world, seeded):
    home = manager_a.get("/").text
    assert "Community A" in home and "Community B" not in home
    assert re.search(r'data-live="open"[^>]*>1</span>', home)
    assert manager_a.get("/live.json").json() == {"open": 1, "acknowledged": 0}
    # a new alarm arrives through ingest: the count the badge polls goes up
    a = world.a
    world.ingest(a, [(T0, meter_reading(a.gas, 7, T0, 106.6, events=[("tamper", T0)]))])
    assert manager_a.get("/live.json").json() == {"open": 2, "acknowledged": 0}
    page = manager_a.get(f"/communities/{a.community}").text
    assert re.search(r'id="alarms-open">2<', page)
    assert "防拆报警" in page and "燃气泄漏" in page


def test_the_community_page_lists_units_meters_and_their_completeness(manager_a, world, seeded):
    a = world.a
    page = manager_a.get(f"/communities/{a.community}").text
    assert "1栋" in page and f'href="/units/{a.unit}">101' in page
    for device in (a.gas, a.water, a.hub):
        assert f'href="/devices/{device}"' in page
    # the gas meter: 5 of 6 messages in the last day; the others sent nothing
    units = page.split("的住户与表具")[1]
    row = re.search(rf'href="/devices/{a.gas}".*?</tr>', units, re.S).group(0)
    assert "83.3%" in row and "燃气泄漏" in row


def test_per_meter_completeness_agrees_with_the_api_s_definition(app, world, seeded, clock):
    a = world.a
    world.ingest(
        a,
        [(T0 - 50, meter_reading(a.water, 3, T0 - 50, 5.0, mac=True))]
        + [(T0 - 40, meter_reading(a.water, s, T0 - 40, 5.0 + s, mac=True)) for s in (1, 9)],
    )
    with app.state.sessions() as session:
        devices = session.query(Device).all()
        for t_from, t_to in ((T0 - 86400, T0), (T0 - 3 * 3600, T0), (T0 - 100, T0 - 45)):
            bulk = queries.completeness_by_device(
                session, device_ids=[d.id for d in devices], t_from=t_from, t_to=t_to
            )
            for d in devices:
                one = devices_crud.completeness(session, device=d, t_from=t_from, t_to=t_to)
                want = one["completeness"]
                # float(): the crud's figure is a Decimal on PostgreSQL (SUM of bigint)
                assert bulk[d.id] == (None if want is None else pytest.approx(float(want)))
        assert bulk[a.hub] is None


def test_the_unit_page_shows_each_device_s_latest_readings(manager_a, world, seeded):
    page = manager_a.get(f"/units/{world.a.unit}").text
    assert "1栋 101" in page
    assert "106.500 m³" in page and "3.30 V" in page and "-100 dBW" in page
    assert "燃气表" in page and "水表" in page and "智能家居主机" in page
    assert "暂无读数" in page  # the water meter and hub sent nothing yet


def test_silent_devices_are_counted_and_completeness_never_looks_all_well(
    app, manager_a, world, seeded
):
    from kapok.cloud.checks import run_checks

    home = manager_a.get("/", params={"lang": "en"}).text
    assert re.search(r"Silent devices</dt><dd class=\"\">0<", home)
    a = world.a
    world.ok(
        "PUT", f"/api/v1/communities/{a.community}/rules", json={"silent_minutes": {"hub": 10}}
    )
    run_checks(app, T0 + 11 * 60)  # the hub has said nothing for 11 minutes
    home = manager_a.get("/").text
    silent = int(re.search(r'Silent devices</dt><dd class="hot">(\d+)<', home).group(1))
    assert silent >= 1
    assert f"{silent} silent: their missing readings are not counted yet" in home
