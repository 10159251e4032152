"""The flash-backed outbox: what goes into an uplink, in what form and
size, what is kept when full, and that a power cut at any step loses no
item and never sends the same item under two seqs."""

import pytest
from runtime import outbox as outbox_mod
from runtime.clock import Clock
from runtime.identity import Identity
from runtime.outbox import Outbox
from runtime.seq import SeqCounter
from runtime.store import Store

from kapok.protocols import cbor, coap, cose, messages
from kapok.protocols import coap_numbers as n
from tests.firmware.runtime.conftest import DEVICE, SEED
from tests.firmware.runtime.fakes import T0, FakeClock, PowerCut, PowerCutFs, Rtc


class Node:
    """The outbox with what it needs, on a folder (one "boot")."""

    def __init__(self, path, ms=None, rtc=None, fs=None, capacity=outbox_mod.CAPACITY, ident=None):
        self.ms = ms or FakeClock()
        self.store = Store(str(path), fs=fs)
        self.clock = Clock(self.ms, rtc and rtc.unix_time, rtc and rtc.set_unix_time)
        floor = outbox_mod.stored_inflight_seq(self.store) + 1
        self.seq = SeqCounter(self.store, at_least=floor)
        self.ident = ident or Identity(DEVICE, seed=SEED)
        self.box = Outbox(self.store, self.ident.seal, self.seq, self.clock, self.ms, capacity)


def open_msg(msg, pub):
    return messages.parse_uplink(cose.verify1(msg, pub), DEVICE)


def payload_map(msg):
    return cbor.loads(cose.decode(msg)[3])


def drain(box, pub):
    out = []
    while box.busy():
        seq, msg = box.message()
        out.append((seq, msg, open_msg(msg, pub)))
        assert box.acked(seq)
    return out


def test_single_fresh_reading_goes_compact_and_fits_the_budget(tmp_path, keys):
    node = Node(tmp_path)
    node.clock.sync(T0)
    node.box.add_sample([("vol", 12345.677734375), ("bat", 3.3), ("rssi", -100)])
    _seq, msg = node.box.message()
    m = payload_map(msg)
    assert 5 in m and 3 not in m  # compact form
    assert m[2] == T0  # the sample's time is the message time
    up = open_msg(msg, keys["node"])
    assert [(r["n"], r["t"]) for r in up["readings"]] == [("vol", T0), ("bat", T0), ("rssi", T0)]
    # one signed meter reading in one datagram of at most 128 bytes (DESIGN)
    req = coap.Message(n.CON, n.POST, 0xFFFF, b"\xff\xff", payload=msg)
    req.uri_path = "u"
    req.add_option(n.CONTENT_FORMAT, n.CF_COSE_SIGN1)
    assert len(req.encode()) <= 128


def test_mac0_reading_fits_80_bytes(tmp_path):
    key = bytes(range(32))
    node = Node(tmp_path, ident=Identity(DEVICE, mac_key=key))
    node.clock.sync(T0)
    node.box.add_sample([("vol", 12.5), ("bat", 3.3), ("rssi", -100)])
    _, msg = node.box.message()
    assert messages.parse_uplink(cose.verify_mac0(msg, key), DEVICE)["readings"]
    req = coap.Message(n.CON, n.POST, 1, b"\x01\x02", payload=msg)
    req.uri_path = "u"
    req.add_option(n.CONTENT_FORMAT, n.CF_COSE_MAC0)
    assert len(req.encode()) <= 80


def test_in_flight_bytes_are_resent_unchanged_until_acked(tmp_path, keys):
    node = Node(tmp_path)
    node.box.add_sample([("vol", 1.0)])
    first = node.box.message()
    node.box.add_sample([("vol", 2.0)])  # arrives while the first is in flight
    assert node.box.message() == first
    assert not node.box.acked(first[0] + 1)  # another seq: no
    again = Node(tmp_path)  # reboot: still the same bytes
    assert again.box.message() == first
    assert again.box.acked(first[0])
    seq2, msg2 = again.box.message()
    assert seq2 > first[0]
    assert [r["v"] for r in open_msg(msg2, keys["node"])["readings"]] == [2.0]
    assert again.box.acked(seq2) and not again.box.busy()


