"""protocols.messages: every DESIGN payload map (uplink, reply, command,
firmware manifest, ingest batch and its reply), byte vectors produced with
cbor2 independently, strict validation, round trips, hostile input, and the
DESIGN byte budget for one signed meter reading."""

import contextlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapok.protocols import cbor, coap, coap_numbers, cose, messages, senml
from tests.conftest import load_vectors

V = load_vectors("messages")
CV = load_vectors("cose")
SEED = bytes.fromhex(CV["keys"]["ed25519_rfc8032_test1"]["seed"])
CV_PUB = bytes.fromhex(CV["keys"]["ed25519_rfc8032_test1"]["pub"])
MACKEY = bytes.fromhex(CV["keys"]["mac_cose_wg_our_secret"]["key"])
T = 1767225600
DEV = "gm-0001a3"
PARSERS = {
    "uplink": messages.parse_uplink,
    "reply": messages.parse_reply,
    "command": messages.parse_command,
    "manifest": messages.parse_manifest,
    "batch": messages.parse_batch,
    "batch_reply": messages.parse_batch_reply,
}
BUILDERS = {
    "reply": messages.build_reply,
    "command": messages.build_command,
    "manifest": messages.build_manifest,
    "batch": messages.build_batch,
    "batch_reply": messages.build_batch_reply,
}


def j(x):
    """The vectors' JSON form -> Python ({"hex"} bytes, {"pairs"} int maps)."""
    if isinstance(x, dict):
        if set(x) == {"hex"}:
            return bytes.fromhex(x["hex"])
        if set(x) == {"pairs"}:
            return {k: j(v) for k, v in x["pairs"]}
        return {k: j(v) for k, v in x.items()}
    if isinstance(x, list):
        return [j(i) for i in x]
    return x


def norm(x):
    if isinstance(x, list | tuple):
        return [norm(i) for i in x]
    if isinstance(x, dict):
        return {k: norm(v) for k, v in x.items()}
    return x


# ---------------------------------------------------------------- vectors


@pytest.mark.parametrize("v", V["uplink"], ids=[v["name"] for v in V["uplink"]])
def test_uplink_vector_bytes_and_parse(v):
    b = messages.build_uplink(**j(v["args"]))
    assert b.hex() == v["hex"]
    assert norm(messages.parse_uplink(b, v["device_id"])) == j(v["parsed"])


KINDS = [(k, v) for k in BUILDERS for v in V[k]]


@pytest.mark.parametrize(("kind", "v"), KINDS, ids=[f"{k}-{v['name']}" for k, v in KINDS])
def test_vector_bytes_and_parse(kind, v):
    b = BUILDERS[kind](*j(v["args"]))
    assert b.hex() == v["hex"]
    assert norm(PARSERS[kind](b)) == j(v["parsed"])


@pytest.mark.parametrize("v", V["errors"], ids=[v["name"] for v in V["errors"]])
def test_error_vector_is_refused_with_value_error(v):
    args = [bytes.fromhex(v["hex"])] + ([v["device_id"]] if v["device_id"] else [])
    with pytest.raises(ValueError):
        PARSERS[v["parse"]](*args)


@pytest.mark.parametrize("kind", sorted(PARSERS))
def test_vector_bytes_are_deterministic_cbor(kind):
    vectors = V[kind]
    for v in vectors:
        cbor.loads(bytes.fromhex(v["hex"]), deterministic=True)


def test_map_keys_are_the_design_ones():
    m = messages
    assert (m._U_SEQ, m._U_T, m._U_READINGS, m._U_EVENTS, m._U_COMPACT, m._U_RESULTS) == (
        1,
        2,
        3,
        4,
        5,
        6,
    )
    assert (m._R_ACK, m._R_TIME, m._R_COMMANDS) == (1, 2, 3)
    assert (m._C_ID, m._C_DEVICE, m._C_OP, m._C_ARGS, m._C_NOT_AFTER) == (1, 2, 3, 4, 5)
    assert (m._M_VERSION, m._M_BOARD, m._M_APP, m._M_SIZE, m._M_SHA256) == (1, 2, 3, 4, 5)
    assert (m._B_ID, m._B_ITEMS, m._BR_ACCEPTED, m._BR_DUPLICATES, m._BR_REJECTS) == (1, 2, 1, 2, 3)


