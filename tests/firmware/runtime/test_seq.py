"""seq never repeats, across reboots and power cuts, without a flash write
per message; command ids are kept per authority."""

import contextlib

import pytest
from runtime.seq import BLOCK, CommandIds, SeqCounter
from runtime.store import Store

from tests.firmware.runtime.fakes import PowerCut, PowerCutFs


def test_blocks_are_reserved_before_use_and_skipped_at_reboot(tmp_path):
    writes = []
    s = Store(str(tmp_path), lambda: writes.append(1))
    c = SeqCounter(s)
    # block [0, 64) reserved at boot (both copies, the first time)
    assert c.boot_start == 0 and len(writes) == 2
    got = [c.next() for _ in range(BLOCK)]
    assert got == list(range(BLOCK)) and len(writes) == 2  # no write per message
    assert c.next() == BLOCK and len(writes) == 3  # the next block: one write
    again = SeqCounter(Store(str(tmp_path)))  # reboot
    assert again.boot_start == 2 * BLOCK
    assert again.next() == 2 * BLOCK


def test_floor_from_an_inflight_message(tmp_path):
    c = SeqCounter(Store(str(tmp_path)), at_least=500)
    assert c.next() == 500


def test_power_cut_anywhere_never_repeats_a_seq(tmp_path):
    used = set()
    d = str(tmp_path)
    for k in range(60):
        fs = PowerCutFs(cut_at=k % 7)
        try:
            c = SeqCounter(Store(d, fs=fs), block=4)
            for _ in range(k % 11):
                v = c.next()
                assert v not in used
                used.add(v)
        except PowerCut:
            pass
    assert len(used) > 50


def test_one_lost_copy_does_not_send_seq_back(tmp_path):
    c = SeqCounter(Store(str(tmp_path)), block=8)
    for _ in range(20):
        c.next()
    top = c.next()
    for f in tmp_path.glob("seq*.cbor"):
        data = f.read_bytes()
        f.write_bytes(b"\xff")
        assert SeqCounter(Store(str(tmp_path))).next() > top
        f.write_bytes(data)


def test_command_ids_per_authority_survive_reboot(tmp_path):
    ids = CommandIds(Store(str(tmp_path)))
    assert ids.last("cloud") == -1
    ids.set("cloud", 14)
    ids.set("gw-3", 1767225600123)
    again = CommandIds(Store(str(tmp_path)))
    assert again.last("cloud") == 14
    assert again.last("gw-3") == 1767225600123
    assert again.last("gw-9") == -1


@pytest.mark.parametrize("k", range(8))
def test_command_id_write_is_all_or_nothing(tmp_path, k):
    CommandIds(Store(str(tmp_path))).set("cloud", 5)
    with contextlib.suppress(PowerCut):
        CommandIds(Store(str(tmp_path), fs=PowerCutFs(cut_at=k))).set("cloud", 6)
    assert CommandIds(Store(str(tmp_path))).last("cloud") in (5, 6)


def test_one_lost_copy_does_not_allow_a_replay(tmp_path):
    ids = CommandIds(Store(str(tmp_path)))
    for i in range(1, 6):
        ids.set("cloud", i)
    for f in tmp_path.glob("cmdids*.cbor"):
        data = f.read_bytes()
        f.write_bytes(b"\xff")
        assert CommandIds(Store(str(tmp_path))).last("cloud") == 5
        f.write_bytes(data)