def test_before_the_clock_is_set_nothing_carries_a_time(tmp_path, keys):
    node = Node(tmp_path)
    node.box.add_event("boot", 0)
    node.box.add_sample([("vol", 1.5), ("bat", 3.1)])
    _seq, msg = node.box.message()
    up = open_msg(msg, keys["node"])
    assert up["t"] is None
    assert up["events"] == [("boot", 0, 0)]
    assert all(r["time_source"] is None for r in up["readings"])


def test_samples_from_before_the_first_sync_are_dated_after_it(tmp_path, keys):
    node = Node(tmp_path)
    for v in (1.0, 2.0, 3.0):
        node.box.add_sample([("vol", v)])
        node.ms.advance(60_000)
    node.clock.sync(T0)  # the gateway's time arrives 3 minutes in
    _, msg = node.box.message()
    up = open_msg(msg, keys["node"])
    assert [(r["v"], r["t"], r["time_source"]) for r in up["readings"]] == [
        (1.0, T0 - 180, "record"),
        (2.0, T0 - 120, "record"),
        (3.0, T0 - 60, "record"),
    ]
    assert up["t"] == T0


def test_unsynced_batch_carries_relative_times(tmp_path, keys):
    node = Node(tmp_path)
    for v in (1.0, 2.0):
        node.box.add_sample([("vol", v)])
        node.ms.advance(120_000)
    up = open_msg(node.box.message()[1], keys["node"])
    assert up["t"] is None
    # dated against the gateway's receive time: 240 and 120 s before it
    assert [(r["v"], r["dt"]) for r in up["readings"]] == [(1.0, -240), (2.0, -120)]


def test_samples_of_an_earlier_unsynced_boot_have_no_time(tmp_path, keys):
    node = Node(tmp_path)
    node.box.add_sample([("vol", 1.0)])
    node.box.add_sample([("vol", 2.0)])
    later = Node(tmp_path)  # rebooted, no RTC: their age is unknown now
    later.clock.sync(T0)
    later.box.add_sample([("vol", 3.0)])
    msgs = drain(later.box, keys["node"])
    first = msgs[0][2]
    assert first["t"] is None  # no message time that could misdate them
    assert [(r["v"], r["time_source"]) for r in first["readings"]] == [(1.0, None), (2.0, None)]
    second = msgs[1][2]
    assert [(r["v"], r["t"]) for r in second["readings"]] == [(3.0, T0)]


def test_rtc_time_survives_reboot(tmp_path, keys):
    ms = FakeClock()
    rtc = Rtc(ms)
    node = Node(tmp_path, ms=ms, rtc=rtc)
    node.clock.sync(T0)
    ms.advance(5000)
    node.box.add_sample([("vol", 1.0)])
    again = Node(tmp_path, ms=ms, rtc=rtc)
    up = open_msg(again.box.message()[1], keys["node"])
    assert up["readings"][0]["t"] == T0 + 5


def test_backlog_is_split_into_uplinks_under_1024_bytes(tmp_path, keys):
    node = Node(tmp_path, capacity=400)
    node.clock.sync(T0)
    for i in range(300):
        node.box.add_sample([("vol", 1000.0 + i * 0.125), ("bat", 3.3), ("temp", 21.5)])
        node.ms.advance(900_000)
    node.box.add_event("water.leak", True)
    node.box.add_result(7, messages.OK, "closed")
    msgs = drain(node.box, keys["node"])
    assert len(msgs) > 5
    assert all(len(m) <= 1024 for _, m, _ in msgs)
    seqs = [s for s, _, _ in msgs]
    assert seqs == sorted(set(seqs))
    # the alarm and the result go in the first uplink, ahead of the backlog
    assert msgs[0][2]["events"][0][0] == "water.leak"
    assert msgs[0][2]["results"] == [(7, 0, "closed")]
    vols = [r["v"] for _, _, up in msgs for r in up["readings"] if r["n"] == "vol"]
    assert vols == [1000.0 + i * 0.125 for i in range(300)]  # all, in order, once
    times = [r["t"] for _, _, up in msgs for r in up["readings"] if r["n"] == "vol"]
    assert times == [T0 + 900 * i for i in range(300)]


