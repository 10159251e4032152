"""OTA: the A/B slot bookkeeping boot.py relies on, and the fw.update flow
(manifest checks, Block2 download streamed into the slot through the
bundle unpacker, size and SHA-256 checks, clean abort)."""

import asyncio
import hashlib
import sys

import pytest
from runtime import VERSION, slots
from runtime.clock import Clock
from runtime.coap_client import Client
from runtime.commands import CommandError
from runtime.identity import Identity
from runtime.ota import Ota
from runtime.outbox import Outbox
from runtime.seq import SeqCounter
from runtime.store import Store

from kapok.protocols import bundle, cose, messages
from tests.firmware.runtime.conftest import CLOUD_SEED, DEVICE, FW_SEED, SEED, make_config
from tests.firmware.runtime.fakes import GATEWAY, T0, FakeClock

FILES = [
    ("runtime/__init__.py", b"VERSION = '1.1.0'\n"),
    ("apps/testapp.py", b"# new app\n" + bytes(3000)),
    ("board.py", b"NAME = 'virtual'\n"),
]
BUNDLE = bundle.pack(FILES)


def manifest(version="1.1.0", board="virtual", app="testapp", body=BUNDLE, **signer):
    """A manifest signed by the firmware key (or `seed`/`kid`)."""
    size = signer.get("size")
    seed = signer.get("seed", FW_SEED)
    kid = signer.get("kid", b"firmware")
    m = messages.build_manifest(
        version, board, app, len(body) if size is None else size, hashlib.sha256(body).digest()
    )
    return cose.sign1(m, seed, kid)


# ------------------------------------------------------------ boot decision


def test_pending_slot_gets_three_boots_then_rolls_back():
    state = {"active": None, "pending": "a", "tries": 0, "versions": {"a": "1.1.0"}}
    for tries in (1, 2, 3):
        state, run = slots.at_boot(state)
        assert run == "a" and state["tries"] == tries
    state, run = slots.at_boot(state)
    assert run is None and state["pending"] is None  # the factory image
    assert state["report"] == ["fw.rollback", VERSION]


def test_rollback_goes_to_the_confirmed_slot():
    state = {"active": "a", "pending": "b", "tries": 3, "versions": {"a": "1.1", "b": "1.2"}}
    state, run = slots.at_boot(state)
    assert run == "a" and state["report"] == ["fw.rollback", "1.1"]


@pytest.mark.parametrize("junk", [None, [], {"pending": "c"}, {"tries": -1}, {"active": 5}])
def test_junk_state_boots_the_factory_image(junk):
    assert slots.at_boot(junk)[1] is None


