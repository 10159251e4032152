"""The rules page: current values with the GB 5749-2022 defaults marked,
the edit form (CSRF; a wrong value gets the form back as typed, with the
reason), the version history with who, when and what changed, and the
delivery of thresholds.set per device; in both languages."""

import re


def form_of(html: str) -> dict:
    """The rules form's fields as a browser would send them unchanged."""
    form = html[
        html.index('id="rules-form"') : html.index("</form>", html.index('id="rules-form"'))
    ]
    data: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input name="([^"]+)"[^>]*value="([^"]*)"', form):
        data.setdefault(name, []).append(value)
    for select in re.findall(r'<select name="([^"]+)".*?</select>', form, re.S):
        data.setdefault(select, [])
    for m in re.finditer(r'<select name="([^"]+)"(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', m.group(2))
        first = re.search(r'<option value="([^"]*)"', m.group(2))
        data[m.group(1)].append((chosen or first).group(1))
    return data


def test_the_page_shows_the_defaults_and_where_they_come_from(manager_a, world):
    a = world.a
    zh = manager_a.get(f"/communities/{a.community}/rules").text
    assert "规则与阈值" in zh and "默认规则（从未修改）" in zh
    assert "GB 5749-2022 Table 1" in zh and "6.5 – 8.5" in zh and "≤ 1" in zh
    cl = zh[zh.index('id="current-cl"') :]
    assert "0.05 – 2" in cl[: cl.index("</tr>")]  # chlorine: both bounds at the tap
    en = manager_a.get(f"/communities/{a.community}/rules", params={"lang": "en"}).text
    assert "Rules and thresholds" in en and "Default rules (never changed)" in en
    assert "Gateway local safety rules" in en
    community = manager_a.get(f"/communities/{a.community}").text
    assert f'href="/communities/{a.community}/rules"' in community


def test_saving_the_form_makes_a_version_and_sends_thresholds(manager_a, world, clock):
    a = world.a
    world.register("wq-a1", "water-quality", a.gateway, unit=a.unit)
    url = f"/communities/{a.community}/rules"
    data = form_of(manager_a.get(url).text)
    data["turb_high"] = ["3"]
    data["note"] = ["小型供水"]
    data["auto_quality.turb"] = ["30"]
    clock.advance(60)
    r = manager_a.post(url, data=data)
    assert r.status_code == 303, r.text
    page = manager_a.get(url).text
    assert f"第 1 版，{a.manager} 于 2026-01-01 08:01 修改" in page
    row = page[page.index('id="version-1"') :]
    row = row[: row.index("</tr>")]
    assert "quality.turb" in row and "≤ 1" in row and "≤ 3" in row and "小型供水" in row
    assert "auto_resolve_minutes.quality.turb" in row
    delivery = page[page.index('id="delivery-wq-a1"') :]
    assert "排队中" in delivery[: delivery.index("</tr>")]
    rules = world.ok("GET", f"/api/v1/communities/{a.community}/rules")
    assert rules["rules"]["quality"]["turb"] == [None, 3.0]
    assert rules["rules"]["failsafe"] == rules["defaults"]["failsafe"]  # the rows round-trip
    # the same form again: nothing changed, no new version
    assert manager_a.post(url, data=form_of(page)).status_code == 303
    assert world.ok("GET", f"/api/v1/communities/{a.community}/rules")["version"] == 1


def test_a_wrong_value_gets_the_form_back_with_the_reason(manager_a, world):
    a = world.a
    url = f"/communities/{a.community}/rules"
    data = form_of(manager_a.get(url).text)
    data["ph_low"], data["ph_high"] = ["9"], ["6.5"]
    data["battery_low_v"] = ["三点三"]
    r = manager_a.post(url, data=data)
    assert r.status_code == 422 and 'id="rules-errors"' in r.text
    assert "三点三" in r.text  # what was typed is kept
    assert "“三点三”不是数字" in r.text  # the reason, in the viewer's language
    data["battery_low_v"] = ["3.3"]
    r = manager_a.post(url, data=data)
    assert r.status_code == 422 and "下限 9.0 高于上限 6.5" in r.text
    assert "above" not in r.text
    r = manager_a.post(url + "?lang=en", data=data)
    assert r.status_code == 422 and "the lower limit 9.0 is above the upper limit 6.5" in r.text
    assert 'value="9"' in r.text
    assert world.ok("GET", f"/api/v1/communities/{a.community}/rules")["version"] == 0


def test_the_form_needs_its_csrf_token_and_the_community_in_scope(manager_a, manager_b, world):
    a = world.a
    url = f"/communities/{a.community}/rules"
    data = form_of(manager_a.get(url).text)
    data["csrf"] = ["forged"]
    assert manager_a.post(url, data=data).status_code == 403
    assert manager_b.get(url).status_code == 404
    assert world.ok("GET", f"/api/v1/communities/{a.community}/rules")["version"] == 0
