"""Commands: signed by the cloud key, fetched by the gateway's long poll,
moved along by delivery reports and by the node's own signed verdict."""

import threading
import time

from kapok.protocols import cose, messages, senml

from .helpers import meter_reading, uplink

T0 = 1767225600


def send(world, device_id, op, args=None, headers=None, status=201, **extra):
    return world.ok(
        "POST",
        f"/api/v1/devices/{device_id}/commands",
        status,
        json={"op": op, "args": args or {}, **extra},
        headers=headers,
    )


def poll(client, place, wait=0):
    r = client.get("/api/v1/gateway/commands", params={"wait": wait}, headers=place.gateway_headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_command_is_signed_by_the_cloud_key_for_that_device(world, client, app):
    a = world.a
    c = send(world, a.gas, "interval.set", {"s": 1800}, headers=a.manager_headers, ttl=600)
    assert c["state"] == "queued" and c["authority"] == "cloud" and c["created_by"] == a.manager
    raw = bytes.fromhex(c["cose"])
    assert cose.kid(raw) == b"cloud"
    # verify with the public key the registry gives the gateway (and the node)
    registry = client.get("/api/v1/gateway/registry", headers=a.gateway_headers).json()
    payload = cose.verify1(raw, bytes.fromhex(registry["authorities"]["cloud"]))
    assert messages.parse_command(payload) == {
        "cmd_id": c["cmd_id"],
        "device_id": a.gas,
        "op": "interval.set",
        "args": {"s": 1800},
        "not_after": int(T0) + 600,
    }
    audit = world.ok("GET", "/api/v1/audit", params={"action": "command.create"})
    assert audit[0]["actor"] == f"user:{a.manager}" and audit[0]["detail"]["op"] == "interval.set"


def test_cmd_ids_increase_per_device(world):
    a = world.a
    ids = [send(world, a.gas, "siren.off")["cmd_id"] for _ in range(3)]
    assert ids == [1, 2, 3]
    assert send(world, a.hub, "siren.on")["cmd_id"] == 1
    assert send(world, a.gas, "reboot")["cmd_id"] == 4


def test_bad_commands_get_422_and_use_no_cmd_id(world):
    a = world.a
    for op, args in (
        ("valve.explode", {}),
        ("interval.set", {"s": 0}),
        ("interval.set", {}),
        ("valve.close", {"x": 1}),
        ("fw.update", {"m": "00"}),
    ):
        r = world.client.post(
            f"/api/v1/devices/{a.gas}/commands",
            json={"op": op, "args": args},
            headers=world.admin_headers,
        )
        assert r.status_code == 422, (op, r.text)
    assert send(world, a.gas, "valve.close")["cmd_id"] == 1


def test_the_gateway_fetches_and_reports_delivery(world, client):
    a = world.a
    assert poll(client, a) == []
    c = send(world, a.gas, "valve.close")
    got = poll(client, a)
    assert got == [
        {
            "id": c["id"],
            "device": a.gas,
            "cmd_id": c["cmd_id"],
            "op": "valve.close",
            "not_after": c["not_after"],
            "cose": c["cose"],
        }
    ]
    status = lambda state, **kw: client.post(  # noqa: E731
        f"/api/v1/gateway/commands/{c['id']}/status",
        json={"state": state, **kw},
        headers=a.gateway_headers,
    )
    assert status("sent", at=T0 + 1).status_code == 204
    assert world.ok("GET", f"/api/v1/commands/{c['id']}")["state"] == "sent"
    assert poll(client, a)[0]["id"] == c["id"]  # still listed until delivered
    assert status("delivered", at=T0 + 2).status_code == 204
    assert status("sent", at=T0 + 3).status_code == 204  # late report: no step back
    got = world.ok("GET", f"/api/v1/commands/{c['id']}")
    assert (got["state"], got["sent_at"], got["delivered_at"]) == ("delivered", T0 + 1, T0 + 2)
    assert poll(client, a) == []
    assert status("exploded").status_code == 422


def test_the_long_poll_returns_as_soon_as_a_command_is_queued(world, client, settings, monkeypatch):
    # no periodic look: only the notification of the new command can wake it
    monkeypatch.setattr(settings, "long_poll_recheck_seconds", 60)
    a = world.a
    result = {}

    def wait():
        started = time.monotonic()
        result["commands"] = poll(client, a, wait=20)
        result["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()  # nothing queued: it waits
    c = send(world, a.gas, "valve.close")
    waiter.join(10)
    assert not waiter.is_alive()
    assert [x["id"] for x in result["commands"]] == [c["id"]]
    assert result["seconds"] < 10  # woken, not timed out (20 s)


def test_the_long_poll_waits_when_nothing_new_is_queued(world, client, settings):
    a = world.a
    c = send(world, a.gas, "valve.close")
    client.post(
        f"/api/v1/gateway/commands/{c['id']}/status",
        json={"state": "sent"},
        headers=a.gateway_headers,
    )
    started = time.monotonic()
    got = poll(client, a, wait=1)
    assert time.monotonic() - started >= 0.9
    assert [x["id"] for x in got] == [c["id"]]  # sent but not delivered: still listed


def test_the_node_s_verdict_makes_a_command_done_or_failed(world):
    a = world.a
    ok = send(world, a.hub, "siren.on")
    refused = send(world, a.hub, "interval.set", {"s": 5})
    msg = uplink(
        a.hub,
        1,
        T0 + 60,
        compact=senml.compact(6, [21.5, 40.0, 3.3, -80]),
        results=[(ok["cmd_id"], messages.OK), (refused["cmd_id"], messages.E_ARGS, "too short")],
    )
    world.ingest(a, [(T0 + 61, msg)])
    done = world.ok("GET", f"/api/v1/commands/{ok['id']}")
    failed = world.ok("GET", f"/api/v1/commands/{refused['id']}")
    assert (done["state"], done["result"], done["finished_at"]) == ("done", "ok", T0 + 60)
    assert world.ok("GET", f"/api/v1/devices/{a.hub}")["interval"] == 300  # refused: unchanged
    assert (failed["state"], failed["result"], failed["result_code"], failed["detail"]) == (
        "failed",
        "bad-args",
        messages.E_ARGS,
        "too short",
    )


def test_an_accepted_interval_becomes_the_device_s_expected_interval(world):
    a = world.a
    c = send(world, a.gas, "interval.set", {"s": 3600})
    world.ingest(a, [(T0 + 5, meter_reading(a.gas, 1, T0 + 5, 1.0, results=[(c["cmd_id"], 0)]))])
    assert world.ok("GET", f"/api/v1/devices/{a.gas}")["interval"] == 3600


def test_a_valve_command_is_confirmed_by_a_later_reading(world):
    a = world.a
    c = send(world, a.gas, "valve.close")
    valve = lambda seq, t, is_open, **kw: uplink(  # noqa: E731
        a.gas, seq, t, compact=senml.compact(3, [10.0, is_open, 3.3, -100]), **kw
    )
    # the verdict arrives with the valve still reported open (read before it moved)
    world.ingest(a, [(T0 + 10, valve(1, T0 + 10, True, results=[(c["cmd_id"], 0)]))])
    got = world.ok("GET", f"/api/v1/commands/{c['id']}")
    assert got["state"] == "done" and got["confirmed_at"] is None
    world.clock.advance(900)
    world.ingest(a, [(T0 + 900, valve(2, T0 + 900, False))])
    assert world.ok("GET", f"/api/v1/commands/{c['id']}")["confirmed_at"] == world.clock()


def test_a_command_expires_when_no_gateway_got_it_to_the_node(world, client, app):
    from kapok.cloud.checks import run_checks

    a = world.a
    c = send(world, a.gas, "valve.close", ttl=600)
    run_checks(app, T0 + 599)
    assert world.ok("GET", f"/api/v1/commands/{c['id']}")["state"] == "queued"
    world.clock.now = T0 + 600
    assert poll(client, a) == []  # past not_after: no longer offered
    run_checks(app, T0 + 600)
    got = world.ok("GET", f"/api/v1/commands/{c['id']}")
    assert got["state"] == "expired" and got["finished_at"] == T0 + 600
    # the node's word still counts if it did run it after all
    world.ingest(
        a, [(T0 + 700, meter_reading(a.gas, 1, T0 + 700, 1.0, results=[(c["cmd_id"], 0)]))]
    )
    assert world.ok("GET", f"/api/v1/commands/{c['id']}")["state"] == "done"


def test_a_gateway_can_report_a_command_undeliverable(world, client):
    a = world.a
    c = send(world, a.gas, "valve.close")
    r = client.post(
        f"/api/v1/gateway/commands/{c['id']}/status",
        json={"state": "failed", "detail": "node never woke"},
        headers=a.gateway_headers,
    )
    assert r.status_code == 204
    got = world.ok("GET", f"/api/v1/commands/{c['id']}")
    assert (got["state"], got["result"], got["detail"]) == (
        "failed",
        "undeliverable",
        "node never woke",
    )


def test_commands_to_a_removed_device_are_refused(world):
    a = world.a
    world.ok("PATCH", f"/api/v1/devices/{a.gas}", json={"removed_at": T0})
    r = world.client.post(
        f"/api/v1/devices/{a.gas}/commands", json={"op": "valve.close"}, headers=world.admin_headers
    )
    assert r.status_code == 409
