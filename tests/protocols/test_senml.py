"""protocols.senml: the Kapok reading table (DESIGN "Reading names"), SenML-CBOR
records with RFC 8428 §6 integer labels, base-value resolution and the
compact form."""

import contextlib
import math

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapok.protocols import cbor, senml
from tests.conftest import load_vectors

T = 1767225600

# DESIGN "Reading names": name -> (unit, value kind)
DESIGN_TABLE = {
    "vol": ("m3", "v"),
    "flow": ("m3/s", "v"),
    "rev": ("m3", "v"),
    "energy": ("kWh", "v"),
    "valve": (None, "vb"),
    "ph": ("pH", "v"),
    "turb": ("NTU", "v"),
    "cl": ("mg/l", "v"),
    "cond": ("S/m", "v"),
    "temp": ("Cel", "v"),
    "hum": ("%RH", "v"),
    "bat": ("V", "v"),
    "rssi": ("dBW", "v"),
    "fw": (None, "vs"),
}
# Kapok's additions to DESIGN's table (documented in docs/protocol.md)
ADDITIONS = {
    "ch4": ("%LEL", "v"),
}


def test_table_is_exactly_the_design_table_plus_documented_additions():
    table = {n: (u, k) for n, (u, k, _) in senml.READINGS.items()}
    assert table == {**DESIGN_TABLE, **ADDITIONS}
    for n, (u, k) in DESIGN_TABLE.items():
        assert senml.unit(n) == u
        assert senml.kind(n) == k
        assert senml.READINGS[n][2]  # every name has a meaning


def test_rfc8428_labels():
    # RFC 8428 §6 Table 4 (CBOR labels)
    labels = {
        "_BVER": -1,
        "_BN": -2,
        "_BT": -3,
        "_BU": -4,
        "_BV": -5,
        "_BS": -6,
        "_N": 0,
        "_U": 1,
        "_V": 2,
        "_VS": 3,
        "_VB": 4,
        "_S": 5,
        "_T": 6,
        "_UT": 7,
        "_VD": 8,
    }
    for name, label in labels.items():
        assert getattr(senml, name) == label


def test_profiles_are_stable_wire_values_naming_known_readings():
    # Profile numbers travel on the wire: this table may only grow.
    assert senml.PROFILES == {
        1: ("vol", "bat", "rssi"),
        2: ("energy", "rssi"),
        3: ("vol", "valve", "bat", "rssi"),
        4: ("vol", "rev", "flow", "bat", "rssi"),
        5: ("ph", "turb", "cl", "cond", "temp", "bat", "rssi"),
        6: ("temp", "hum", "bat", "rssi"),
    }
    for p, names in senml.PROFILES.items():
        assert len(set(names)) == len(names)
        assert all(n in senml.READINGS for n in names)
        assert senml.profile_of(names) == p
    assert senml.profile_of(("vol", "rssi")) is None


# --------------------------------------------------------------- builders


def test_record_writes_int_labels_and_no_unit_by_default():
    assert senml.record("vol", 12.5) == {0: "vol", 2: 12.5}
    assert senml.record("valve", True, t=5) == {0: "valve", 4: True, 6: 5}
    assert senml.record("fw", "1.2.0") == {0: "fw", 3: "1.2.0"}
    assert senml.record("vol", 1, with_unit=True) == {0: "vol", 1: "m3", 2: 1}
    assert senml.record("valve", False, with_unit=True) == {0: "valve", 4: False}


def test_record_cbor_matches_rfc8428_cbor_shape():
    # RFC 8428 §6: {0: name, 2: value} maps with integer labels
    assert cbor.dumps([senml.record("temp", 23.5)]) == cbor2.dumps(
        [{0: "temp", 2: 23.5}], canonical=True
    )
    assert cbor.dumps([senml.record("temp", 23.5)]).hex() == "81a2006474656d7002f94de0"


@pytest.mark.parametrize(
    ("n", "value", "match"),
    [
        ("volume", 1, "unknown reading name"),
        ("vol", True, "finite number"),
        ("vol", "1", "finite number"),
        ("vol", math.nan, "finite number"),
        ("vol", math.inf, "finite number"),
        ("valve", 1, "boolean"),
        ("fw", 1, "text"),
        (5, 1, "must be text"),
    ],
)
def test_record_rejects_unknown_names_and_wrong_kinds(n, value, match):
    with pytest.raises(ValueError, match=match):
        senml.record(n, value)


