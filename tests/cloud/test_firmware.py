"""Firmware releases (signed manifests) and staged rollouts that halt by
themselves when updates fail."""

import hashlib

from kapok.protocols import cose, messages

from .helpers import meter_reading

T0 = 1767225600
BUNDLE = b"\x4d\x06" + bytes(range(256)) * 40  # stands in for a bundle of .mpy files


def upload(world, bundle=BUNDLE, version="1.2.0", board="esp32", app="meter", status=201):
    return world.ok(
        "POST",
        "/api/v1/firmware/releases",
        status,
        params={"version": version, "board": board, "app": app},
        content=bundle,
        headers={**world.admin_headers, "Content-Type": "application/octet-stream"},
    )


def test_a_release_gets_a_manifest_signed_by_the_firmware_key(world, client, app):
    release = upload(world)
    assert release["size"] == len(BUNDLE)
    assert release["sha256"] == hashlib.sha256(BUNDLE).hexdigest()
    manifest = bytes.fromhex(release["manifest"])
    assert cose.kid(manifest) == b"firmware"
    payload = cose.verify1(manifest, app.state.keys.public_key("firmware"))
    assert messages.parse_manifest(payload) == {
        "version": "1.2.0",
        "board": "esp32",
        "app": "meter",
        "size": len(BUNDLE),
        "sha256": hashlib.sha256(BUNDLE).digest(),
    }
    # the manifest does not verify with the command key
    try:
        cose.verify1(manifest, app.state.keys.public_key("cloud"))
        raise AssertionError("verified with the wrong key")
    except ValueError:
        pass


