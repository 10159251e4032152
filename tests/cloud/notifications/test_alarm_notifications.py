"""An alarm reaches people: the first step at once, escalation when nobody
acknowledges, the acknowledgement to everyone told, quiet hours, and every
step on the audit log. Real SMTP (aiosmtpd, STARTTLS + login) and a webhook
receiver that checks the HMAC itself."""

import hashlib
import hmac
import json

from kapok.cloud.checks import run_checks

from ..test_alarms import T0, event


def channel(world, place, kind, target, **extra):
    body = {"community": place.community, "kind": kind, "target": target, **extra}
    return world.ok("POST", "/api/v1/channels", 201, json=body)


def everyday(world, place, ch, start="00:00", end="00:00"):
    body = {
        "community": place.community,
        "channel": ch["id"],
        "weekdays": list(range(7)),
        "start": start,
        "end": end,
    }
    return world.ok("POST", "/api/v1/duty-shifts", 201, json=body)


def staff(world, place, hook):
    """A webhook, the person on duty, a manager and an emergency contact."""
    chans = {
        "hook": channel(world, place, "webhook", hook.url, secret="hook-secret-1"),
        "duty": channel(world, place, "email", "duty@kapok.example", name="值班员 李"),
        "manager": channel(
            world, place, "email", "manager@kapok.example", audience="manager", lang="en"
        ),
        "emergency": channel(
            world, place, "email", "emergency@kapok.example", audience="emergency"
        ),
    }
    everyday(world, place, chans["duty"])
    return chans


def inbox(mailbox):
    return [(m["to"][0], m["mail"]["Subject"]) for m in mailbox.messages]


def test_a_gas_leak_reaches_the_person_on_duty_and_the_webhook_at_once(
    world, hook, mailbox, deliver
):
    a = world.a
    staff(world, a, hook)
    event(world, a, a.gas, 1, "gas.leak", 35)
    [leak] = world.ok("GET", "/api/v1/alarms")
    queued = world.ok("GET", "/api/v1/notifications", params={"alarm": leak["id"]})
    assert sorted(n["state"] for n in queued) == ["pending", "pending"]
    assert deliver() == 2

    [mail] = mailbox.messages
    assert mail["to"] == ["duty@kapok.example"] and mail["tls"]
    assert mail["mail"]["Subject"] == "【紧急】燃气泄漏 — Community A 1栋 101"
    body = mail["mail"].get_content()
    assert "35 %LEL" in body and "gm-a1" in body
    assert f"https://kapok.example/alarms?community={a.community}#alarm-{leak['id']}" in body
    assert mail["mail"]["Message-ID"].startswith(f"<kapok-{leak['id']}-alarm.opened-0-")

    [got] = hook.received  # the receiver checked X-Kapok-Signature itself
    doc = got["body"]
    assert doc["type"] == "alarm.opened"
    assert {k: doc["alarm"][k] for k in ("id", "kind", "severity", "device", "state")} == {
        "id": leak["id"],
        "kind": "gas.leak",
        "severity": "critical",
        "device": a.gas,
        "state": "open",
    }
    assert (doc["alarm"]["community"], doc["alarm"]["unit"]) == (a.community, a.unit)
    assert doc["alarm"]["opened_at"] == leak["opened_at"]
    assert got["headers"]["X-Kapok-Delivery"].startswith(f"kapok-{leak['id']}-")
    states = world.ok("GET", "/api/v1/notifications", params={"alarm": leak["id"]})
    assert [n["state"] for n in states] == ["sent", "sent"]
    assert deliver() == 0  # sent once, never again