def test_pack_puts_base_name_and_time_in_first_record_only():
    recs = [senml.record("vol", 1.5), senml.record("vol", 2.5, t=60)]
    p = senml.pack(recs, "gm-0001a3", T)
    assert p == [{-2: "gm-0001a3/", -3: T, 0: "vol", 2: 1.5}, {0: "vol", 2: 2.5, 6: 60}]
    assert recs[0] == {0: "vol", 2: 1.5}  # input left alone
    with pytest.raises(ValueError):
        senml.pack(recs, "GM-1")
    with pytest.raises(ValueError):
        senml.pack([])


def test_compact_checks_profile_length_and_kinds():
    assert senml.compact(1, [1.5, 3.5, -100]) == [1, 1.5, 3.5, -100]
    assert senml.compact(3, [1.5, None, None, -100]) == [3, 1.5, None, None, -100]
    for profile, values in [(1, [1.5, 3.5]), (9, [1]), (True, [1, 2, 3]), (3, [1.5, 1, 3.5, -90])]:
        with pytest.raises(ValueError):
            senml.compact(profile, values)


# ---------------------------------------------------------------- resolve

SENML_VECTORS = load_vectors("messages")["senml"]


def _j(x):
    if isinstance(x, dict):
        if set(x) == {"pairs"}:
            return {k: _j(v) for k, v in x["pairs"]}
        return {k: _j(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_j(i) for i in x]
    return x


@pytest.mark.parametrize("v", SENML_VECTORS, ids=[v["name"] for v in SENML_VECTORS])
def test_resolve_vectors(v):
    got = senml.resolve(_j(v["records"]), v["device_id"], v["message_time"])
    assert got == _j(v["resolved"])


def test_time_sources_follow_design_order():
    # bt + t, else the message t, else the gateway's receive time
    r = senml.resolve([{-3: T, 0: "vol", 2: 1, 6: 10}], None, T + 99)
    assert (r[0]["t"], r[0]["time_source"]) == (T + 10, "record")
    r = senml.resolve([{0: "vol", 2: 1}], None, T)
    assert (r[0]["t"], r[0]["time_source"]) == (T, "message")
    r = senml.resolve([{0: "vol", 2: 1}], None, None)
    assert (r[0]["t"], r[0]["time_source"], r[0]["dt"]) == (None, None, 0)


def test_relative_times_below_2_pow_28_are_offsets_as_rfc8428_says():
    # RFC 8428 §4.5.3: values below 2**28 are relative to "now"
    r = senml.resolve([{0: "vol", 2: 1, 6: -120}], None, T)
    assert (r[0]["t"], r[0]["time_source"]) == (T - 120, "message")
    r = senml.resolve([{0: "vol", 2: 1, 6: -120}], None, None)
    assert (r[0]["t"], r[0]["time_source"], r[0]["dt"]) == (None, None, -120)
    r = senml.resolve([{-3: 2**28, 0: "vol", 2: 1}], None, None)
    assert (r[0]["t"], r[0]["time_source"]) == (2**28, "record")


def test_base_values_carry_to_later_records():
    r = senml.resolve(
        [
            {-2: "gm-1/", -3: T, 0: "vol", 2: 1},
            {0: "vol", 2: 2, 6: 60},
            {-3: T + 600, 0: "bat", 2: 3},
        ],
        "gm-1",
    )
    assert [(x["n"], x["t"]) for x in r] == [("vol", T), ("vol", T + 60), ("bat", T + 600)]


def test_bu_applies_only_to_numeric_records():
    r = senml.resolve([{-4: "m3", 0: "vol", 2: 1}, {0: "valve", 4: True}, {0: "fw", 3: "1"}])
    assert [x["u"] for x in r] == ["m3", None, None]


def test_unit_given_for_a_unitless_reading_is_refused():
    with pytest.raises(ValueError, match="valve"):
        senml.resolve([{0: "valve", 1: "V", 4: True}])


def test_bn_must_be_the_device_id_with_a_slash():
    ok = [{-2: "gm-1/", 0: "vol", 2: 1}]
    assert senml.resolve(ok, "gm-1")[0]["n"] == "vol"
    assert senml.resolve(ok)[0]["n"] == "vol"
    for bn, dev in [("gm-2/", "gm-1"), ("gm-1", None), ("gm-1/x/", None), ("GM-1/", None)]:
        with pytest.raises(ValueError, match="bn"):
            senml.resolve([{-2: bn, 0: "vol", 2: 1}], dev)
    with pytest.raises(ValueError, match="device id"):
        senml.resolve(ok, "Bad Id")


def test_rfc8428_example_with_urn_base_name_is_not_a_kapok_pack():
    # RFC 8428 §5.1.2 example, CBOR labels; its names are not Kapok's
    pack = [
        {-2: "urn:dev:ow:10e2073a01080063:", -3: 1.276020076001e09, -4: "A", -1: 5, 0: "voltage"},
    ]
    with pytest.raises(ValueError):
        senml.resolve(pack)


def test_text_labels_ignored_unless_must_understand():
    assert senml.resolve([{0: "vol", 2: 1, "note": "x"}])[0]["v"] == 1
    with pytest.raises(ValueError, match="must-understand"):
        senml.resolve([{0: "vol", 2: 1, "note_": "x"}])


def test_expand_gives_the_same_records_as_full_senml():
    compact = senml.expand([3, 1.5, False, None, -100], T)
    full = senml.resolve(
        [senml.record("vol", 1.5), senml.record("valve", False), senml.record("rssi", -100)],
        None,
        T,
    )
    assert compact == full


# -------------------------------------------------------------- properties

numbers = st.one_of(
    st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False, width=32)
)


