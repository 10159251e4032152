"""Ingest (docs/protocol.md §7): what a gateway sends, what the cloud keeps,
and what it refuses, with messages signed by Kapok's own COSE code and by
pycose."""

import cbor2
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message
from sqlalchemy import create_engine, func, select

from kapok.cloud.core.db import normalize_url
from kapok.cloud.models import Message, Reading
from kapok.protocols import cose, messages, senml

from .helpers import CBOR, batch, meter_reading, seed_of, uplink

T0 = 1767225600  # 2026-01-01 00:00:00 UTC


def pycose_sign1(payload: bytes, device_id: str) -> bytes:
    """A node message signed by pycose (another COSE implementation)."""
    msg = Sign1Message(phdr={Algorithm: "EdDSA"}, uhdr={KID: device_id.encode()}, payload=payload)
    msg.key = OKPKey(crv=Ed25519, d=seed_of(device_id))
    return msg.encode(tag=True)


def count(settings, model) -> int:
    engine = create_engine(normalize_url(settings.database_url))
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(model)).scalar_one()
    engine.dispose()
    return n


def readings(world, device_id, **params):
    r = world.client.get(
        f"/api/v1/devices/{device_id}/readings", params=params, headers=world.admin_headers
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_a_valid_batch_is_stored_with_its_readings(world):
    a = world.a
    items = [
        (T0 + 5, meter_reading(a.gas, 1, T0, 12.5)),
        (
            T0 + 6,
            uplink(a.water, 7, T0, compact=senml.compact(4, [3.25, 0.0, 0.0, 3.6, -90]), mac=True),
        ),
        (
            T0 + 7,
            pycose_sign1(
                messages.build_uplink(2, T0 + 900, compact=senml.compact(1, [12.75, 3.3, -101])),
                a.gas,
            ),
        ),
    ]
    reply = world.ingest(a, items)
    assert reply == {"accepted": 3, "duplicates": 0, "rejects": []}

    vol = readings(world, a.gas, n="vol")
    assert [(r["t"], r["n"], r["u"], r["v"], r["seq"]) for r in vol] == [
        (T0, "vol", "m3", 12.5, 1),
        (T0 + 900, "vol", "m3", 12.75, 2),
    ]
    assert {r["time_source"] for r in vol} == {"message"}
    water = readings(world, a.water)
    assert {r["n"]: r["v"] for r in water} == {
        "vol": 3.25,
        "rev": 0.0,
        "flow": 0.0,
        "bat": 3.6,
        "rssi": -90,
    }
    device = world.ok("GET", f"/api/v1/devices/{a.gas}")
    assert device["last_seq"] == 2 and device["messages_received"] == 2
    assert device["last_seen"] == T0 + 7


def test_the_original_cose_bytes_are_kept_and_verify(world):
    a = world.a
    msg = meter_reading(a.gas, 41, T0, 99.5)
    world.ingest(a, [(T0, msg)])
    stored = world.ok("GET", f"/api/v1/devices/{a.gas}/messages/41")
    assert bytes.fromhex(stored["cose"]) == msg
    device = world.ok("GET", f"/api/v1/devices/{a.gas}")
    payload = cose.verify1(bytes.fromhex(stored["cose"]), bytes.fromhex(device["public_key"]))
    assert messages.parse_uplink(payload, a.gas)["seq"] == 41
    assert stored["gateway"] == a.gateway and stored["rx_time"] == T0


def test_a_tampered_message_is_rejected_with_its_reason_and_nothing_is_stored(world, settings):
    a = world.a
    good = meter_reading(a.gas, 1, T0, 10.0)
    # the gateway "fixes" the register value: the payload no longer matches the signature
    forged_payload = messages.build_uplink(1, T0, compact=senml.compact(1, [1.0, 3.3, -100]))
    tag = cbor2.loads(good)
    forged = cbor2.dumps(
        cbor2.CBORTag(18, [tag.value[0], tag.value[1], forged_payload, tag.value[3]])
    )
    # and one signed with another key than the registered one
    impostor = cose.sign1(messages.build_uplink(2, T0), b"\x01" * 32, a.gas.encode())
    reply = world.ingest(a, [(T0, forged), (T0, impostor), (T0, b"\xd2\x84junk")])
    assert reply["accepted"] == 0 and reply["duplicates"] == 0
    reasons = dict(reply["rejects"])
    assert set(reasons) == {0, 1, 2}
    assert "bad signature" in reasons[0] and "bad signature" in reasons[1]
    assert "malformed COSE" in reasons[2]
    assert count(settings, Message) == 0 and count(settings, Reading) == 0


def test_a_mac0_message_with_a_wrong_tag_is_rejected(world):
    a = world.a
    good = uplink(a.water, 1, T0, compact=senml.compact(1, [1.0, 3.3, -100]), mac=True)
    bad = good[:-1] + bytes([good[-1] ^ 1])
    reply = world.ingest(a, [(T0, bad), (T0, good)])
    assert reply["accepted"] == 1
    assert reply["rejects"] == [(0, f"{a.water}: bad MAC")]


def test_unknown_devices_and_devices_of_another_community_are_rejected(world, settings):
    a, b = world.a, world.b
    stranger = meter_reading("gm-nobody", 1, T0, 1.0)
    neighbour = meter_reading(b.gas, 1, T0, 1.0)  # registered, but in community B
    reply = world.ingest(
        a, [(T0, stranger), (T0, neighbour), (T0, meter_reading(a.gas, 1, T0, 2.0))]
    )
    assert reply["accepted"] == 1
    reasons = dict(reply["rejects"])
    assert "unknown device 'gm-nobody'" in reasons[0]
    assert f"unknown device '{b.gas}'" in reasons[1]
    assert readings(world, b.gas) == []
    # B's own gateway may send it
    assert world.ingest(b, [(T0, neighbour)])["accepted"] == 1


def test_a_replayed_batch_gets_the_same_reply_and_stores_nothing_twice(world, settings):
    a = world.a
    items = [(T0, meter_reading(a.gas, 1, T0, 1.0)), (T0, meter_reading("gm-nobody", 1, T0, 1.0))]
    batch_id, body = batch(items)
    headers = {**a.gateway_headers, **CBOR}
    first = world.client.post("/api/v1/ingest", content=body, headers=headers)
    again = world.client.post("/api/v1/ingest", content=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert messages.parse_batch_reply(first.content)["accepted"] == 1
    assert count(settings, Message) == 1
    # the same batch id with other content still gets the first reply
    _, other = batch([(T0, meter_reading(a.gas, 2, T0, 2.0))], batch_id)
    assert (
        world.client.post("/api/v1/ingest", content=other, headers=headers).content == first.content
    )
    assert count(settings, Message) == 1


def test_a_message_seen_before_counts_as_a_duplicate(world, settings):
    a = world.a
    msg = meter_reading(a.gas, 5, T0, 1.0)
    assert world.ingest(a, [(T0, msg)])["accepted"] == 1
    # in a new batch (the gateway retried after a lost reply), and twice in one batch
    reply = world.ingest(
        a,
        [
            (T0 + 1, msg),
            (T0 + 2, meter_reading(a.gas, 6, T0, 2.0)),
            (T0 + 2, meter_reading(a.gas, 6, T0, 2.0)),
        ],
    )
    assert reply == {"accepted": 1, "duplicates": 2, "rejects": []}
    assert count(settings, Message) == 2
    assert [r["seq"] for r in readings(world, a.gas, n="vol")] == [5, 6]


def test_bad_batches_get_a_clear_4xx(world):
    a = world.a
    post = world.client.post
    r = post("/api/v1/ingest", content=b"\xa1\x01", headers={**a.gateway_headers, **CBOR})
    assert r.status_code == 400 and "malformed batch" in r.json()["detail"]
    r = post(
        "/api/v1/ingest",
        content=b"{}",
        headers={**a.gateway_headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 415
    _, body = batch([(T0, meter_reading(a.gas, 1, T0, 1.0))])
    assert post("/api/v1/ingest", content=body, headers=CBOR).status_code == 401
    r = post("/api/v1/ingest", content=body, headers={"Authorization": "Bearer nope", **CBOR})
    assert r.status_code == 401
    # a user's token is not a gateway token
    r = post("/api/v1/ingest", content=body, headers={**world.admin_headers, **CBOR})
    assert r.status_code == 401
    assert readings(world, a.gas) == []


def test_a_payload_that_breaks_the_format_is_rejected_per_item(world):
    a = world.a
    bad_payload = cose.sign1(b"\xa1\x09\x01", seed_of(a.gas), a.gas.encode())  # unknown key 9
    reply = world.ingest(a, [(T0, bad_payload)])
    assert reply["accepted"] == 0
    assert "bad payload" in reply["rejects"][0][1]


def test_times_record_where_they_came_from(world):
    a = world.a
    rx = T0 + 30
    items = [
        # message time (key 2)
        (rx, meter_reading(a.gas, 1, T0, 1.0)),
        # no clock yet: the gateway's receive time
        (rx + 900, meter_reading(a.gas, 2, None, 2.0)),
        # buffered records with their own absolute times
        (
            rx + 1800,
            uplink(
                a.gas,
                3,
                T0 + 1800,
                records=senml.pack(
                    [senml.record("vol", 2.5, t=0), senml.record("vol", 2.75, t=60)],
                    a.gas,
                    bt=T0 + 1000,
                ),
            ),
        ),
    ]
    assert world.ingest(a, items)["accepted"] == 3
    vol = readings(world, a.gas, n="vol")
    assert [(r["t"], r["v"], r["time_source"]) for r in vol] == [
        (T0, 1.0, "message"),
        (rx + 900, 2.0, "gateway"),
        (T0 + 1000, 2.5, "record"),
        (T0 + 1060, 2.75, "record"),
    ]


def test_readings_come_in_time_order_and_filter_by_name_and_time(world):
    a = world.a
    # arrive out of order
    items = [
        (T0 + i, meter_reading(a.gas, 10 - i, T0 + 900 * (10 - i), float(10 - i)))
        for i in range(10)
    ]
    world.ingest(a, items)
    all_vol = readings(world, a.gas, n="vol")
    assert [r["v"] for r in all_vol] == [float(i) for i in range(1, 11)]
    window = readings(world, a.gas, n="vol", **{"from": T0 + 900 * 3, "to": T0 + 900 * 5})
    assert [r["seq"] for r in window] == [3, 4, 5]
    both = readings(world, a.gas, n=["vol", "bat"], limit=4)
    assert [r["n"] for r in both] == ["vol", "bat", "vol", "bat"]
    assert readings(world, a.gas, n="energy") == []
    latest = world.ok("GET", f"/api/v1/devices/{a.gas}/latest")
    assert set(latest) == {"vol", "bat", "rssi"}
    assert (latest["vol"]["v"], latest["vol"]["seq"]) == (10.0, 10)


def test_valve_and_firmware_values_keep_their_kind(world):
    a = world.a
    msg = uplink(
        a.gas,
        1,
        T0,
        compact=senml.compact(3, [5.0, True, 3.3, -100]),
        records=[senml.record("fw", "1.2.0")],
    )
    world.ingest(a, [(T0, msg)])
    values = {r["n"]: r["v"] for r in readings(world, a.gas)}
    assert values["valve"] is True and values["fw"] == "1.2.0" and values["vol"] == 5.0
    assert world.ok("GET", f"/api/v1/devices/{a.gas}")["fw_version"] == "1.2.0"


def test_seq_gaps_are_tracked_and_filled_by_late_messages(world):
    a = world.a

    def send(*seqs):
        return world.ingest(a, [(T0 + s, meter_reading(a.gas, s, T0 + s, float(s))) for s in seqs])

    send(1, 2, 3, 7, 10)
    gaps = world.ok("GET", f"/api/v1/devices/{a.gas}/gaps")
    assert [(g["first_seq"], g["last_seq"], g["kind"]) for g in gaps] == [
        (4, 6, "missing"),
        (8, 9, "missing"),
    ]
    send(5, 8)  # late arrivals split and shrink the gaps
    gaps = world.ok("GET", f"/api/v1/devices/{a.gas}/gaps")
    assert [(g["first_seq"], g["last_seq"]) for g in gaps] == [(4, 4), (6, 6), (9, 9)]
    world.clock.now = T0 + 100
    c = world.ok(
        "GET", f"/api/v1/devices/{a.gas}/completeness", params={"from": T0, "to": T0 + 100}
    )
    assert (c["received"], c["missing"], c["expected"]) == (7, 3, 10)
    assert c["completeness"] == 0.7
    send(4, 6, 9)
    assert world.ok("GET", f"/api/v1/devices/{a.gas}/gaps") == []
    c = world.ok(
        "GET", f"/api/v1/devices/{a.gas}/completeness", params={"from": T0, "to": T0 + 100}
    )
    assert c["completeness"] == 1.0


def test_seqs_skipped_at_a_reboot_are_not_counted_as_lost(world):
    a = world.a
    world.ingest(a, [(T0 + s, meter_reading(a.gas, s, T0 + s, 1.0)) for s in (1, 2, 3)])
    # the node lost 4 in the air, rebooted, and continued at its next seq block (100)
    boot = meter_reading(a.gas, 100, T0 + 50, 1.0, events=[("boot", T0 + 50, 100)])
    world.ingest(a, [(T0 + 50, boot), (T0 + 60, meter_reading(a.gas, 102, T0 + 60, 1.0))])
    gaps = world.ok("GET", f"/api/v1/devices/{a.gas}/gaps")
    assert [(g["first_seq"], g["last_seq"], g["kind"]) for g in gaps] == [
        (4, 99, "skipped"),
        (101, 101, "missing"),
    ]
    c = world.ok(
        "GET", f"/api/v1/devices/{a.gas}/completeness", params={"from": T0, "to": T0 + 100}
    )
    assert (c["received"], c["missing"], c["skipped"]) == (5, 1, 96)
    # a reboot is an event, not an alarm
    assert world.ok("GET", "/api/v1/alarms") == []
    events = world.ok("GET", f"/api/v1/devices/{a.gas}/events")
    assert [(e["code"], e["value"], e["seq"]) for e in events] == [("boot", 100, 100)]


def test_community_summary_counts_and_completeness(world):
    a = world.a
    world.ingest(a, [(T0 + s, meter_reading(a.gas, s, T0 + s, 1.0)) for s in (1, 2, 4)])
    world.clock.now = T0 + 10
    s = world.ok("GET", f"/api/v1/communities/{a.community}/summary", params={"window": 3600})
    assert (s["buildings"], s["units"], s["devices"], s["gateways"]) == (1, 1, 3, 1)
    assert s["completeness"] == 0.75


def test_concurrent_retries_of_a_batch_store_it_once(world, settings):
    """A gateway that times out and retries while the first attempt is still
    running: every attempt gets the same reply, nothing is stored twice."""
    import threading

    a = world.a
    items = [(T0 + i, meter_reading(a.gas, i, T0 + i, float(i))) for i in range(1, 21)]
    _, body = batch(items)
    other = [(T0 + i, meter_reading(a.gas, i, T0 + i, float(i))) for i in range(11, 31)]
    _, overlapping = batch(other)  # another batch sharing seqs 11-20
    headers = {**a.gateway_headers, **CBOR}
    replies = []
    go = threading.Barrier(6)

    def post(content):
        go.wait()
        r = world.client.post("/api/v1/ingest", content=content, headers=headers)
        replies.append((content is body, r.status_code, r.content))

    threads = [threading.Thread(target=post, args=(body,)) for _ in range(4)]
    threads += [threading.Thread(target=post, args=(overlapping,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [status for _, status, _ in replies] == [200] * 6
    same = {content for is_body, _, content in replies if is_body}
    assert len(same) == 1
    assert count(settings, Message) == 30
    first = messages.parse_batch_reply(same.pop())
    second = {content for is_body, _, content in replies if not is_body}
    assert len(second) == 1
    second = messages.parse_batch_reply(second.pop())
    # each of seqs 11-20 was accepted by exactly one of the two batches
    assert first["accepted"] + second["accepted"] == 30
    assert first["duplicates"] + second["duplicates"] == 10


def test_a_batch_over_the_size_limit_gets_413_and_nothing_is_stored(world, app, settings):
    a = world.a
    app.state.settings.max_batch_bytes = 1000
    items = [(T0 + i, meter_reading(a.gas, i, T0 + i, 1.0)) for i in range(1, 20)]
    _, body = batch(items)
    assert len(body) > 1000
    r = world.client.post("/api/v1/ingest", content=body, headers={**a.gateway_headers, **CBOR})
    assert r.status_code == 413 and "over 1000 bytes" in r.json()["detail"]
    assert count(settings, Message) == 0