def test_nobody_acknowledges_so_it_escalates_then_an_ack_stops_the_chain(
    world, app, hook, mailbox, deliver, clock
):
    a = world.a
    staff(world, a, hook)
    event(world, a, a.gas, 1, "gas.leak", 40)
    [leak] = world.ok("GET", "/api/v1/alarms")
    opened = leak["opened_at"]
    deliver()
    run_checks(app, opened + 5 * 60 - 1)
    assert deliver(opened + 5 * 60 - 1) == 0
    run_checks(app, opened + 5 * 60)  # 5 min unacknowledged: the manager
    clock.now = opened + 5 * 60
    deliver()
    assert inbox(mailbox)[-1] == (
        "manager@kapok.example",
        "[Critical] Gas leak — Community A, 1栋, 101",
    )
    assert "Escalated: unacknowledged for 5 min" in mailbox.messages[-1]["mail"].get_content()
    assert [h["body"]["type"] for h in hook.received] == ["alarm.opened", "alarm.escalated"]

    clock.now = T0 + 600
    world.ok("POST", f"/api/v1/alarms/{leak['id']}/ack", headers=a.manager_headers)
    deliver()
    run_checks(app, T0 + 3600)  # acknowledged: no emergency step
    deliver()
    told = sorted(to for to, subject in inbox(mailbox))
    assert told == [
        "duty@kapok.example",
        "duty@kapok.example",
        "manager@kapok.example",
        "manager@kapok.example",
    ]
    assert hook.received[-1]["body"]["type"] == "alarm.acknowledged"
    assert hook.received[-1]["body"]["alarm"]["state"] == "acknowledged"

    log = world.ok("GET", "/api/v1/audit", params={"community": a.community})
    steps = [e for e in log if e["target"] == f"alarm:{leak['id']}"]
    assert [e["action"] for e in steps] == ["alarm.ack", "alarm.escalate", "alarm.notify"]
    assert steps[1]["detail"]["notify"] == "manager" and len(steps[1]["detail"]["channels"]) == 2
    sent = [e for e in log if e["action"] == "notify.sent"]
    assert len(sent) == 7  # 2 opened + 2 escalated + 3 acknowledged


def test_with_nobody_on_duty_the_managers_stand_in(world, hook, mailbox, deliver):
    a = world.a
    chans = staff(world, a, hook)
    [shift] = world.ok("GET", "/api/v1/duty-shifts", params={"community": a.community})
    world.ok("DELETE", f"/api/v1/duty-shifts/{shift['id']}", 204)
    who = world.ok("GET", f"/api/v1/communities/{a.community}/on-duty")
    assert who["managers_stand_in"] and [c["id"] for c in who["channels"]] == [
        chans["manager"]["id"]
    ]
    event(world, a, a.hub, 1, "smoke")
    deliver()
    assert [to for to, _ in inbox(mailbox)] == ["manager@kapok.example"]
    [notify] = [e for e in world.ok("GET", "/api/v1/audit") if e["action"] == "alarm.notify"]
    assert notify["detail"]["managers_for_empty_roster"] is True


def test_quiet_hours_hold_other_alarms_until_morning_but_never_a_gas_leak(
    world, hook, mailbox, deliver, clock
):
    a = world.a
    staff(world, a, hook)
    # T0 is 08:00 in Guangzhou: quiet hours 07:00-09:00 hold until 09:00
    world.ok(
        "PUT", f"/api/v1/communities/{a.community}/rules", json={"quiet_hours": ["07:00", "09:00"]}
    )
    event(world, a, a.gas, 1, "battery.low", 3.1)
    event(world, a, a.gas, 2, "gas.leak", 30)
    deliver()
    kinds = {
        (n["event"], n["message"]["body"]["alarm"]["kind"], n["state"])
        for n in world.ok("GET", "/api/v1/notifications")
    }
    assert ("alarm.opened", "battery.low", "pending") in kinds  # the e-mail waits
    assert [to for to, _ in inbox(mailbox)] == ["duty@kapok.example"]  # the leak's
    assert sorted(h["body"]["alarm"]["kind"] for h in hook.received) == ["battery.low", "gas.leak"]
    deliver(T0 + 3600 - 1)
    assert len(mailbox.messages) == 1
    deliver(T0 + 3600)  # 09:00
    assert inbox(mailbox)[-1] == ("duty@kapok.example", "【一般】电池电量低 — Community A 1栋 101")


