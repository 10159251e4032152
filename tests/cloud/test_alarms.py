"""Alarms: from node events and from the cloud's silent-device check;
open → acknowledged → resolved, deduplicated while unresolved, escalated
when nobody acknowledges them."""

from kapok.cloud.checks import run_checks

from .helpers import meter_reading

T0 = 1767225600


def event(world, place, device, seq, code, value=None, rx=None):
    ev = (code, T0 + seq, value) if value is not None else (code, T0 + seq)
    msg = meter_reading(device, seq, T0 + seq, 1.0, events=[ev])
    return world.ingest(place, [(rx or T0 + seq, msg)])


def alarms(world, **params):
    return world.ok("GET", "/api/v1/alarms", params=params)


def test_events_become_alarms_with_a_severity(world):
    a = world.a
    event(world, a, a.gas, 1, "gas.leak", 23.5)
    event(world, a, a.gas, 2, "battery.low", 3.0)
    event(world, a, a.gas, 3, "door.open")  # an event, not an alarm
    found = {x["code"]: x for x in alarms(world)}
    assert set(found) == {"gas.leak", "battery.low"}
    leak = found["gas.leak"]
    assert (leak["severity"], leak["state"], leak["device"], leak["community"], leak["value"]) == (
        "critical",
        "open",
        a.gas,
        a.community,
        23.5,
    )
    assert found["battery.low"]["severity"] == "minor"
    assert [x["code"] for x in alarms(world, severity="critical")] == ["gas.leak"]


def test_an_alarm_is_deduplicated_until_it_is_resolved(world):
    a = world.a
    for seq in (1, 2, 3):
        event(world, a, a.gas, seq, "water.leak", seq)
    [alarm] = alarms(world)
    assert alarm["count"] == 3 and alarm["value"] == 3
    world.ok("POST", f"/api/v1/alarms/{alarm['id']}/ack", headers=a.manager_headers)
    event(world, a, a.gas, 4, "water.leak")
    [alarm] = alarms(world)
    assert alarm["count"] == 4 and alarm["state"] == "acknowledged"
    world.ok("POST", f"/api/v1/alarms/{alarm['id']}/resolve", headers=a.manager_headers)
    event(world, a, a.gas, 5, "water.leak")
    assert [(x["state"], x["count"]) for x in alarms(world)] == [("open", 1), ("resolved", 4)]


def test_acknowledge_and_resolve_record_who_and_when(world, client):
    a = world.a
    event(world, a, a.gas, 1, "smoke")
    [alarm] = alarms(world)
    world.clock.advance(120)
    acked = world.ok(
        "POST",
        f"/api/v1/alarms/{alarm['id']}/ack",
        json={"note": "去看了"},
        headers=a.manager_headers,
    )
    assert (acked["state"], acked["acked_by"], acked["acked_at"], acked["note"]) == (
        "acknowledged",
        a.manager,
        T0 + 120,
        "去看了",
    )
    r = client.post(f"/api/v1/alarms/{alarm['id']}/ack", headers=a.manager_headers)
    assert r.status_code == 409
    world.clock.advance(60)
    done = world.ok("POST", f"/api/v1/alarms/{alarm['id']}/resolve", headers=world.admin_headers)
    assert (done["state"], done["resolved_by"], done["resolved_at"]) == (
        "resolved",
        "admin",
        T0 + 180,
    )
    assert (
        client.post(f"/api/v1/alarms/{alarm['id']}/resolve", headers=a.manager_headers).status_code
        == 409
    )
    log = world.ok("GET", "/api/v1/audit", params={"community": a.community})
    actions = [(e["action"], e["actor"]) for e in log if e["action"].startswith("alarm.")]
    assert actions == [
        ("alarm.resolve", "user:admin"),
        ("alarm.ack", f"user:{a.manager}"),
        ("alarm.notify", "system"),  # its first step (no channels yet: nobody reached)
    ]
    assert alarms(world, active=True) == []