def test_long_texts_are_cut(tmp_path, keys):
    node = Node(tmp_path)
    node.box.add_event("fw.fail", "x" * 500)
    node.box.add_result(3, messages.E_FAILED, "y" * 500)
    up = open_msg(node.box.message()[1], keys["node"])
    assert up["events"][0][2] == "x" * outbox_mod.MAX_TEXT
    assert up["results"][0][2] == "y" * outbox_mod.MAX_TEXT


def test_bad_items_are_refused_at_once(tmp_path):
    box = Node(tmp_path).box
    with pytest.raises(ValueError):
        box.add_sample([("volume", 1.0)])
    with pytest.raises(ValueError):
        box.add_sample([("valve", 1.0)])  # valve is a boolean
    with pytest.raises(ValueError):
        box.add_event("fire", 1)
    with pytest.raises(ValueError):
        box.add_result(1, 99)
    assert len(box) == 0


def test_full_outbox_drops_oldest_plain_readings_keeps_alarms_and_latest_register(tmp_path, keys):
    node = Node(tmp_path, capacity=16)
    node.clock.sync(T0)
    alarms = 0
    for i in range(60):
        node.box.add_sample([("vol", float(i)), ("bat", 3.0)])
        if i % 10 == 5:
            node.box.add_event("gas.leak", i)
            alarms += 1
        node.box.add_sample([("temp", 20.0 + i)])
        node.ms.advance(1000)
    assert len(node.box) <= 16 + alarms
    assert node.box.alarms == alarms
    msgs = drain(node.box, keys["node"])
    events = [e for _, _, up in msgs for e in up["events"]]
    assert [e[2] for e in events if e[0] == "gas.leak"] == [5, 15, 25, 35, 45, 55]
    dropped = [e[2] for e in events if e[0] == "outbox.dropped"]
    assert len(dropped) == 1  # one event, counting everything dropped
    readings = [r for _, _, up in msgs for r in up["readings"]]
    vols = [r["v"] for r in readings if r["n"] == "vol"]
    assert vols[-1] == 59.0  # the latest register reading is kept
    assert dropped[0] == 60 * 3 - len(readings)  # every dropped reading counted


def test_outbox_full_of_alarms_keeps_them_all(tmp_path, keys):
    node = Node(tmp_path, capacity=8)
    for i in range(20):
        node.box.add_event("smoke", i)
    assert len(node.box) == 20
    msgs = drain(node.box, keys["node"])
    assert [e[2] for _, _, up in msgs for e in up["events"]] == list(range(20))


def test_torn_tail_is_cut_at_boot(tmp_path, keys):
    node = Node(tmp_path)
    node.box.add_sample([("vol", 1.0)])
    with open(tmp_path / "outbox.log", "ab") as f:
        f.write(b"\x00\x30\xa1")  # a record cut short by a power loss
    again = Node(tmp_path)
    assert len(again.box) == 1
    again.box.add_sample([("vol", 2.0)])
    vols = [r["v"] for _, _, up in drain(again.box, keys["node"]) for r in up["readings"]]
    assert vols == [1.0, 2.0]


def test_discard_drops_only_the_in_flight_message(tmp_path, keys):
    node = Node(tmp_path)
    node.box.add_sample([("vol", 1.0)])
    _seq, _ = node.box.message()
    node.box.add_sample([("vol", 2.0)])
    node.box.discard()
    vols = [r["v"] for _, _, up in drain(node.box, keys["node"]) for r in up["readings"]]
    assert vols == [2.0]


