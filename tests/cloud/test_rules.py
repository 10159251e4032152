"""A community's rules and thresholds: GB 5749-2022 defaults, validated
changes that are new versions (who, when, what changed), scoped to the
community's managers, delivered to the gateway's registry and to the nodes
as signed thresholds.set commands; the cloud's own checks follow them."""

from kapok.cloud.checks import run_checks
from kapok.protocols import cose, messages, senml

from .helpers import meter_reading, uplink

T0 = 1767225600


def rules_url(place) -> str:
    return f"/api/v1/communities/{place.community}/rules"


def put(world, place, body, status=200, headers=None):
    return world.ok(
        "PUT", rules_url(place), status, headers=headers or place.manager_headers, json=body
    )


def quality_reading(device, seq, **values) -> bytes:
    records = [senml.record(n, v) for n, v in values.items()]
    return uplink(device, seq, T0 + seq, records=senml.pack(records, device))


def test_a_community_starts_from_the_gb5749_defaults(world):
    a = world.a
    got = world.ok("GET", rules_url(a), headers=a.manager_headers)
    assert got["version"] == 0 and got["created_by"] is None
    assert got["rules"] == got["defaults"]
    assert got["rules"]["quality"] == {"ph": [6.5, 8.5], "turb": [None, 1.0], "cl": [0.05, 2.0]}
    assert got["rules"]["battery_low_v"] == 3.3
    assert got["rules"]["continuous_flow_h"] == {"gas-meter": 6, "water-meter": 24}
    registry = world.ok("GET", "/api/v1/gateway/registry", headers=a.gateway_headers)
    assert registry["rules"] == got["rules"]["failsafe"]
    assert world.ok("GET", f"{rules_url(a)}/versions", headers=a.manager_headers) == []


def test_a_change_is_a_new_version_with_who_when_and_what(world):
    a = world.a
    before = world.ok("GET", "/api/v1/gateway/registry", headers=a.gateway_headers)["version"]
    world.clock.advance(60)
    got = put(world, a, {"quality": {"turb": [None, 3]}, "note": "small supply, 3 NTU"})
    assert (got["version"], got["created_by"], got["created_at"]) == (1, a.manager, T0 + 60)
    assert got["rules"]["quality"]["turb"] == [None, 3] and got["rules"]["quality"]["ph"] == [
        6.5,
        8.5,
    ]
    # no change: no new version
    assert put(world, a, {"quality": {"turb": [None, 3]}})["version"] == 1
    world.clock.advance(60)
    rules = [{"event": "water.leak", "op": "siren.on", "target": "unit:hub"}]
    got = put(
        world, a, {"failsafe": rules, "silent_minutes": {"hub": 10}}, headers=world.admin_headers
    )
    assert (got["version"], got["created_by"]) == (2, "admin")
    versions = world.ok("GET", f"{rules_url(a)}/versions", headers=a.manager_headers)
    assert [(v["version"], v["created_by"], v["created_at"]) for v in versions] == [
        (2, "admin", T0 + 120),
        (1, a.manager, T0 + 60),
    ]
    assert versions[1]["changes"] == [{"key": "quality.turb", "old": [None, 1.0], "new": [None, 3]}]
    assert {c["key"] for c in versions[0]["changes"]} == {"failsafe", "silent_minutes.hub"}
    # the old version stays readable as it was
    old = world.ok("GET", f"{rules_url(a)}/versions/1", headers=a.manager_headers)
    assert old["rules"]["failsafe"] != rules and old["note"] == "small supply, 3 NTU"
    world.ok("GET", f"{rules_url(a)}/versions/9", 404, headers=a.manager_headers)
    # audited; the gateway's registry carries the new fail-safe rules
    log = world.ok("GET", "/api/v1/audit", params={"action": "rules.update"})
    assert [(e["actor"], e["detail"]["version"]) for e in log] == [
        ("user:admin", 2),
        (f"user:{a.manager}", 1),
    ]
    registry = world.ok("GET", "/api/v1/gateway/registry", headers=a.gateway_headers)
    assert registry["version"] > before and registry["rules"] == rules
    # community B is untouched
    b = world.ok("GET", "/api/v1/gateway/registry", headers=world.b.gateway_headers)
    assert b["rules"] == got["defaults"]["failsafe"]