def test_webhook_retries_back_off_then_dead_letter_shown_and_sent_again(
    world, hook, deliver, clock
):
    a = world.a
    ch = channel(world, a, "webhook", hook.url, secret="hook-secret-1")
    hook.statuses = [503, 500, 502]
    event(world, a, a.hub, 1, "sos")
    deliver(T0 + 10)  # try 1 fails
    [n] = world.ok("GET", "/api/v1/notifications")
    assert (n["state"], n["attempts"], n["next_at"], n["last_error"]) == (
        "pending",
        1,
        T0 + 10 + 30,
        "HTTP 503",
    )
    assert deliver(T0 + 39) == 0  # not yet
    deliver(T0 + 40)  # try 2 fails: next in 60 s
    [n] = world.ok("GET", "/api/v1/notifications")
    assert (n["attempts"], n["next_at"]) == (2, T0 + 40 + 60)
    deliver(T0 + 100)  # try 3 of 3 fails: dead letter
    [n] = world.ok("GET", "/api/v1/notifications", params={"state": "dead"})
    assert n["channel_id"] == ch["id"] and hook.received == []
    clock.now = T0 + 200
    world.ok("POST", f"/api/v1/notifications/{n['id']}/retry")
    deliver(T0 + 200)
    assert [h["body"]["type"] for h in hook.received] == ["alarm.opened"]
    log = world.ok("GET", "/api/v1/audit", params={"community": a.community})
    assert [e["action"] for e in log if e["action"].startswith("notify.")] == [
        "notify.sent",
        "notify.retry",
        "notify.dead",
    ]


def test_a_refusal_is_a_dead_letter_at_once(world, hook, mailbox, deliver):
    a = world.a
    bad = channel(world, a, "email", "nobody@refused.example", audience="duty")
    everyday(world, a, bad)
    wrong = channel(world, a, "webhook", hook.url, secret="not-the-receivers")
    event(world, a, a.hub, 1, "sos")
    deliver()
    dead = world.ok("GET", "/api/v1/notifications", params={"state": "dead"})
    assert sorted((n["channel_id"], n["attempts"]) for n in dead) == [
        (bad["id"], 1),
        (wrong["id"], 1),
    ]
    errors = {n["channel_id"]: n["last_error"] for n in dead}
    assert "550" in errors[bad["id"]] and errors[wrong["id"]] == "HTTP 401: refused"


def test_queued_notifications_survive_a_restart(world, app, settings, hook, clock):
    from kapok.cloud.main import create_app
    from kapok.cloud.notifications.sender import deliver_due

    a = world.a
    channel(world, a, "webhook", hook.url, secret="hook-secret-1")
    event(world, a, a.gas, 1, "gas.leak", 50)
    app.state.engine.dispose()  # the process ends before sending
    again = create_app(settings, clock=clock)
    assert deliver_due(again.state.sessions, settings, clock()) == 1
    assert deliver_due(again.state.sessions, settings, clock()) == 0
    assert [h["body"]["type"] for h in hook.received] == ["alarm.opened"]
    again.state.engine.dispose()


def test_a_sender_that_died_mid_send_is_replaced_after_its_lease(world, app, hook, deliver):
    from kapok.cloud.core.db import session_scope
    from kapok.cloud.notifications import outbox

    a = world.a
    channel(world, a, "webhook", hook.url, secret="hook-secret-1")
    event(world, a, a.gas, 1, "gas.leak", 50)
    with session_scope(app.state.sessions) as session:
        assert len(outbox.claim(session, now=T0 + 2)) == 1  # ... and then it died
    assert deliver(T0 + 2 + outbox.LEASE_SECONDS) == 0  # still leased
    assert deliver(T0 + 3 + outbox.LEASE_SECONDS) == 1
    [got] = hook.received
    assert got["body"]["type"] == "alarm.opened"


def test_the_signature_is_hmac_sha256_of_the_exact_body(world, hook, deliver):
    a = world.a
    channel(world, a, "webhook", hook.url, secret="hook-secret-1")
    event(world, a, a.hub, 1, "sos")
    deliver()
    [got] = hook.received
    raw = json.dumps(got["body"], ensure_ascii=False, separators=(",", ":")).encode()
    mine = hmac.new(b"hook-secret-1", raw, hashlib.sha256).hexdigest()
    assert got["headers"]["X-Kapok-Signature"] == f"sha256={mine}"
    assert got["headers"]["X-Kapok-Event"] == "alarm.opened"
