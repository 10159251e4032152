"""The gateway's side of the API (docs/gateway-api.md): registry, its key,
tokens, and the fail-safe commands it reports."""

from kapok.protocols import cose, ed25519, messages

from .helpers import CBOR, batch, meter_reading, public_of

T0 = 1767225600
GATEWAY_SEED = bytes(range(32))


def test_registry_lists_the_community_s_devices_keys_rules_and_authorities(world, client, app):
    a = world.a
    r = client.get("/api/v1/gateway/registry", headers=a.gateway_headers)
    assert r.status_code == 200
    doc = r.json()
    assert doc["gateway"] == {"id": a.gateway, "name": "gw A", "community": a.community}
    devices = {d["id"]: d for d in doc["devices"]}
    assert set(devices) == {a.gas, a.water, a.hub}
    assert devices[a.gas] == {
        "id": a.gas,
        "kind": "gas-meter",
        "public_key": public_of(a.gas).hex(),
        "mac_key": None,
        "unit": a.unit,
        "always_on": False,
        "address": None,
    }
    assert devices[a.water]["public_key"] is None and len(devices[a.water]["mac_key"]) == 64
    assert devices[a.hub]["always_on"] is True
    keys = app.state.keys
    assert doc["authorities"] == {
        "cloud": keys.public_key("cloud").hex(),
        "firmware": keys.public_key("firmware").hex(),
    }
    assert {"event": "gas.leak", "op": "valve.close", "target": "self"} in doc["rules"]
    assert all(rule["op"] in messages.FAILSAFE_OPS for rule in doc["rules"])
    assert doc["releases"] == []
    assert r.headers["etag"] == f'"{doc["version"]}"'


def test_registry_version_moves_with_every_change_and_answers_304_otherwise(world, client):
    a = world.a
    get = lambda **h: client.get("/api/v1/gateway/registry", headers={**a.gateway_headers, **h})  # noqa: E731
    v1 = get().json()["version"]
    same = get(**{"If-None-Match": f'"{v1}"'})
    assert same.status_code == 304 and same.content == b""
    world.register("gm-a2", "gas-meter", a.gateway, unit=a.unit)
    r = get(**{"If-None-Match": f'"{v1}"'})
    assert r.status_code == 200
    v2 = r.json()["version"]
    assert v2 > v1 and "gm-a2" in {d["id"] for d in r.json()["devices"]}
    # a removed meter leaves the registry
    world.ok("PATCH", "/api/v1/devices/gm-a2", json={"removed_at": T0 + 10})
    world.clock.advance(20)
    doc = get().json()
    assert doc["version"] > v2 and "gm-a2" not in {d["id"] for d in doc["devices"]}
    # B's registry did not move
    b_version = client.get("/api/v1/gateway/registry", headers=world.b.gateway_headers).json()
    assert b_version["version"] == v1


def test_the_gateway_token_is_shown_once_stored_hashed_revocable_and_rotatable(
    world, client, settings
):
    a = world.a
    gateway = world.ok("GET", f"/api/v1/gateways/{a.gateway}")
    assert "token" not in gateway
    from sqlalchemy import create_engine, select

    from kapok.cloud.core.db import normalize_url
    from kapok.cloud.models import Gateway

    engine = create_engine(normalize_url(settings.database_url))
    with engine.connect() as conn:
        stored = conn.execute(select(Gateway.token_hash).where(Gateway.id == a.gateway)).scalar()
    engine.dispose()
    assert a.gateway_token not in stored and len(stored) == 64

    world.ok("POST", f"/api/v1/gateways/{a.gateway}/revoke")
    r = client.get("/api/v1/gateway/registry", headers=a.gateway_headers)
    assert r.status_code == 401 and r.json()["detail"] == "unknown or revoked gateway token"
    _, body = batch([(T0, meter_reading(a.gas, 1, T0, 1.0))])
    assert (
        client.post(
            "/api/v1/ingest", content=body, headers={**a.gateway_headers, **CBOR}
        ).status_code
        == 401
    )

    fresh = world.ok("POST", f"/api/v1/gateways/{a.gateway}/token")
    assert fresh["id"] == a.gateway and fresh["token"] != a.gateway_token
    assert client.get("/api/v1/gateway/registry", headers=a.gateway_headers).status_code == 401
    new_headers = {"Authorization": f"Bearer {fresh['token']}"}
    assert client.get("/api/v1/gateway/registry", headers=new_headers).status_code == 200
    actions = [
        e["action"] for e in world.ok("GET", "/api/v1/audit", params={"community": a.community})
    ]
    assert "gateway.revoke" in actions and "gateway.token" in actions


def test_user_tokens_do_not_open_gateway_routes_nor_the_reverse(world, client):
    assert client.get("/api/v1/gateway/registry", headers=world.admin_headers).status_code == 401
    assert client.get("/api/v1/devices", headers=world.a.gateway_headers).status_code == 401