def test_bad_uploads_get_a_clear_4xx(world, client):
    upload(world)
    assert "same bundle" in upload(world, status=409)["detail"]
    assert "version" in upload(world, b"other", version="has space", status=422)["detail"]
    assert "board" in upload(world, b"other", board="ESP32", status=422)["detail"]
    assert upload(world, b"", status=422)["detail"][0]["loc"] == ["body"]  # no bundle at all
    r = client.post(
        "/api/v1/firmware/releases",
        params={"version": "1", "board": "esp32", "app": "meter"},
        content=b"x",
        headers={**world.a.manager_headers, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 403
    assert len(world.ok("GET", "/api/v1/firmware/releases")) == 1


def test_a_browser_form_upload_works_too(world, client):
    r = client.post(
        "/api/v1/firmware/releases/form",
        data={"version": "2.0.0", "board": "rp2", "app": "hub"},
        files={"file": ("bundle.bin", b"hub firmware", "application/octet-stream")},
        headers=world.admin_headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["sha256"] == hashlib.sha256(b"hub firmware").hexdigest()


def add_meters(world, place, n, board="esp32"):
    ids = []
    for i in range(n):
        device_id = f"gm-{place.gateway[-4:]}-{board}-{i}"
        world.register(device_id, "gas-meter", place.gateway, unit=place.unit, board=board)
        ids.append(device_id)
    return ids


def fw_event(world, place, device_id, seq, code, value):
    mac = device_id.startswith("wm-")  # the world's water meters sign with Mac0
    msg = meter_reading(device_id, seq, T0 + seq, 1.0, events=[(code, T0 + seq, value)], mac=mac)
    assert world.ingest(place, [(T0 + seq, msg)])["accepted"] == 1


def rollout_state(world, rollout_id):
    return world.ok("GET", f"/api/v1/firmware/rollouts/{rollout_id}")


def test_a_rollout_goes_wave_by_wave_and_follows_progress(world, client):
    a = world.a
    add_meters(world, a, 3)
    add_meters(world, a, 1, board="rp2")  # another board: not eligible
    release = upload(world)
    r = world.ok(
        "POST",
        "/api/v1/firmware/rollouts",
        201,
        json={"release": release["id"], "communities": [a.community], "wave_size": 2},
    )
    # eligible: the world's gas meter + 3 esp32 meters (the water meter's app is meter too)
    eligible = {d["device"] for d in r["devices"]}
    assert a.gas in eligible and a.water in eligible and len(eligible) == 5
    waves = sorted({d["wave"] for d in r["devices"]})
    assert waves == [0, 1, 2]
    first = [d for d in r["devices"] if d["wave"] == 0]
    assert all(d["state"] == "commanded" for d in first) and len(first) == 2
    assert all(d["state"] == "pending" for d in r["devices"] if d["wave"] > 0)
    # the fw.update command carries the signed manifest
    command = world.ok("GET", f"/api/v1/commands/{first[0]['command']}")
    assert command["op"] == "fw.update" and command["source"] == "rollout"
    payload = cose.verify1(
        bytes.fromhex(command["cose"]), world.client.app.state.keys.public_key("cloud")
    )
    assert messages.parse_command(payload)["args"] == {"m": bytes.fromhex(release["manifest"])}
    # the registry of A now names the release, and its bundle can be fetched by A's gateway only
    registry = client.get("/api/v1/gateway/registry", headers=a.gateway_headers).json()
    assert [x["sha256"] for x in registry["releases"]] == [release["sha256"]]
    got = client.get(f"/api/v1/gateway/firmware/{release['sha256']}", headers=a.gateway_headers)
    assert got.status_code == 200 and got.content == BUNDLE
    other = client.get(
        f"/api/v1/gateway/firmware/{release['sha256']}", headers=world.b.gateway_headers
    )
    assert other.status_code == 404
    assert client.get("/api/v1/gateway/firmware/abcd", headers=a.gateway_headers).status_code == 404

    # progress, then success of the first wave starts the second
    d0, d1 = first[0]["device"], first[1]["device"]
    place = a
    fw_event(world, place, d0, 1, "fw.progress", 50)
    state = rollout_state(world, r["id"])
    assert {d["device"]: (d["state"], d["progress"]) for d in state["devices"]}[d0] == (
        "updating",
        50,
    )
    fw_event(world, place, d0, 2, "fw.ok", "1.2.0")
    counts = rollout_state(world, r["id"])["counts"]
    assert counts == {"ok": 1, "commanded": 1, "pending": 3}  # the wave is not over yet
    fw_event(world, place, d1, 1, "fw.ok", "1.2.0")
    state = rollout_state(world, r["id"])
    assert state["counts"] == {"ok": 2, "commanded": 2, "pending": 1}
    assert world.ok("GET", f"/api/v1/devices/{d0}")["fw_version"] == "1.2.0"


def test_a_rollout_halts_itself_when_too_many_updates_fail(world, client):
    a = world.a
    add_meters(world, a, 8)
    release = upload(world)
    r = world.ok(
        "POST",
        "/api/v1/firmware/rollouts",
        201,
        json={
            "release": release["id"],
            "communities": [a.community],
            "wave_size": 5,
            "failure_ratio": 0.2,
        },
    )
    first = [d["device"] for d in r["devices"] if d["state"] == "commanded"]
    assert len(first) == 5
    fw_event(world, a, first[0], 1, "fw.ok", "1.2.0")
    fw_event(world, a, first[1], 1, "fw.fail", "sha256 mismatch")
    state = rollout_state(world, r["id"])
    # 1 failure of 5 attempted reaches max(1, 20 % of 5)
    assert state["state"] == "halted" and "1 of 5" in state["halt_reason"]
    fw_event(world, a, first[2], 1, "fw.rollback", "1.1.0")
    for device in first[3:]:
        fw_event(world, a, device, 1, "fw.ok", "1.2.0")
    state = rollout_state(world, r["id"])
    assert state["state"] == "halted"
    assert state["counts"]["pending"] == 5  # the next waves were never commanded
    details = {d["device"]: d["detail"] for d in state["devices"]}
    assert details[first[1]] == "sha256 mismatch" and details[first[2]] == "rolled back to '1.1.0'"
    updates = world.ok("GET", "/api/v1/commands", params={"community": a.community})
    assert len([c for c in updates if c["op"] == "fw.update"]) == 5
    log = world.ok("GET", "/api/v1/audit", params={"action": "rollout.halt"})
    assert log[0]["actor"] == "system"
    # a person resumes: the failures seen so far no longer count
    resumed = world.ok("POST", f"/api/v1/firmware/rollouts/{r['id']}/resume")
    assert resumed["state"] == "active" and resumed["counts"]["commanded"] == 5


def test_a_halted_rollout_sends_nothing_more(world):
    a = world.a
    add_meters(world, a, 3)
    release = upload(world)
    r = world.ok(
        "POST",
        "/api/v1/firmware/rollouts",
        201,
        json={"release": release["id"], "communities": [a.community], "wave_size": 1},
    )
    halted = world.ok(
        "POST", f"/api/v1/firmware/rollouts/{r['id']}/halt", json={"reason": "field report"}
    )
    assert halted["state"] == "halted" and halted["halt_reason"] == "field report"
    first = next(d["device"] for d in r["devices"] if d["state"] == "commanded")
    fw_event(world, a, first, 1, "fw.ok", "1.2.0")
    state = rollout_state(world, r["id"])
    assert state["counts"]["ok"] == 1 and state["counts"].get("commanded", 0) == 0


def test_a_percentage_rollout_picks_a_stable_share_of_every_community(world):
    add_meters(world, world.a, 6)
    add_meters(world, world.b, 6)
    release = upload(world)
    r = world.ok(
        "POST", "/api/v1/firmware/rollouts", 201, json={"release": release["id"], "percentage": 50}
    )
    # 2 × (gas + water + 6) = 16 eligible meters, half of them
    assert len(r["devices"]) == 8
    assert {d["community"] for d in r["devices"]} <= {world.a.community, world.b.community}
    # a manager of B sees the rollout with B's devices only
    seen = world.ok("GET", f"/api/v1/firmware/rollouts/{r['id']}", headers=world.b.manager_headers)
    assert {d["community"] for d in seen["devices"]} == {world.b.community}


def test_rotating_the_firmware_key_signs_the_manifests_again(world, app):
    release = upload(world)
    old = app.state.keys.public_key("firmware")
    rotated = world.ok("POST", "/api/v1/keys/firmware/rotate")
    new = bytes.fromhex(rotated["public_key"])
    assert new != old and new == app.state.keys.public_key("firmware")
    manifest = bytes.fromhex(
        world.ok("GET", f"/api/v1/firmware/releases/{release['id']}")["manifest"]
    )
    assert messages.parse_manifest(cose.verify1(manifest, new))["version"] == "1.2.0"
    keys = world.ok("GET", "/api/v1/keys")
    firmware_keys = [
        (k["public_key"], k["retired_at"] is None) for k in keys if k["name"] == "firmware"
    ]
    assert firmware_keys == [(new.hex(), True), (old.hex(), False)]
