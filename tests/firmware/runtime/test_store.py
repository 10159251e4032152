"""Atomic files on flash: a power cut at any step leaves the old value or
the new one, never a mix; leftovers and corrupt files read as absent."""

import pytest
from runtime.store import Mirrored, Store, makedirs, rmtree

from tests.firmware.runtime.fakes import PowerCut, PowerCutFs

OLD = {"v": 1, "text": "old" * 20}
NEW = {"v": 2, "text": "new" * 20, "more": list(range(30))}


def test_write_then_read_round_trips(tmp_path):
    syncs = []
    s = Store(str(tmp_path / "data"), lambda: syncs.append(1))
    assert s.read("x.cbor") is None
    s.write("x.cbor", NEW)
    assert s.read("x.cbor") == NEW
    assert syncs == [1]  # the durability point after the rename
    assert not (tmp_path / "data" / "x.cbor.new").exists()


def test_leftover_new_file_is_ignored_and_replaced(tmp_path):
    s = Store(str(tmp_path))
    s.write("x.cbor", OLD)
    (tmp_path / "x.cbor.new").write_bytes(b"\xa1\x01")  # a torn write of NEW
    assert s.read("x.cbor") == OLD
    s.write("x.cbor", NEW)
    assert s.read("x.cbor") == NEW


@pytest.mark.parametrize("garbage", [b"", b"\xff\xff", b"\xa2\x01", b"\x81\x01\x02", b"\x00" * 9])
def test_corrupt_file_reads_as_absent(tmp_path, garbage):
    (tmp_path / "x.cbor").write_bytes(garbage)
    assert Store(str(tmp_path)).read("x.cbor") is None


def count_steps(tmp_path, action):
    fs = PowerCutFs()
    action(Store(str(tmp_path), fs=fs))
    return fs.steps


def test_power_cut_at_every_step_of_a_write(tmp_path):
    setup = tmp_path / "probe"
    setup.mkdir()
    Store(str(setup)).write("x.cbor", OLD)
    steps = count_steps(setup, lambda s: s.write("x.cbor", NEW))
    assert steps >= 4  # open, write, close, rename
    for k in range(steps):
        d = tmp_path / f"cut{k}"
        d.mkdir()
        Store(str(d)).write("x.cbor", OLD)
        with pytest.raises(PowerCut):
            Store(str(d), fs=PowerCutFs(cut_at=k)).write("x.cbor", NEW)
        after = Store(str(d)).read("x.cbor")  # "reboot": a fresh store
        assert after == OLD, k  # only the rename commits, and it is the last step
        Store(str(d)).write("x.cbor", NEW)  # and the node can write again
        assert Store(str(d)).read("x.cbor") == NEW


def test_mirrored_keeps_the_newest_readable_copy(tmp_path):
    s = Store(str(tmp_path))
    m = Mirrored(s, "ctr")
    assert m.value is None
    for v in (10, 20, 30):
        m.write(v)
    assert Mirrored(s, "ctr").value == 30
    # flash fault in the newest copy: the other still says 20
    newest = tmp_path / f"ctr{m.gen & 1}.cbor"
    newest.write_bytes(b"\xff")
    again = Mirrored(s, "ctr")
    assert again.value == 20
    again.write(40)  # overwrites the broken one
    assert Mirrored(s, "ctr").value == 40


def test_makedirs_and_rmtree(tmp_path):
    s = Store(str(tmp_path))
    makedirs(s.fs, str(tmp_path / "a" / "b" / "c"))
    (tmp_path / "a" / "b" / "c" / "f").write_bytes(b"x")
    (tmp_path / "a" / "g").write_bytes(b"y")
    rmtree(s.fs, str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    rmtree(s.fs, str(tmp_path / "a"))  # missing is fine