def test_bad_rules_get_a_clear_422_and_change_nothing(world):
    a = world.a
    cases = [
        ({"quality": {"ph": [8.5, 6.5]}}, "low 8.5 is above high 6.5"),
        ({"quality": {"cl": [None, None]}}, "at least one bound"),
        (
            {"failsafe": [{"event": "gas.lake", "op": "valve.close", "target": "self"}]},
            "unknown event code",
        ),
        (
            {"failsafe": [{"event": "gas.leak", "op": "valve.open", "target": "self"}]},
            "fail-safe ops",
        ),
        ({"failsafe": [{"event": "gas.leak", "op": "siren.on", "target": "hub"}]}, "pattern"),
        ({"auto_resolve_minutes": {"gas.leak": 5}}, "life-safety"),
        ({"auto_resolve_minutes": {"no.such": 5}}, "unknown alarm kind"),
        ({"silent_minutes": {"toaster": 5}}, "unknown device kind"),
        ({"battery_low_v": -1}, "greater than 0"),
        ({"colour": "red"}, "Extra inputs"),
    ]
    for body, words in cases:
        r = world.client.put(rules_url(a), json=body, headers=a.manager_headers)
        assert r.status_code == 422, body
        assert words in r.text, (body, r.text)
    assert world.ok("GET", rules_url(a), headers=a.manager_headers)["version"] == 0


def test_rules_are_scoped_to_the_communitys_managers(world, client):
    a, b = world.a, world.b
    for method, url in [
        ("GET", rules_url(a)),
        ("PUT", rules_url(a)),
        ("GET", f"{rules_url(a)}/versions"),
        ("GET", f"{rules_url(a)}/versions/1"),
    ]:
        body = {"battery_low_v": 3.0} if method == "PUT" else None
        assert client.request(method, url, json=body, headers=b.manager_headers).status_code == 404
        assert client.request(method, url, json=body).status_code == 401
    assert world.ok("GET", rules_url(a), headers=a.manager_headers)["version"] == 0


def test_thresholds_go_to_the_nodes_signed_and_their_delivery_shows(world, app):
    a = world.a
    world.register("wq-a1", "water-quality", a.gateway, unit=a.unit)
    # the gas meter has reported its battery; the hub has not
    world.ingest(a, [(T0, meter_reading(a.gas, 1, T0, 1.0))])
    got = put(world, a, {"quality": {"turb": [None, 3]}})
    [wq] = got["delivery"]
    assert (wq["device"], wq["state"], wq["args"]["turb"]) == ("wq-a1", "queued", [None, 3])
    got = put(world, a, {"battery_low_v": 3.1, "continuous_flow_h": {"gas-meter": 2}})
    delivery = {d["device"]: d for d in got["delivery"]}
    assert set(delivery) == {"wq-a1", a.gas}  # the water meter and hub: nothing differs
    assert delivery[a.gas]["args"] == {"continuous_h": 2, "bat": 3.1}
    # the gateway gets them signed by the cloud's key, and reports delivery
    polled = world.ok("GET", "/api/v1/gateway/commands", headers=a.gateway_headers)
    gas = [c for c in polled if c["device"] == a.gas and c["op"] == "thresholds.set"][-1]
    payload = cose.verify1(bytes.fromhex(gas["cose"]), app.state.keys.public_key("cloud"))
    cmd = messages.parse_command(payload)
    assert (cmd["device_id"], cmd["op"], cmd["args"]) == (
        a.gas,
        "thresholds.set",
        {"continuous_h": 2, "bat": 3.1},
    )
    world.ok(
        "POST",
        f"/api/v1/gateway/commands/{gas['id']}/status",
        204,
        headers=a.gateway_headers,
        json={"state": "delivered"},
    )
    msg = meter_reading(a.gas, 2, T0 + 2, 1.0, results=[(cmd["cmd_id"], 0, None)])
    world.ingest(a, [(T0 + 2, msg)])
    delivery = {
        d["device"]: d for d in world.ok("GET", rules_url(a), headers=a.manager_headers)["delivery"]
    }
    assert delivery[a.gas]["state"] == "done" and delivery["wq-a1"]["state"] == "queued"