def test_the_gateway_registers_its_key(world, client):
    a = world.a
    public = ed25519.public_key(GATEWAY_SEED)
    r = client.put(
        "/api/v1/gateway/key", json={"public_key": public.hex()}, headers=a.gateway_headers
    )
    assert r.status_code == 204
    assert world.ok("GET", f"/api/v1/gateways/{a.gateway}")["public_key"] == public.hex()
    for bad in ("zz", "00" * 31, "00" * 32):  # not hex, too short, a small-order point
        r = client.put("/api/v1/gateway/key", json={"public_key": bad}, headers=a.gateway_headers)
        assert r.status_code == 422, bad
    assert world.ok("GET", f"/api/v1/gateways/{a.gateway}")["public_key"] == public.hex()


def local_command(
    gateway_id: str, device_id: str, op: str, cmd_id: int, seed=GATEWAY_SEED
) -> bytes:
    payload = messages.build_command(cmd_id, device_id, op, {}, T0 + 3600)
    return cose.sign1(payload, seed, gateway_id.encode())


def test_local_safety_commands_enter_the_history_and_the_audit_log(world, client):
    a = world.a
    client.put(
        "/api/v1/gateway/key",
        json={"public_key": ed25519.public_key(GATEWAY_SEED).hex()},
        headers=a.gateway_headers,
    )
    cmd_id = T0 * 1000
    body = {
        "device": a.gas,
        "op": "valve.close",
        "cmd_id": cmd_id,
        "event": "gas.leak",
        "at": T0 + 5,
        "cose": local_command(a.gateway, a.gas, "valve.close", cmd_id).hex(),
    }
    for _ in range(2):  # a repeated report changes nothing
        r = client.post("/api/v1/gateway/local-commands", json=body, headers=a.gateway_headers)
        assert r.status_code == 204, r.text
    history = world.ok("GET", f"/api/v1/devices/{a.gas}/commands")
    assert len(history) == 1
    c = history[0]
    assert (c["authority"], c["cmd_id"], c["op"], c["source"], c["event"], c["state"]) == (
        a.gateway,
        cmd_id,
        "valve.close",
        "local",
        "gas.leak",
        "sent",
    )
    audit = world.ok("GET", "/api/v1/audit", params={"action": "command.local"})
    assert audit[0]["actor"] == f"gateway:{a.gateway}" and audit[0]["detail"]["event"] == "gas.leak"
    # the node's verdict, signed in its uplink, moves it to done
    world.ingest(a, [(T0 + 60, meter_reading(a.gas, 1, T0 + 60, 1.0, results=[(cmd_id, 0)]))])
    assert world.ok("GET", f"/api/v1/commands/{c['id']}")["state"] == "done"


def test_local_commands_that_do_not_check_out_are_refused(world, client):
    a = world.a

    def post(body):
        return client.post("/api/v1/gateway/local-commands", json=body, headers=a.gateway_headers)

    body = {
        "device": a.gas,
        "op": "valve.close",
        "cmd_id": 7,
        "at": T0,
        "cose": local_command(a.gateway, a.gas, "valve.close", 7).hex(),
    }
    r = post(body)
    assert r.status_code == 409 and "no key registered" in r.json()["detail"]
    client.put(
        "/api/v1/gateway/key",
        json={"public_key": ed25519.public_key(GATEWAY_SEED).hex()},
        headers=a.gateway_headers,
    )
    forged = {
        **body,
        "cose": local_command(a.gateway, a.gas, "valve.close", 7, seed=b"\x02" * 32).hex(),
    }
    assert post(forged).status_code == 422
    assert post({**body, "cmd_id": 8}).status_code == 422  # does not match the signed command
    opening = local_command(a.gateway, a.gas, "valve.open", 9).hex()
    r = post({**body, "op": "valve.open", "cmd_id": 9, "cose": opening})
    assert r.status_code == 422 and "may sign only" in r.json()["detail"]
    assert world.ok("GET", f"/api/v1/devices/{a.gas}/commands") == []


def test_a_verdict_that_arrives_before_the_local_command_report_is_kept(world, client):
    # The agent forwards uplinks and reports local commands on separate
    # loops: the node's result may reach the cloud first.
    a = world.a
    client.put(
        "/api/v1/gateway/key",
        json={"public_key": ed25519.public_key(GATEWAY_SEED).hex()},
        headers=a.gateway_headers,
    )
    cmd_id = T0 * 1000
    world.ingest(a, [(T0 + 60, meter_reading(a.gas, 1, T0 + 60, 1.0, results=[(cmd_id, 0)]))])
    body = {
        "device": a.gas,
        "op": "valve.close",
        "cmd_id": cmd_id,
        "event": "gas.leak",
        "at": T0 + 5,
        "cose": local_command(a.gateway, a.gas, "valve.close", cmd_id).hex(),
    }
    r = client.post("/api/v1/gateway/local-commands", json=body, headers=a.gateway_headers)
    assert r.status_code == 204, r.text
    (c,) = world.ok("GET", f"/api/v1/devices/{a.gas}/commands")
    assert (c["cmd_id"], c["state"]) == (cmd_id, "done")