@st.composite
def reading(draw):
    n = draw(st.sampled_from(sorted(senml.READINGS)))
    k = senml.kind(n)
    v = {"v": numbers, "vb": st.booleans(), "vs": st.text(max_size=12)}[k]
    return n, draw(v)


@settings(max_examples=150, deadline=None)
@given(
    readings=st.lists(reading(), max_size=8),
    offsets=st.lists(st.integers(-100000, 100000), min_size=8, max_size=8),
    # base times well above 2**28 so bt + t stays an absolute time
    bt=st.one_of(st.none(), st.integers(2**29, 2**32)),
    mt=st.one_of(st.none(), st.integers(2**28, 2**32)),
)
def test_built_packs_survive_cbor_and_resolve_to_what_went_in(readings, offsets, bt, mt):
    recs = [senml.record(n, v, t=offsets[i]) for i, (n, v) in enumerate(readings)]
    if recs:
        recs = senml.pack(recs, "gm-0001a3", bt)
    wire = cbor.loads(cbor.dumps(recs))
    got = senml.resolve(wire, "gm-0001a3", mt)
    assert [(r["n"], r[senml.kind(r["n"])]) for r in got] == readings
    for i, r in enumerate(got):
        assert r["u"] == senml.unit(r["n"])
        if bt is not None:
            assert r["time_source"] == "record"
            assert r["t"] == bt + offsets[i]
        elif mt is not None:
            assert (r["t"], r["time_source"]) == (mt + offsets[i], "message")
        else:
            assert (r["t"], r["time_source"], r["dt"]) == (None, None, offsets[i])


@settings(max_examples=100, deadline=None)
@given(profile=st.sampled_from(sorted(senml.PROFILES)), data=st.data(), mt=st.integers(0, 2**32))
def test_compact_round_trips(profile, data, mt):
    names = senml.PROFILES[profile]
    values = []
    for n in names:
        k = senml.kind(n)
        strat = {"v": numbers, "vb": st.booleans(), "vs": st.text(max_size=5)}[k]
        values.append(data.draw(st.one_of(st.none(), strat)))
    c = cbor.loads(cbor.dumps(senml.compact(profile, values)))
    got = senml.expand(c, mt)
    want = [(n, v) for n, v in zip(names, values, strict=True) if v is not None]
    assert [(r["n"], r[senml.kind(r["n"])]) for r in got] == want
    assert all(r["t"] == mt and r["time_source"] == "message" for r in got)


cbor_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(max_size=8),
        st.binary(max_size=8),
        st.sampled_from(["vol", "valve", "fw", "gm-1/", "m3", "V"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.integers(-8, 8) | st.text(max_size=3), inner, max_size=5),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(records=st.lists(cbor_values, max_size=4) | cbor_values, mt=st.none() | cbor_values)
def test_resolve_and_expand_on_hostile_structures_only_raise_value_error(records, mt):
    for fn in (senml.resolve, senml.expand):
        with contextlib.suppress(ValueError):
            fn(records, None, mt) if fn is senml.resolve else fn(records, mt)