def test_silent_period_per_kind_replaces_the_global_factor(world, app, settings):
    a = world.a
    put(world, a, {"silent_minutes": {"hub": 10}})
    run_checks(app, T0 + 10 * 60 + 1)
    silent = {x["device"] for x in world.ok("GET", "/api/v1/alarms") if x["code"] == "silent"}
    assert silent == {a.hub}  # the meters wait for factor x interval, B's hub too
    world.ingest(a, [(T0 + 700, uplink(a.hub, 1, T0 + 700, records=[senml.record("temp", 20.0)]))])
    [alarm] = [x for x in world.ok("GET", "/api/v1/alarms") if x["code"] == "silent"]
    assert (alarm["state"], alarm["cleared"], alarm["resolved_by"]) == ("resolved", True, "system")


def test_a_quality_alarm_clears_and_auto_resolves_as_the_rules_say(world, app):
    a = world.a
    world.register("wq-a1", "water-quality", a.gateway, unit=a.unit)
    ev = uplink(
        "wq-a1",
        1,
        T0 + 1,
        records=[senml.record("turb", 4.5)],
        events=[("quality.turb", T0 + 1, 4.5)],
    )
    world.ingest(a, [(T0 + 1, ev)])
    [alarm] = world.ok("GET", "/api/v1/alarms", params={"device": "wq-a1"})
    assert (alarm["state"], alarm["cleared"]) == ("open", False)
    # still out: nothing clears; the node's own event is the alarm (no duplicate)
    world.ingest(a, [(T0 + 60, quality_reading("wq-a1", 2, turb=2.0))])
    assert world.ok("GET", f"/api/v1/alarms/{alarm['id']}")["cleared_at"] is None
    world.clock.advance(120)
    world.ingest(a, [(T0 + 120, quality_reading("wq-a1", 3, turb=0.4))])
    got = world.ok("GET", f"/api/v1/alarms/{alarm['id']}")
    assert (got["state"], got["cleared"], got["cleared_at"]) == ("open", True, T0 + 120)
    # no auto-resolve rule yet: it waits for a person
    run_checks(app, T0 + 3600)
    assert world.ok("GET", f"/api/v1/alarms/{alarm['id']}")["state"] == "open"
    put(world, a, {"auto_resolve_minutes": {"quality.turb": 30}})
    # out again, then back: the 30 minutes count from the last clearing
    world.ingest(a, [(T0 + 3700, quality_reading("wq-a1", 4, turb=5.0))])
    assert world.ok("GET", f"/api/v1/alarms/{alarm['id']}")["cleared"] is False
    world.clock.now = T0 + 4000
    world.ingest(a, [(T0 + 4000, quality_reading("wq-a1", 5, turb=0.5))])
    run_checks(app, T0 + 4000 + 29 * 60)
    assert world.ok("GET", f"/api/v1/alarms/{alarm['id']}")["state"] == "open"
    run_checks(app, T0 + 4000 + 30 * 60)
    got = world.ok("GET", f"/api/v1/alarms/{alarm['id']}")
    assert (got["state"], got["resolved_by"], got["resolved_at"]) == (
        "resolved",
        "system",
        T0 + 5800,
    )
    actions = [
        e["action"]
        for e in world.ok("GET", "/api/v1/audit")
        if e["target"] == f"alarm:{alarm['id']}"
        and e["action"] not in ("alarm.escalate", "alarm.notify")
    ]
    assert actions == ["alarm.resolve", "alarm.clear", "alarm.clear"]