def test_event_ops_and_result_tables():
    design_events = [
        "gas.leak",
        "water.leak",
        "smoke",
        "door.open",
        "sos",
        "tamper",
        "flow.continuous",
        "flow.reverse",
        "quality.ph",
        "quality.turb",
        "quality.cl",
        "battery.low",
        "valve.fault",
        "boot",
    ]
    additions = ("fw.progress", "fw.ok", "fw.fail", "fw.rollback", "outbox.dropped")
    assert (*design_events, *additions) == messages.EVENTS
    assert messages.OPS == (
        "valve.close",
        "valve.open",
        "siren.on",
        "siren.off",
        "interval.set",
        "thresholds.set",
        "reboot",
        "fw.update",
        "arm",
        "disarm",
    )
    assert messages.FAILSAFE_OPS == ("valve.close", "siren.on")
    assert messages.OK == 0
    assert sorted(messages.RESULTS) == list(range(10))
    assert len(set(messages.RESULTS.values())) == 10


# ------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seq": -1}, "seq"),
        ({"seq": 2**64}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": 1.0}, "seq"),
        ({"seq": 1, "t": -5}, "t must"),
        ({"seq": 1, "t": 1.5}, "t must"),
        ({"seq": 1, "records": [{0: "volume", 2: 1}]}, "unknown reading"),
        ({"seq": 1, "records": [{0: "vol", 1: "l", 2: 1}]}, "must be in 'm3'"),
        ({"seq": 1, "compact": [1, 1.5]}, "takes 3 values"),
        ({"seq": 1, "events": [("fire", T, None)]}, "unknown event"),
        ({"seq": 1, "events": [("smoke", "now", None)]}, "event time"),
        ({"seq": 1, "results": [(1, 42, None)]}, "unknown result code"),
        ({"seq": 1, "results": [(-1, 0, None)]}, "cmd_id"),
    ],
)
def test_build_uplink_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        messages.build_uplink(**kwargs)


def test_parse_uplink_checks_base_name_against_device_id():
    b = messages.build_uplink(1, T, records=senml.pack([senml.record("vol", 1)], DEV))
    assert messages.parse_uplink(b, DEV)["readings"][0]["n"] == "vol"
    with pytest.raises(ValueError, match="bn"):
        messages.parse_uplink(b, "gm-0001a4")
    with pytest.raises(ValueError, match="device id"):
        messages.parse_uplink(b, "GM-0001A3")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1, "GM-1", "reboot", {}, T), "device id"),
        ((1, DEV, "self.destruct", {}, T), "unknown op"),
        ((1, DEV, "interval.set", {"s": 0}, T), "interval.set"),
        ((1, DEV, "interval.set", {"s": 2**32}, T), "interval.set"),
        ((1, DEV, "interval.set", {"s": 60, "x": 1}, T), "interval.set"),
        ((1, DEV, "fw.update", {"m": b""}, T), "manifest"),
        ((1, DEV, "valve.open", {"now": True}, T), "no args"),
        ((1, DEV, "thresholds.set", {"ph": [1]}, T), "low, high"),
        ((1, DEV, "thresholds.set", {"ph": "7"}, T), "number"),
        ((1, DEV, "reboot", {1: 2}, T), "text"),
        ((-1, DEV, "reboot", {}, T), "cmd_id"),
        ((1, DEV, "reboot", {}, -1), "not_after"),
    ],
)
def test_build_command_validates(args, match):
    with pytest.raises(ValueError, match=match):
        messages.build_command(*args)


