"""Channels and rosters through the API: checked targets, secrets never
shown again, another community's channels invisible, a test message, and
the group robots (WeCom, DingTalk) against servers speaking their formats."""

from ..test_alarms import event
from .peers import HookServer


def test_a_channel_is_checked_and_its_secret_never_shown(world):
    a = world.a
    for kind, target in (
        ("webhook", "ftp://x"),
        ("email", "not-an-address"),
        ("sms", "12345"),
        ("wecom", "duty@kapok.example"),
    ):
        r = world.client.post(
            "/api/v1/channels",
            json={"community": a.community, "kind": kind, "target": target},
            headers=world.admin_headers,
        )
        assert r.status_code == 422, (kind, target, r.text)
    made = world.ok(
        "POST",
        "/api/v1/channels",
        201,
        json={
            "community": a.community,
            "kind": "webhook",
            "target": "https://x.example/h",
            "secret": "s3cret",
        },
    )
    assert made["has_secret"] and "secret" not in made and made["audience"] == "all"
    sms = world.ok(
        "POST",
        "/api/v1/channels",
        201,
        json={"community": a.community, "kind": "sms", "target": "+86 138-0013-8000"},
    )
    assert sms["audience"] == "duty"
    changed = world.ok("PATCH", f"/api/v1/channels/{made['id']}", json={"active": False})
    assert changed["active"] is False
    log = world.ok("GET", "/api/v1/audit", params={"community": a.community})
    creates = [e for e in log if e["action"] == "channel.create"]
    assert all("s3cret" not in str(e) for e in log) and len(creates) == 2


def test_another_communitys_manager_sees_none_of_it(world):
    a, b = world.a, world.b
    ch = world.ok(
        "POST",
        "/api/v1/channels",
        201,
        json={"community": a.community, "kind": "email", "target": "x@a.example"},
    )
    client, headers = world.client, b.manager_headers
    assert client.get("/api/v1/channels", headers=headers).json() == []
    assert client.get(f"/api/v1/channels/{ch['id']}", headers=headers).status_code == 404
    r = client.post(
        "/api/v1/duty-shifts",
        headers=headers,
        json={
            "community": b.community,
            "channel": ch["id"],
            "weekdays": [0],
            "start": "08:00",
            "end": "09:00",
        },
    )
    assert r.status_code == 404
    own = client.get("/api/v1/channels", headers=a.manager_headers).json()
    assert [c["id"] for c in own] == [ch["id"]]


def test_a_test_message_goes_out_in_the_channels_language(world, deliver):
    a = world.a
    with HookServer() as hook:
        ch = world.ok(
            "POST",
            "/api/v1/channels",
            201,
            json={"community": a.community, "kind": "webhook", "target": hook.url, "lang": "en"},
        )
        n = world.ok("POST", f"/api/v1/channels/{ch['id']}/test", 202)
        assert n["state"] == "pending"
        deliver()
        [got] = hook.received
    assert got["body"]["type"] == "test"
    assert got["body"]["message"]["subject"] == "Kapok test message — Community A"


def test_wecom_and_a_signed_dingtalk_robot_get_markdown(world, deliver):
    a = world.a
    with HookServer(kind="wecom") as wecom, HookServer(kind="dingtalk", secret="SECabc") as ding:
        world.ok(
            "POST",
            "/api/v1/channels",
            201,
            json={"community": a.community, "kind": "wecom", "target": wecom.url},
        )
        world.ok(
            "POST",
            "/api/v1/channels",
            201,
            json={
                "community": a.community,
                "kind": "dingtalk",
                "target": ding.url,
                "secret": "SECabc",
            },
        )
        wecom.errcodes = [45009]  # the robot's rate limit: tried again later
        event(world, a, a.gas, 1, "gas.leak", 35)
        deliver()
        assert wecom.received == [] and len(ding.received) == 1
        [waiting] = world.ok("GET", "/api/v1/notifications", params={"state": "pending"})
        assert waiting["last_error"].startswith("wecom errcode 45009")
        deliver(waiting["next_at"])
        [w] = wecom.received
    content = w["body"]["markdown"]["content"]
    assert content.startswith("**【紧急】燃气泄漏 — Community A 1栋 101**") and "35 %LEL" in content
    md = ding.received[0]["body"]["markdown"]
    assert md["title"] == "【紧急】燃气泄漏 — Community A 1栋 101" and "gm-a1" in md["text"]


def test_a_robot_that_refuses_the_message_is_a_dead_letter(world, deliver):
    a = world.a
    with HookServer(kind="dingtalk", secret="right") as ding:
        world.ok(
            "POST",
            "/api/v1/channels",
            201,
            json={
                "community": a.community,
                "kind": "dingtalk",
                "target": ding.url,
                "secret": "wrong",
            },
        )
        event(world, a, a.hub, 1, "sos")
        deliver()
    [dead] = world.ok("GET", "/api/v1/notifications", params={"state": "dead"})
    assert dead["last_error"] == "dingtalk errcode 310000: sign not match"
