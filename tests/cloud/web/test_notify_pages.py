"""The notification pages of a community: its channels (added with the
kind's own form, stopped, changed, tested; a secret never shown), its duty
roster (who is on duty now, as the API says; shifts added and removed) and
its notification log (states, dead letters and their retry); in both
languages, with CSRF, scoped like the API, and read-only for roles that may
not change them."""

import pytest

from kapok.cloud.api import deps
from kapok.cloud.notifications.sender import deliver_due

from ..helpers import MANAGER_PASSWORD
from ..notifications.peers import HookServer
from .helpers import WebClient

SEEDED_SECRET = "seeded-hook-secret"


def urls(community: int) -> list[str]:
    return [f"/communities/{community}/{p}" for p in ("channels", "roster", "notifications")]


def row(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    end = html.find("</tr>", start)
    return html[start : end if end != -1 else None]


def card(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</li>", start)]


def audit(world, community: int) -> list[dict]:
    return world.ok("GET", "/api/v1/audit", params={"community": community, "limit": 5000})


def test_the_pages_speak_both_languages_and_never_show_a_secret(manager_a, seeded):
    a = seeded["community_id"]
    channels, roster, log = urls(a)
    zh = manager_a.get(channels).text
    assert "<h1>通知渠道</h1>" in zh and "Webhook（外部系统）" in zh
    seeded_card = card(zh, f"channel-{seeded['channel_id']}")
    assert "https://hooks.example/kapok" in seeded_card and "已设置" in seeded_card
    assert "企业微信群机器人" in zh and "钉钉群机器人" in zh and "加签密钥" in zh
    zh = manager_a.get(roster).text
    assert "<h1>值班表</h1>" in zh and "当前值班（2026-01-01 08:00）" in zh  # a Thursday
    assert f'id="on-duty-{seeded["channel_id"]}"' in zh
    assert "周一、周二、周三、周四、周五" in row(zh, f"shift-{seeded['shift_id']}")
    assert "无人" in row(zh, "weekday-5")  # Saturday
    zh = manager_a.get(log).text
    assert "<h1>通知记录</h1>" in zh
    test_row = row(zh, f"notification-{seeded['notification_id']}")
    assert "测试消息" in test_row and "待发送" in test_row
    en = manager_a.get(channels, params={"lang": "en"}).text
    assert "<h1>Notification channels</h1>" in en and "Send a test message" in en
    en = manager_a.get(roster, params={"lang": "en"}).text
    assert "On duty now (2026-01-01 08:00)" in en and "Mon, Tue, Wed, Thu, Fri" in en
    en = manager_a.get(log, params={"lang": "en"}).text
    assert "<h1>Notification log</h1>" in en and "Test message" in en
    for lang in ("zh-CN", "en"):
        for url in [*urls(a), f"/communities/{a}", f"/audit?community={a}"]:
            assert SEEDED_SECRET not in manager_a.get(url, params={"lang": lang}).text, url
    community = manager_a.get(f"/communities/{a}").text
    for url in urls(a):
        assert f'href="{url}"' in community


def test_a_channel_is_added_stopped_and_changed_through_the_forms(manager_a, world):
    a = world.a.community
    url = f"/communities/{a}/channels"
    r = manager_a.post(
        url,
        data={
            "kind": "webhook",
            "target": "https://ops.example/hook",
            "secret": "hunter2-hook-secret",
            "name": "运维平台",
            "lang": "en",
            "audience": "all",
        },
    )
    assert r.status_code == 303, r.text
    [made] = [c for c in world.ok("GET", "/api/v1/channels") if c["name"] == "运维平台"]
    assert r.headers["location"] == f"{url}#channel-{made['id']}"
    assert made["has_secret"] and made["lang"] == "en" and made["active"]
    page = manager_a.get(url).text
    assert "运维平台" in card(page, f"channel-{made['id']}") and "hunter2" not in page
    # e-mail: no secret field, its default audience
    assert (
        manager_a.post(url, data={"kind": "email", "target": "duty@a.example"}).status_code == 303
    )
    [mail] = [c for c in world.ok("GET", "/api/v1/channels") if c["kind"] == "email"]
    assert mail["audience"] == "duty" and not mail["has_secret"]
    # stopped: nothing deleted, shown as stopped; and started again
    r = manager_a.post(f"/channels/{made['id']}/active", data={"active": "0"})
    assert r.status_code == 303
    assert world.ok("GET", f"/api/v1/channels/{made['id']}")["active"] is False
    assert "已停用" in card(manager_a.get(url).text, f"channel-{made['id']}")
    manager_a.post(f"/channels/{made['id']}/active", data={"active": "1"})
    assert world.ok("GET", f"/api/v1/channels/{made['id']}")["active"] is True
    # changed: a new target, the secret removed
    r = manager_a.post(
        f"/channels/{made['id']}",
        data={"target": "https://ops.example/v2", "lang": "zh-CN", "clear_secret": "1"},
    )
    assert r.status_code == 303, r.text
    changed = world.ok("GET", f"/api/v1/channels/{made['id']}")
    assert changed["target"] == "https://ops.example/v2" and not changed["has_secret"]
    assert changed["name"] is None and changed["lang"] == "zh-CN"
    log = audit(world, a)
    assert [e["actor"] for e in log if e["action"] == "channel.create"] == [
        f"user:{world.a.manager}"
    ] * 2
    assert all("hunter2" not in str(e) for e in log)


def test_a_wrong_target_gets_the_form_back_with_the_reason(manager_a, world):
    url = f"/communities/{world.a.community}/channels"
    before = world.ok("GET", "/api/v1/channels")
    r = manager_a.post(url, data={"kind": "sms", "target": "12345", "name": "值班手机"})
    assert r.status_code == 422 and 'id="form-errors"' in r.text
    assert "请填写有效的手机号码" in r.text and 'value="12345"' in r.text
    assert '<details class="card add-channel" id="add-sms" open>' in r.text
    r = manager_a.post(url + "?lang=en", data={"kind": "wecom", "target": "wecom robot"})
    assert r.status_code == 422 and "starting with http:// or https://" in r.text
    r = manager_a.post(url + "?lang=zh-CN", data={"kind": "pager", "target": "x@y.example"})
    assert r.status_code == 422 and "请选择渠道类型" in r.text
    assert world.ok("GET", "/api/v1/channels") == before


def test_a_test_message_is_queued_and_shown_in_the_log(manager_a, world, seeded):
    r = manager_a.post(f"/channels/{seeded['channel_id']}/test")
    assert r.status_code == 303
    path, anchor = r.headers["location"].split("#")
    assert path == f"/communities/{seeded['community_id']}/notifications"
    page = manager_a.get(path).text
    assert "测试消息" in row(page, anchor) and "待发送" in row(page, anchor)
    tests = world.ok("GET", "/api/v1/notifications", params={"community": seeded["community_id"]})
    assert anchor == f"notification-{tests[0]['id']}" and len(tests) == 2


def test_shifts_are_added_and_removed_and_on_duty_is_the_api_s(manager_a, world, seeded):
    a, channel = seeded["community_id"], seeded["channel_id"]
    url = f"/communities/{a}/roster"
    # Saturday nights, past midnight
    r = manager_a.post(
        url,
        data={
            "kind": "weekly",
            "channel": channel,
            "weekdays": ["5", "6"],
            "start": "22:00",
            "end": "06:00",
            "note": "夜班",
        },
    )
    assert r.status_code == 303, r.text
    page = manager_a.get(url).text
    shifts = world.ok("GET", "/api/v1/duty-shifts", params={"community": a})
    [night] = [s for s in shifts if s["note"] == "夜班"]
    assert r.headers["location"] == f"{url}#shift-{night['id']}"
    assert night["weekdays"] == [5, 6] and (night["start"], night["end"]) == ("22:00", "06:00")
    assert "22:00–次日 06:00" in row(page, f"shift-{night['id']}") and "夜班" in page
    # today (Thursday 1 January) off: nobody on duty, as the API says
    r = manager_a.post(
        url,
        data={"kind": "day", "channel": channel, "day": "2026-01-01", "start": "00:00",
              "end": "00:00", "off": "1", "note": "元旦"},
    )  # fmt: skip
    assert r.status_code == 303, r.text
    on_duty = world.ok("GET", f"/api/v1/communities/{a}/on-duty")
    assert on_duty["channels"] == [] and on_duty["managers_stand_in"]
    page = manager_a.get(url).text
    assert 'id="nobody"' in page and f'id="on-duty-{channel}"' not in page
    shifts = world.ok("GET", "/api/v1/duty-shifts", params={"community": a})
    [holiday] = [s for s in shifts if s["day"] is not None]
    assert holiday["day"] == "2026-01-01" and holiday["off"]
    assert "全天" in row(page, f"shift-{holiday['id']}") and "休息" in row(
        page, f"shift-{holiday['id']}"
    )
    # another time: Monday 9:00 the weekly shift has it on duty again
    monday = manager_a.get(url, params={"at": "2026-01-05T09:00"}).text
    assert "2026-01-05 09:00 的值班" in monday and f'id="on-duty-{channel}"' in monday
    assert manager_a.get(url, params={"at": "someday"}).status_code == 422
    # removed
    assert manager_a.post(f"/duty-shifts/{holiday['id']}/delete").status_code == 303
    page = manager_a.get(url).text
    assert f'id="shift-{holiday["id"]}"' not in page and f'id="on-duty-{channel}"' in page
    actions = [e["action"] for e in audit(world, a) if e["action"].startswith("roster.")]
    assert sorted(actions) == ["roster.add", "roster.add", "roster.add", "roster.remove"]


def test_a_shift_form_with_mistakes_comes_back_with_the_reasons(manager_a, world, seeded):
    url = f"/communities/{seeded['community_id']}/roster"
    before = world.ok("GET", "/api/v1/duty-shifts")
    data = {"kind": "weekly", "channel": seeded["channel_id"], "start": "08:00", "end": "18:00"}
    r = manager_a.post(url, data=data)
    assert r.status_code == 422 and "请至少选择一天" in r.text
    r = manager_a.post(url + "?lang=en", data={**data, "weekdays": "1", "start": "25:00"})
    assert r.status_code == 422 and "From: please enter a time as HH:MM" in r.text
    assert 'value="25:00"' in r.text
    r = manager_a.post(url + "?lang=zh-CN", data={**data, "kind": "day", "channel": ""})
    assert r.status_code == 422 and "请选择渠道" in r.text and "请选择日期" in r.text
    assert world.ok("GET", "/api/v1/duty-shifts") == before


def test_a_dead_letter_is_shown_and_retried(app, manager_a, world, clock):
    a = world.a.community
    with HookServer(secret="the-receivers-secret") as hook:
        manager_a.post(
            f"/communities/{a}/channels",
            data={"kind": "webhook", "target": hook.url, "secret": "not-the-receivers"},
        )
        [channel] = world.ok("GET", "/api/v1/channels", params={"community": a})
        manager_a.post(f"/channels/{channel['id']}/test")
        deliver_due(app.state.sessions, app.state.settings, clock())
    [dead] = world.ok("GET", "/api/v1/notifications", params={"state": "dead"})
    url = f"/communities/{a}/notifications"
    page = manager_a.get(url, params={"state": "dead"}).text
    assert "1 条死信" in page and 'id="dead-letters"' in page
    dead_row = row(page, f"notification-{dead['id']}")
    assert "死信（投递失败）" in dead_row and "HTTP 401: refused" in dead_row
    assert f'action="/notifications/{dead["id"]}/retry"' in dead_row
    en = manager_a.get(url, params={"lang": "en"}).text
    assert "1 dead letter(s)" in en and "Retry" in row(en, f"notification-{dead['id']}")
    assert manager_a.get(url, params={"state": "sent"}).text.count('id="notification-') == 0
    clock.advance(60)
    r = manager_a.post(f"/notifications/{dead['id']}/retry")
    assert r.status_code == 303 and r.headers["location"].endswith(f"#notification-{dead['id']}")
    again = world.ok("GET", "/api/v1/notifications", params={"community": a})[0]
    assert (again["state"], again["attempts"], again["next_at"]) == ("pending", 0, clock())
    page = manager_a.get(url, params={"lang": "zh-CN"}).text
    assert 'id="dead-letters"' not in page and "待发送" in row(page, f"notification-{dead['id']}")
    assert manager_a.post(f"/notifications/{dead['id']}/retry").status_code == 409  # not dead
    assert [e["action"] for e in audit(world, a) if e["action"] == "notify.retry"] == [
        "notify.retry"
    ]


def test_another_community_s_manager_gets_404_and_changes_nothing(manager_b, world, seeded):
    before = audit(world, seeded["community_id"])
    for url in urls(seeded["community_id"]):
        assert manager_b.get(url).status_code == 404, url
        assert manager_b.post(url, data={"kind": "email", "target": "b@b.example"}).status_code in (
            404,
            405,
        )
    for url in (
        f"/channels/{seeded['channel_id']}",
        f"/channels/{seeded['channel_id']}/active",
        f"/channels/{seeded['channel_id']}/test",
        f"/duty-shifts/{seeded['shift_id']}/delete",
        f"/notifications/{seeded['notification_id']}/retry",
    ):
        assert manager_b.post(url, data={"active": "0", "target": "x@b.example"}).status_code == 404
    # B's own roster naming A's channel: A's channel is not found
    r = manager_b.post(
        f"/communities/{world.b.community}/roster",
        data={"kind": "weekly", "channel": seeded["channel_id"], "weekdays": "0",
              "start": "08:00", "end": "09:00"},
    )  # fmt: skip
    assert r.status_code == 404
    assert "hooks.example" not in manager_b.get(f"/communities/{world.b.community}/channels").text
    assert audit(world, seeded["community_id"]) == before
    assert world.ok("GET", "/api/v1/duty-shifts", params={"community": world.b.community}) == []


@pytest.fixture
def technician(app, world) -> WebClient:
    world.technician(world.a, "tech-notify")
    web = WebClient(app)
    web.login("tech-notify", MANAGER_PASSWORD)
    return web


def _posts(seeded) -> list[tuple[str, dict]]:
    a, channel = seeded["community_id"], seeded["channel_id"]
    return [
        (f"/communities/{a}/channels", {"kind": "email", "target": "ro@a.example"}),
        (f"/channels/{channel}", {"target": "https://hooks.example/ro"}),
        (f"/channels/{channel}/active", {"active": "0"}),
        (f"/channels/{channel}/test", {}),
        (
            f"/communities/{a}/roster",
            {
                "kind": "weekly",
                "channel": channel,
                "weekdays": "6",
                "start": "08:00",
                "end": "09:00",
            },
        ),
        (f"/duty-shifts/{seeded['shift_id']}/delete", {}),
        (f"/notifications/{seeded['notification_id']}/retry", {}),
    ]


def test_a_role_that_may_not_change_them_reads_only(monkeypatch, manager_a, world, seeded):
    """A role outside OPERATIONS_ROLES (the API's rule, in one place) sees the
    pages without their forms, and every form answers 403."""
    monkeypatch.setattr(deps, "OPERATIONS_ROLES", ("admin",))
    before = audit(world, seeded["community_id"])
    for url in urls(seeded["community_id"]):
        html = manager_a.get(url).text
        assert 'id="read-only"' in html and "只能查看" in html, url
        assert 'method="post" action="/channels' not in html, url
        assert 'action="/duty-shifts/' not in html and "/retry" not in html, url
        assert f'method="post" action="{url}"' not in html, url
    for url, data in _posts(seeded):
        assert manager_a.post(url, data=data).status_code == 403, url
    assert audit(world, seeded["community_id"]) == before
    assert world.ok("GET", f"/api/v1/channels/{seeded['channel_id']}")["active"] is True


def test_a_technician_sees_none_of_it(technician, world, seeded):
    before = audit(world, seeded["community_id"])
    for url in urls(seeded["community_id"]):
        assert technician.get(url).status_code == 404, url
    for url, data in _posts(seeded):
        assert technician.post(url, data=data).status_code == 404, url
    assert audit(world, seeded["community_id"]) == before