def test_build_command_args_none_means_empty_map():
    assert messages.parse_command(messages.build_command(1, DEV, "arm", None, T))["args"] == {}


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", "esp32", "meter", 1, bytes(32)), "version"),
        (("1.0", "ESP32", "meter", 1, bytes(32)), "board"),
        (("1.0", "esp32", "meter app", 1, bytes(32)), "app"),
        (("1.0", "esp32", "meter", -1, bytes(32)), "size"),
        (("1.0", "esp32", "meter", 1, bytes(31)), "sha256"),
        (("x" * 33, "esp32", "meter", 1, bytes(32)), "version"),
    ],
)
def test_build_manifest_validates(args, match):
    with pytest.raises(ValueError, match=match):
        messages.build_manifest(*args)


def test_build_batch_and_replies_validate():
    with pytest.raises(ValueError, match="16 bytes"):
        messages.build_batch(bytes(15), [])
    with pytest.raises(ValueError, match="rx time"):
        messages.build_batch(bytes(16), [(-1, b"x")])
    with pytest.raises(ValueError, match="COSE bytes"):
        messages.build_batch(bytes(16), [(1, "x")])
    with pytest.raises(ValueError, match="reason"):
        messages.build_batch_reply(1, 0, [(0, 5)])
    with pytest.raises(ValueError, match="acked seq"):
        messages.build_reply(-1, T)
    with pytest.raises(ValueError, match="command"):
        messages.build_reply(1, T, ["not bytes"])


def test_batch_reply_without_key_3_parses_as_no_rejects():
    b = cbor2.dumps({1: 3, 2: 0}, canonical=True)
    assert messages.parse_batch_reply(b) == {"accepted": 3, "duplicates": 0, "rejects": []}


@pytest.mark.parametrize(
    ("s", "ok"),
    [
        ("gm-0001a3", True),
        ("a", True),
        ("0123456789abcdef", True),
        ("-", True),
        ("", False),
        ("0123456789abcdefg", False),
        ("GM-1", False),
        ("gm_1", False),
        ("gm 1", False),
        ("gm-1/", False),
        ("ｇｍ", False),
        (b"gm-1", False),
        (None, False),
        (7, False),
    ],
)
def test_device_id_rule(s, ok):
    assert messages.valid_device_id(s) is ok
    if ok:
        assert messages.check_device_id(s) == s
    else:
        with pytest.raises(ValueError, match="device id"):
            messages.check_device_id(s)


# -------------------------------------------------------------- round trips

u64 = st.integers(0, 2**64 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)
device_ids = st.from_regex(r"[a-z0-9-]{1,16}", fullmatch=True)


@st.composite
def event(draw):
    code = draw(st.sampled_from(messages.EVENTS))
    value = draw(st.none() | finite | st.integers(-(2**63), 2**63) | st.text(max_size=8))
    return (code, draw(st.integers(-(2**40), 2**40)), value)


@st.composite
def result(draw):
    detail = draw(st.none() | st.text(max_size=20))
    return (draw(u64), draw(st.sampled_from(sorted(messages.RESULTS))), detail)


@st.composite
def compact(draw):
    p = draw(st.sampled_from(sorted(senml.PROFILES)))
    vals = []
    for n in senml.PROFILES[p]:
        k = senml.kind(n)
        strat = {"v": finite | st.integers(-(2**31), 2**31), "vb": st.booleans(), "vs": st.text()}
        vals.append(draw(st.none() | strat[k]))
    return senml.compact(p, vals)