# --------------------------------------------------------------- power cuts


def scenario(node, log):
    """Adds, sends and acks; `log` records what the caller saw succeed."""
    box = node.box
    ident = 0

    def add(kind):
        nonlocal ident
        ident += 1
        if kind == "sample":
            box.add_sample([("vol", float(ident)), ("bat", 3.0)])
        elif kind == "alarm":
            box.add_event("sos", ident)
        else:
            box.add_result(ident, messages.OK)
        log["added"].append(ident)

    for step in range(6):
        for kind in ("sample", "sample", "alarm", "sample", "result")[: 2 + step % 4]:
            add(kind)
            node.ms.advance(1000)
        if step == 2:
            node.clock.sync(T0)
        for _ in range(1 + step % 2):
            got = box.message()
            if got is None:
                break
            log["sent"].append(got)
            if step % 3 != 1:  # sometimes the ACK does not come
                assert box.acked(got[0])
                log["acked"].append(got[0])


def items_of(msg, pub):
    up = open_msg(msg, pub)
    out = [int(r["v"]) for r in up["readings"] if r["n"] == "vol"]
    out += [e[2] for e in up["events"] if e[0] == "sos"]
    out += [r[0] for r in up["results"]]
    return out


def test_power_cut_at_every_step_loses_nothing_and_never_reuses_a_seq(tmp_path, keys):
    pub = keys["node"]
    probe = tmp_path / "probe"
    fs = PowerCutFs()
    scenario(Node(probe, fs=fs), {"added": [], "sent": [], "acked": []})
    total = fs.steps
    assert total > 100
    for k in range(total):
        d = tmp_path / f"cut{k}"
        log = {"added": [], "sent": [], "acked": []}
        ms = FakeClock()
        try:
            scenario(Node(d, ms=ms, fs=PowerCutFs(cut_at=k)), log)
            raise AssertionError(f"no cut at step {k}")
        except PowerCut:
            pass
        # reboot and send everything that is left
        after = Node(d, ms=ms)
        rest = drain(after.box, pub)
        done = {s for s, _, _ in rest}
        by_seq = {}
        for seq, msg in log["sent"] + [(s, m) for s, m, _ in rest]:
            assert by_seq.setdefault(seq, msg) == msg, f"cut {k}: seq {seq} reused"
        # what each distinct seq carried (a resent seq is the same message)
        delivered = [
            i for s in by_seq if s in log["acked"] or s in done for i in items_of(by_seq[s], pub)
        ]
        # nothing added is lost; no item went under two seqs
        assert set(log["added"]) <= set(delivered), f"cut {k}: lost"
        assert len(delivered) == len(set(delivered)), f"cut {k}: under two seqs"
        # a message that was in flight at the cut goes out again unchanged
        unacked = [s for s, _ in log["sent"] if s not in log["acked"]]
        if unacked and rest and rest[0][0] in unacked:
            assert rest[0][1] == by_seq[rest[0][0]]


@pytest.mark.parametrize(
    ("sample", "profile"),
    [
        ([("vol", 1.5), ("valve", True), ("bat", 3.0), ("rssi", -90)], 3),
        ([("energy", 42.0), ("rssi", -80)], 2),
        ([("vol", 1.5)], 1),  # bat and rssi "not measured this time"
        ([("temp", 21.5), ("hum", 40.0)], 6),
        ([("fw", "1.2.0")], None),  # in no profile: full SenML
    ],
)
def test_smallest_fitting_compact_profile(tmp_path, keys, sample, profile):
    node = Node(tmp_path)
    node.clock.sync(T0)
    node.box.add_sample(sample)
    _, msg = node.box.message()
    m = payload_map(msg)
    assert (m[5][0] if 5 in m else None) == profile
    up = open_msg(msg, keys["node"])
    assert sorted((r["n"], r.get("v", r.get("vb", r.get("vs")))) for r in up["readings"]) == sorted(
        sample
    )
