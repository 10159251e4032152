"""The cloud's signing keys: files only the service can read, rotation that
takes effect at once and keeps the old public key on record."""

from kapok.protocols import cose, messages


def test_keys_are_created_on_first_start_readable_only_by_the_service(app, settings):
    folder = settings.data_dir / "keys"
    assert folder.stat().st_mode & 0o777 == 0o700
    for name in ("cloud", "firmware"):
        path = folder / f"{name}.key"
        assert path.stat().st_mode & 0o777 == 0o600
        assert len(bytes.fromhex(path.read_text().strip())) == 32
    assert settings.data_dir.stat().st_mode & 0o777 == 0o700


def test_rotating_the_command_key(world, client, app):
    a = world.a
    before = world.ok("POST", f"/api/v1/devices/{a.gas}/commands", 201, json={"op": "siren.off"})
    old = app.state.keys.public_key("cloud")
    version = client.get("/api/v1/gateway/registry", headers=a.gateway_headers).json()["version"]

    r = client.post("/api/v1/keys/cloud/rotate", headers=a.manager_headers)
    assert r.status_code == 403
    rotated = world.ok("POST", "/api/v1/keys/cloud/rotate")
    new = bytes.fromhex(rotated["public_key"])
    assert new != old and rotated["retired_at"] is None

    # gateways learn it at once
    registry = client.get("/api/v1/gateway/registry", headers=a.gateway_headers).json()
    assert registry["version"] > version and registry["authorities"]["cloud"] == new.hex()
    # new commands are signed with it; older ones still check out with the retired key
    after = world.ok("POST", f"/api/v1/devices/{a.gas}/commands", 201, json={"op": "siren.off"})
    assert messages.parse_command(cose.verify1(bytes.fromhex(after["cose"]), new))["cmd_id"] == 2
    listed = {k["public_key"]: k for k in world.ok("GET", "/api/v1/keys") if k["name"] == "cloud"}
    assert listed[old.hex()]["retired_at"] is not None
    retired = bytes.fromhex(listed[old.hex()]["public_key"])
    assert cose.verify1(bytes.fromhex(before["cose"]), retired)
    log = world.ok("GET", "/api/v1/audit", params={"action": "key.rotate"})
    assert log[0]["detail"]["old"] == old.hex() and log[0]["detail"]["new"] == new.hex()
