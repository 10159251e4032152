"""zh-CN by default, English on request, every string from the catalogue;
numbers with their units, times in the display time zone."""

import re
import string
from pathlib import Path

from kapok.cloud.web import i18n

from ..helpers import MANAGER_PASSWORD
from .helpers import COMMUNITY_QUERIES, T0, WebClient, fill, routes

TEMPLATES = Path(i18n.__file__).parent / "templates"
SOURCES = Path(i18n.__file__).parent


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_catalogues_have_the_same_keys_and_placeholders():
    zh, en = i18n.catalogue("zh-CN"), i18n.catalogue("en")
    assert set(zh) == set(en)
    for key in zh:
        assert placeholders(zh[key]) == placeholders(en[key]), key
        assert zh[key].strip() and en[key].strip(), key


def test_every_key_written_in_the_templates_and_pages_exists():
    literal = re.compile(r"""_\(\s*["']([A-Za-z0-9_.-]+)["']""")
    conditional = re.compile(r"""_\(\s*["']([a-z_.]+)["'] if [^)]*? else ["']([a-z_.]+)["']""")
    keys = set()
    for path in [*TEMPLATES.glob("*.html"), *SOURCES.rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        keys |= {k for k in literal.findall(text) if "." in k and not k.endswith(".")}
        for pair in conditional.findall(text):
            keys |= set(pair)
        keys |= set(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']""", text))
    assert len(keys) > 250
    missing = sorted(k for k in keys if k not in i18n.catalogue("zh-CN"))
    assert not missing


def _get_pages(web, ids):
    for path, _ in routes("GET"):
        not_pages = (
            "/login",
            "/live.json",
            "/billing/export",
            "/audit/chain.csv",
            "/work-orders/{order_id}/photos/{photo}",
        )
        if path in not_pages:
            continue
        params = {
            name: ("2025-12" if key is None else ids[key])
            for name, key in COMMUNITY_QUERIES.get(path, {}).items()
        }
        yield path, fill(path, ids), params


def test_every_page_speaks_chinese_by_default_and_english_on_request(admin_web, seeded):
    for path, url, params in _get_pages(admin_web, seeded):
        zh = admin_web.get(url, params=params)
        assert zh.status_code == 200, path
        assert '<html lang="zh-CN">' in zh.text and ">告警" in zh.text, path
        en = admin_web.get(url, params={**params, "lang": "en"})
        assert '<html lang="en">' in en.text and ">Alarms" in en.text, path
        assert "告警" not in en.text, path
        assert "kapok_lang=en" in en.headers["set-cookie"]
        # the switch is remembered (the cookie), and switched back the same way
        assert '<html lang="en">' in admin_web.get(url, params=params).text, path
        back = admin_web.get(url, params={**params, "lang": "zh-CN"})
        assert '<html lang="zh-CN">' in back.text, path


def test_the_language_switch_links_to_the_same_page(admin_web, seeded):
    html = admin_web.get(f"/devices/{seeded['device_id']}?days=30").text
    assert f'href="/devices/{seeded["device_id"]}?days=30&amp;lang=en"' in html


def test_error_pages_speak_the_viewer_s_language(manager_b, seeded):
    r = manager_b.get(f"/devices/{seeded['device_id']}")
    assert r.status_code == 404 and "未找到" in r.text
    r = manager_b.get(f"/devices/{seeded['device_id']}", params={"lang": "en"})
    assert r.status_code == 404 and "Not found" in r.text
    assert manager_b.get("/admin/users").status_code == 403


def test_a_user_s_own_language_is_the_default(app, world):
    world.ok("PATCH", "/api/v1/users/1", json={"locale": "en"})
    web = WebClient(app)
    web.login("admin", "admin-pass-0001")
    assert '<html lang="en">' in web.get("/").text
    web2 = WebClient(app)
    web2.login(world.a.manager, MANAGER_PASSWORD)
    assert '<html lang="zh-CN">' in web2.get("/").text


def test_numbers_carry_their_units_and_times_the_display_zone():
    zh = i18n.Translator("zh-CN", "Asia/Shanghai")
    en = i18n.Translator("en", "Asia/Shanghai")
    assert zh.reading("vol", 1234.56789, "m3") == "1,234.568 m³"
    assert zh.reading("energy", 12.5, "kWh") == "12.50 kWh"
    assert zh.reading("cl", 0.5, "mg/l") == "0.50 mg/L"
    assert zh.reading("turb", 1.234, "NTU") == "1.23 NTU"
    assert zh.reading("ph", 7.234, "pH") == "7.23"
    assert zh.reading("temp", 21.06, "Cel") == "21.1 °C"
    assert zh.reading("valve", False, None) == "关闭"
    assert en.reading("valve", True, None) == "Open"
    assert zh.reading("bat", None, "V") == "—"
    assert zh.when(T0) == "2026-01-01 08:00"  # midnight UTC is 8 in Shanghai
    assert i18n.Translator("en", "UTC").when(T0) == "2026-01-01 00:00"
    assert zh.ago(T0 - 300, T0) == "5 分钟前" and en.ago(T0 - 7200, T0) == "2 h ago"
    assert zh.percent(0.755) == "75.5%"


def test_pages_answering_forms_speak_english_too(manager_a, world, seeded):
    manager_a.get("/", params={"lang": "en"})  # remembered from now on
    ask = manager_a.post(f"/devices/{world.a.gas}/valve", data={"op": "valve.open"})
    assert '<html lang="en">' in ask.text and "Yes, open the valve" in ask.text
    assert "presses its button" in ask.text
    token = manager_a.post(
        "/admin/gateways", data={"name": "north", "community": world.a.community}
    )
    assert token.status_code == 201 and "shown only this once" in token.text
    # its language switch cannot repeat the POST: it leads home
    assert 'href="/?lang=zh-CN"' in token.text
    bad = manager_a.post(f"/alarms/{seeded['alarm_id']}/ack", data={}, csrf=False)
    assert bad.status_code == 403 and "Form expired" in bad.text