def test_battery_low_follows_the_communitys_level(world, app):
    a = world.a
    low = uplink(a.gas, 1, T0 + 1, compact=senml.compact(1, [1.0, 3.2, -100]))
    world.ingest(a, [(T0 + 1, low)])
    [alarm] = world.ok("GET", "/api/v1/alarms", params={"device": a.gas})
    assert (alarm["code"], alarm["value"]) == ("battery.low", 3.2)
    put(world, a, {"battery_low_v": 3.0, "auto_resolve_minutes": {"battery.low": 0}})
    world.ingest(
        a, [(T0 + 2, uplink(a.gas, 2, T0 + 2, compact=senml.compact(1, [1.0, 3.2, -100])))]
    )
    got = world.ok("GET", f"/api/v1/alarms/{alarm['id']}")
    assert (got["cleared"], got["state"], got["resolved_by"]) == (True, "resolved", "system")


def test_life_safety_alarms_never_resolve_by_themselves(world, app):
    """Even a stored document that asks for it (written around the API's
    validation) and an alarm marked cleared: a person resolves a gas leak."""
    from kapok.cloud.core.db import session_scope
    from kapok.cloud.models import Alarm, RuleVersion
    from kapok.cloud.rule_defaults import defaults

    a = world.a
    leak = meter_reading(a.gas, 1, T0 + 1, 1.0, events=[("gas.leak", T0 + 1, 30)])
    world.ingest(a, [(T0 + 1, leak)])
    doc = defaults()
    doc["auto_resolve_minutes"] = {"gas.leak": 0, "smoke": 0, "sos": 0}
    with session_scope(app.state.sessions) as session:
        session.add(
            RuleVersion(
                community_id=a.community, version=1, rules=doc, created_at=T0, created_by="x"
            )
        )
        for alarm in session.query(Alarm):
            alarm.cleared_at = T0 + 2
    run_checks(app, T0 + 3600)
    [got] = [x for x in world.ok("GET", "/api/v1/alarms") if x["code"] == "gas.leak"]
    assert (got["state"], got["cleared"]) == ("open", True)


def test_a_device_registered_later_gets_the_communitys_thresholds(world):
    a = world.a
    put(world, a, {"quality": {"cl": [0.3, 2]}})  # a station at the works outlet
    world.register("wq-a2", "water-quality", a.gateway, unit=a.unit)
    world.register("wq-b2", "water-quality", world.b.gateway, unit=world.b.unit)
    [sent] = world.ok("GET", "/api/v1/devices/wq-a2/commands")
    assert (sent["op"], sent["args"]["cl"], sent["args"]["turb"]) == (
        "thresholds.set",
        [0.3, 2.0],
        [None, 1.0],
    )
    assert world.ok("GET", "/api/v1/devices/wq-b2/commands") == []  # B runs the defaults


def test_a_silent_alarm_kept_after_clearing_comes_back_when_the_device_falls_silent_again(
    world, app
):
    a = world.a
    put(world, a, {"silent_minutes": {"hub": 10}, "auto_resolve_minutes": {"silent": None}})
    run_checks(app, T0 + 601)
    hub = uplink(a.hub, 1, T0 + 700, records=[senml.record("temp", 20.0)])
    world.ingest(a, [(T0 + 700, hub)])
    [alarm] = [x for x in world.ok("GET", "/api/v1/alarms") if x["code"] == "silent"]
    assert (alarm["state"], alarm["cleared"]) == ("open", True)  # a person resolves it
    run_checks(app, T0 + 700 + 601)
    got = world.ok("GET", f"/api/v1/alarms/{alarm['id']}")
    assert (got["state"], got["cleared"], got["count"]) == ("open", False, 2)