def test_boot_counts_the_try_on_flash_and_puts_the_slot_first(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    data = str(tmp_path / "data")
    Store(data).write(slots.STATE, {"active": None, "pending": "b", "tries": 0})
    assert slots.boot(data, str(tmp_path / "slots")) == "b"
    assert sys.path[0] == str(tmp_path / "slots" / "b" / "lib")
    assert Store(data).read(slots.STATE)["tries"] == 1
    assert slots.boot(str(tmp_path / "fresh")) is None  # never updated: nothing written


def test_file_slots_write_pending_confirm(tmp_path):
    store = Store(str(tmp_path / "data"))
    s = slots.FileSlots(store, str(tmp_path / "slots"))
    assert s.running() is None and s.target() == "a" and s.version() == VERSION
    s.begin("a")
    s.open("runtime/x.py")
    s.write(b"print(1)")
    s.set_pending("a", "1.1.0")
    assert (tmp_path / "slots" / "a" / "lib" / "runtime" / "x.py").read_bytes() == b"print(1)"
    again = slots.FileSlots(Store(str(tmp_path / "data")), str(tmp_path / "slots"))
    assert again.running() == "a" and again.confirming() and again.target() == "b"
    assert again.confirm() == "1.1.0"
    assert not again.confirming() and again.version() == "1.1.0"
    with pytest.raises(ValueError):
        again.begin("a")  # never the running slot


# ------------------------------------------------------------- fw.update


class Rig:
    def __init__(self, tmp_path, keys, net, gateway):
        self.ms = net.clock
        self.store = Store(str(tmp_path / "data"))
        clock = Clock(FakeClock())
        clock.sync(T0)
        seq = SeqCounter(self.store)
        self.outbox = Outbox(self.store, Identity(DEVICE, seed=SEED).seal, seq, clock, self.ms)
        self.slots = slots.FileSlots(self.store, str(tmp_path / "slots"))
        auths = make_config(keys)["authorities"]
        self.ota = Ota(self.slots, auths, "virtual", "testapp", self.outbox)
        self.client = Client(net.transport(), GATEWAY, net.clock, lambda k: bytes(k))
        self.gateway = gateway
        self.root = tmp_path / "slots"

    def update(self, m):
        return asyncio.run(self.ota.update(self.client, m))

    def events(self, pub):
        out = []
        while self.outbox.busy():
            seq, msg = self.outbox.message()
            out += messages.parse_uplink(cose.verify1(msg, pub), DEVICE)["events"]
            self.outbox.acked(seq)
        return [(e[0], e[2]) for e in out]


@pytest.fixture
def rig(tmp_path, keys, net, gateway):
    gateway.fw["fw/" + hashlib.sha256(BUNDLE).hexdigest()] = BUNDLE
    return Rig(tmp_path, keys, net, gateway)


def test_good_release_is_staged_in_the_inactive_slot(rig, keys):
    detail = rig.update(manifest())
    assert detail == "1.1.0 staged in slot a"
    for path, data in FILES:
        assert (rig.root / "a" / "lib" / path).read_bytes() == data
    assert rig.slots.state["pending"] == "a" and rig.slots.state["versions"]["a"] == "1.1.0"
    assert rig.events(keys["node"]) == [
        ("fw.progress", 25),
        ("fw.progress", 50),
        ("fw.progress", 75),
        ("fw.progress", 100),
    ]


def test_hash_mismatch_wipes_the_slot_and_says_why(rig, keys):
    tampered = BUNDLE[:-10] + b"X" * 9 + b"\x00"
    rig.gateway.fw["fw/" + hashlib.sha256(BUNDLE).hexdigest()] = tampered
    with pytest.raises(CommandError) as e:
        rig.update(manifest())
    assert e.value.code == messages.E_FAILED and "SHA-256" in e.value.detail
    assert not (rig.root / "a").exists()
    assert rig.slots.state["pending"] is None
    assert ("fw.fail", "bundle SHA-256 does not match the manifest") in rig.events(keys["node"])


def test_bundle_larger_than_the_manifest_says_is_cut_off(rig):
    with pytest.raises(CommandError, match="limit") as e:
        rig.update(manifest(size=len(BUNDLE) - 100))
    assert e.value.code == messages.E_FAILED
    assert not (rig.root / "a").exists()


def test_bundle_that_escapes_its_slot_is_refused(rig, tmp_path):
    evil = b"KPK1" + bytes([8]) + b"../x.mpy" + b"\x00\x00\x00\x01x\x00"
    rig.gateway.fw["fw/" + hashlib.sha256(evil).hexdigest()] = evil
    with pytest.raises(CommandError, match="path"):
        rig.update(manifest(body=evil))
    assert not (tmp_path / "slots" / "x.mpy").exists()


def test_truncated_bundle_is_refused(rig):
    # the gateway's copy stops short of the bundle the manifest describes
    rig.gateway.fw["fw/" + hashlib.sha256(BUNDLE).hexdigest()] = BUNDLE[:-1]
    with pytest.raises(CommandError, match="truncated"):
        rig.update(manifest())
    assert not (rig.root / "a").exists()


def test_short_manifest_size_stops_the_download_early(rig):
    short = BUNDLE[:-1]  # the size no longer leaves room for the end byte
    rig.gateway.fw["fw/" + hashlib.sha256(short).hexdigest()] = short
    with pytest.raises(CommandError, match=r"over the \d+-byte limit"):
        rig.update(manifest(body=short))


@pytest.mark.parametrize(
    ("m", "why"),
    [
        (manifest(seed=CLOUD_SEED, kid=b"cloud"), "not signed by a firmware key"),
        (manifest(seed=CLOUD_SEED), "bad signature"),
        (manifest(board="esp32"), "for board esp32"),
        (manifest(app="hub"), "for app hub"),
        (b"\xa0", "not a COSE_Sign1"),
    ],
)
def test_manifest_refusals(rig, m, why):
    with pytest.raises(CommandError, match=why) as e:
        rig.update(m)
    assert e.value.code == messages.E_ARGS
    assert rig.gateway.requests == []  # nothing downloaded


def test_same_version_is_not_downloaded(rig):
    assert rig.update(manifest(version=VERSION)) == f"already running {VERSION}"
    assert rig.gateway.requests == []


def reboot(rig):
    rig.slots = slots.FileSlots(Store(str(rig.root.parent / "data")), str(rig.root))
    rig.ota.slots = rig.slots


def test_no_second_update_before_the_first_is_confirmed(rig):
    rig.update(manifest())
    reboot(rig)  # now running slot a, not confirmed yet
    assert rig.slots.running() == "a" and rig.slots.confirming()
    with pytest.raises(CommandError, match="not confirmed"):
        rig.update(manifest(version="1.2.0"))


def test_a_newer_release_replaces_one_staged_but_not_booted(rig):
    rig.update(manifest())
    body = bundle.pack([("x.py", b"v2")])
    rig.gateway.fw["fw/" + hashlib.sha256(body).hexdigest()] = body
    assert rig.update(manifest(version="1.2.0", body=body)) == "1.2.0 staged in slot a"
    assert not (rig.root / "a" / "lib" / "runtime").exists()  # the old files are gone
    reboot(rig)
    assert rig.slots.running() == "a" and rig.slots.version() == "1.2.0"