def test_unacknowledged_alarms_take_the_steps_of_the_escalation_policy(world, app):
    """The default policy of a critical alarm: on duty at once, the managers
    after 5 min, the emergency contacts after 15 min (escalation_level
    counts the steps taken)."""
    a = world.a
    event(world, a, a.gas, 1, "gas.leak")
    event(world, a, a.hub, 1, "sos", rx=T0 + 1)
    [sos, leak] = alarms(world)
    assert leak["escalation_level"] == 1 and leak["escalated_at"] is None
    world.ok("POST", f"/api/v1/alarms/{sos['id']}/ack")
    run_checks(app, T0 + 5 * 60 - 1)
    assert world.ok("GET", f"/api/v1/alarms/{leak['id']}")["escalation_level"] == 1
    run_checks(app, T0 + 5 * 60)
    got = world.ok("GET", f"/api/v1/alarms/{leak['id']}")
    assert (got["escalation_level"], got["escalated_at"]) == (2, T0 + 5 * 60)
    run_checks(app, T0 + 5 * 60 + 60)  # nothing new before the next step
    assert world.ok("GET", f"/api/v1/alarms/{leak['id']}")["escalation_level"] == 2
    run_checks(app, T0 + 3600)  # the last step, once
    run_checks(app, T0 + 7200)
    assert world.ok("GET", f"/api/v1/alarms/{leak['id']}")["escalation_level"] == 3
    # the acknowledged one never goes past its first step
    assert world.ok("GET", f"/api/v1/alarms/{sos['id']}")["escalation_level"] == 1
    log = world.ok("GET", "/api/v1/audit", params={"action": "alarm.escalate"})
    log = [e for e in log if e["target"] == f"alarm:{leak['id']}"]
    assert [(e["detail"]["level"], e["detail"]["notify"]) for e in log] == [
        (3, "emergency"),
        (2, "manager"),
    ]
    assert log[0]["actor"] == "system"


def test_a_silent_device_raises_an_alarm_that_clears_when_it_speaks(world, app, settings):
    a = world.a
    world.ingest(a, [(T0, meter_reading(a.gas, 1, T0, 1.0))])
    interval = world.ok("GET", f"/api/v1/devices/{a.gas}")["interval"]
    limit = interval * settings.silent_factor
    run_checks(app, T0 + limit - 1)
    assert [x for x in alarms(world) if x["device"] == a.gas] == []
    run_checks(app, T0 + limit + 1)
    run_checks(app, T0 + limit + 100)  # once, not once per check
    silent = [x for x in alarms(world) if x["device"] == a.gas]
    assert [(x["code"], x["severity"], x["count"]) for x in silent] == [("silent", "major", 1)]
    assert silent[0]["value"]["last_seen"] == T0
    # never-heard devices count from their registration
    others = {x["device"] for x in alarms(world, community=a.community) if x["code"] == "silent"}
    assert others == {a.gas, a.water, a.hub}
    world.ingest(a, [(T0 + limit + 200, meter_reading(a.gas, 2, T0 + limit + 200, 1.0))])
    got = world.ok("GET", f"/api/v1/alarms/{silent[0]['id']}")
    assert (got["state"], got["resolved_by"]) == ("resolved", "system")
    # removed devices are not expected to speak
    world.ok("PATCH", f"/api/v1/devices/{a.water}", json={"removed_at": T0 + 1})
    water = [x for x in alarms(world, device=a.water, active=True)]
    world.ok("POST", f"/api/v1/alarms/{water[0]['id']}/resolve")
    run_checks(app, T0 + 10 * limit)
    assert alarms(world, device=a.water, active=True) == []


def test_alarms_filter_by_community_device_and_state(world):
    a, b = world.a, world.b
    event(world, a, a.gas, 1, "tamper")
    event(world, b, b.gas, 1, "tamper")
    assert {x["community"] for x in alarms(world)} == {a.community, b.community}
    assert [x["device"] for x in alarms(world, community=b.community)] == [b.gas]
    assert [x["device"] for x in alarms(world, device=a.gas)] == [a.gas]
    assert alarms(world, state="resolved") == []