@settings(max_examples=150, deadline=None)
@given(
    seq=u64,
    t=st.none() | st.integers(0, 2**32),
    comp=st.none() | compact(),
    vol=st.lists(finite, max_size=3),
    events=st.lists(event(), max_size=3),
    results=st.lists(result(), max_size=3),
    dev=device_ids,
)
def test_uplink_round_trip(seq, t, comp, vol, events, results, dev):
    records = senml.pack([senml.record("vol", v) for v in vol], dev) if vol else None
    b = messages.build_uplink(seq, t, records, comp, events, results)
    assert cbor.loads(b, deterministic=True) == cbor2.loads(b)
    p = messages.parse_uplink(b, dev)
    assert p["seq"] == seq and p["t"] == t
    assert p["events"] == events
    assert p["results"] == results
    want = [("vol", v) for v in vol]
    if comp:
        names = senml.PROFILES[comp[0]]
        want += [(n, x) for n, x in zip(names, comp[1:], strict=True) if x is not None]
    assert [(r["n"], r[senml.kind(r["n"])]) for r in p["readings"]] == want


@settings(max_examples=80, deadline=None)
@given(
    cmd_id=u64,
    dev=device_ids,
    op=st.sampled_from(messages.OPS),
    not_after=u64,
    s=st.integers(1, 2**32 - 1),
    m=st.binary(min_size=1, max_size=40),
    th=st.dictionaries(
        st.text(max_size=6), finite | st.tuples(st.none() | finite, st.none() | finite), min_size=1
    ),
)
def test_command_round_trip(cmd_id, dev, op, not_after, s, m, th):
    args = {"interval.set": {"s": s}, "fw.update": {"m": m}, "thresholds.set": th}.get(op, {})
    b = messages.build_command(cmd_id, dev, op, args, not_after)
    assert cbor2.loads(b) == {
        1: cmd_id,
        2: dev,
        3: op,
        4: cbor2.loads(cbor2.dumps(args)),
        5: not_after,
    }
    p = messages.parse_command(b)
    assert norm(p) == norm(
        {"cmd_id": cmd_id, "device_id": dev, "op": op, "args": args, "not_after": not_after}
    )


@settings(max_examples=60, deadline=None)
@given(
    ack=u64,
    gt=u64,
    cmds=st.lists(st.binary(max_size=30), max_size=3),
    bid=st.binary(min_size=16, max_size=16),
    items=st.lists(st.tuples(u64, st.binary(max_size=30)), max_size=4),
    rejects=st.lists(st.tuples(u64, st.text(max_size=10)), max_size=3),
    version=st.from_regex(r"[!-~]{1,32}", fullmatch=True),
    board=st.from_regex(r"[a-z0-9_-]{1,32}", fullmatch=True),
    size=u64,
    sha=st.binary(min_size=32, max_size=32),
)
def test_reply_manifest_batch_round_trips(
    ack, gt, cmds, bid, items, rejects, version, board, size, sha
):
    assert messages.parse_reply(messages.build_reply(ack, gt, cmds)) == {
        "acked_seq": ack,
        "gateway_time": gt,
        "commands": cmds,
    }
    assert messages.parse_manifest(messages.build_manifest(version, board, board, size, sha)) == {
        "version": version,
        "board": board,
        "app": board,
        "size": size,
        "sha256": sha,
    }
    assert messages.parse_batch(messages.build_batch(bid, items)) == {
        "batch_id": bid,
        "items": items,
    }
    br = messages.build_batch_reply(ack, gt, rejects)
    assert messages.parse_batch_reply(br) == {
        "accepted": ack,
        "duplicates": gt,
        "rejects": rejects,
    }


# -------------------------------------------------------------- hostile


def _hostile():
    valid = [bytes.fromhex(v["hex"]) for k in PARSERS for v in V[k]]

    def mutate(args):
        b, pos, byte, cut = args
        b = bytearray(b)
        b[pos % len(b)] = byte
        return bytes(b[: len(b) - cut])

    mutated = st.tuples(
        st.sampled_from(valid), st.integers(0, 500), st.integers(0, 255), st.integers(0, 3)
    ).map(mutate)
    return st.binary(max_size=80) | mutated


@settings(max_examples=500, deadline=None)
@given(data=_hostile())
def test_parsers_on_hostile_bytes_only_raise_value_error(data):
    for parse in PARSERS.values():
        with contextlib.suppress(ValueError):
            parse(data)
    with contextlib.suppress(ValueError):
        messages.parse_uplink(data, DEV)


def test_parsers_refuse_non_bytes_with_value_error():
    for parse in PARSERS.values():
        for bad in (None, "a1", 5, {1: 1}):
            with pytest.raises(ValueError):
                parse(bad)


# -------------------------------------------------------------- byte budget


def _example_reading():
    # DESIGN's example: seq, t and vol / bat / rssi in the compact form, with
    # the widest seq a 32-bit counter reaches and float32 values, as a
    # single-precision ESP32 holds them (12345.678 -> 12345.677734375).
    # rssi is in dBW as DESIGN's unit says: -70 dBm is -100 dBW.
    vol = 12345.677734375
    bat = 3.299999952316284  # float32(3.3)
    return messages.build_uplink(2**32 - 1, T, compact=senml.compact(1, [vol, bat, -100]))


def _coap_post_u(payload, content_format):
    msg = coap.Message(coap_numbers.CON, coap_numbers.POST, 0xBEEF, b"\x12\x34")
    msg.add_option(coap_numbers.URI_PATH, "u")
    msg.add_option(coap_numbers.CONTENT_FORMAT, content_format)
    msg.payload = payload
    return msg.encode()


def test_example_reading_payload_is_28_bytes():
    payload = _example_reading()
    # a3 | 01 1affffffff | 02 1a6955b900 | 05 84 01 fa4640e6b6 fa40533333 3863
    assert len(payload) == 28
    p = messages.parse_uplink(payload, DEV)
    assert [(r["n"], r["u"], r["v"]) for r in p["readings"]] == [
        ("vol", "m3", 12345.677734375),
        ("bat", "V", 3.299999952316284),
        ("rssi", "dBW", -100),
    ]


def test_one_signed_meter_reading_fits_one_128_byte_datagram():
    cose_msg = cose.sign1(_example_reading(), SEED, DEV.encode())
    assert len(cose_msg) == 114  # 1 tag + 1 array + 4 protected + 12 kid + 30 payload + 66 sig
    datagram = _coap_post_u(cose_msg, coap_numbers.CF_COSE_SIGN1)
    # CoAP: 4 header + 2 token + 2 Uri-Path "u" + 2 Content-Format 18 + 1 marker = 11
    assert len(datagram) == 125
    assert len(datagram) <= 128
    back = coap.Message.decode(datagram)
    assert back.content_format == 18
    assert messages.parse_uplink(cose.verify1(back.payload, CV_PUB), DEV)["seq"] == 2**32 - 1


def test_one_maced_meter_reading_fits_one_80_byte_datagram():
    cose_msg = cose.mac0(_example_reading(), MACKEY, DEV.encode())
    assert len(cose_msg) == 57  # 1 + 1 + 4 + 12 + 30 + 9 tag
    datagram = _coap_post_u(cose_msg, coap_numbers.CF_COSE_MAC0)
    assert len(datagram) == 68
    assert len(datagram) <= 80
    back = coap.Message.decode(datagram)
    assert cose.verify_mac0(back.payload, MACKEY) == _example_reading()


def test_text_senml_form_of_the_same_reading_would_not_fit():
    # why the compact form exists: key 3 with text names is 21 bytes longer
    vol, bat = 12345.677734375, 3.299999952316284
    recs = [senml.record("vol", vol), senml.record("bat", bat), senml.record("rssi", -100)]
    payload = messages.build_uplink(2**32 - 1, T, records=recs)
    assert len(payload) == 49
    datagram = _coap_post_u(cose.sign1(payload, SEED, DEV.encode()), coap_numbers.CF_COSE_SIGN1)
    assert len(datagram) > 128
