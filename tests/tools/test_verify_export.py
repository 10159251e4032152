"""`kapok verify` on billing exports the cloud's own export code writes
(kapok.cloud.billing decides the values, kapok.cloud.crud.billing lays out
the rows), for the cases a month can hold: registers read at the boundary,
interpolated between two readings, a register rolling over, a replaced
meter, a missing end; in Chinese and English. Every genuine row verifies;
each kind of tampering fails the row it touched, and only that row."""

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kapok.cloud import billing
from kapok.cloud.crud import billing as export
from kapok.protocols import cose, ed25519, messages, senml
from tests.e2e.helpers import kapok

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 1, tzinfo=TZ).timestamp()
END = datetime(2026, 11, 1, tzinfo=TZ).timestamp()
SEEDS = {"gm-1": bytes(range(32)), "wm-1": bytes(range(1, 33)), "wm-2": bytes(range(2, 34))}
_seq = {}


def reading(device: str, t: float, value: float) -> billing.Point:
    """A register reading as the meter signed it, with its (seq, t, COSE)."""
    seq = _seq[device] = _seq.get(device, 0) + 1
    name = "vol"
    records = senml.pack([senml.record(name, value, t=int(t))], device)
    payload = messages.build_uplink(seq, int(t) + 60, records=records)
    return billing.Point(t, value, (seq, t, cose.sign1(payload, SEEDS[device], device.encode())))


def part_json(device: str, start: billing.Boundary, end: billing.Boundary, capacity: float):
    meter = export._Meter(device, "gas-meter", 1, None, None)
    return export._part_json(meter, billing.part(start, end, capacity=capacity))


def bill(lang: str = "en") -> bytes:
    cap = 100000.0
    w = 3600
    # gas: read exactly at both boundaries
    gas = part_json(
        "gm-1",
        billing.boundary(START, reading("gm-1", START, 1200.5), None, capacity=cap, window=w),
        billing.boundary(END, reading("gm-1", END - 600, 1290.25), None, capacity=cap, window=w),
        cap,
    )
    # water, meter 1: start interpolated between two readings; then replaced mid-month,
    # its register rolling over before it was removed
    start = billing.boundary(
        START,
        reading("wm-1", START - 5 * 3600, 99990.0),
        reading("wm-1", START + 7 * 3600, 99998.0),
        capacity=cap,
        window=w,
    )
    removed = START + 10 * 86400
    old = part_json(
        "wm-1",
        start,
        billing.boundary(
            removed, reading("wm-1", removed, 3.5), None, capacity=cap, window=w, final=True
        ),
        cap,
    )
    # water, meter 2: installed then; no reading near the end of the month yet
    new = part_json(
        "wm-2",
        billing.boundary(
            removed, None, reading("wm-2", removed + 60, 0.25), capacity=cap, window=w
        ),
        billing.boundary(END, reading("wm-2", END - 5 * 86400, 9.0), None, capacity=cap, window=w),
        cap,
    )
    rows = [
        {"month": "2026-10", "building": "1栋", "unit": "101", "unit_id": 1, "utility": "gas",
         "uom": "m3", "consumption": gas["consumption"], "status": gas["status"], "notes": [],
         "parts": [gas]},
        {"month": "2026-10", "building": "1栋", "unit": "101", "unit_id": 1, "utility": "water",
         "uom": "m3", "consumption": None, "status": "MISSING", "notes": ["replaced", "rollover"],
         "parts": [old, new]},
    ]  # fmt: skip
    return export.to_csv(export.export_rows(rows, lang=lang, timezone="Asia/Shanghai"))


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(
        "{" + ",".join(f'"{d}": "{ed25519.public_key(s).hex()}"' for d, s in SEEDS.items()) + "}"
    )
    return path


def test_every_genuine_row_verifies_in_both_languages(tmp_path, keys):
    for lang in ("en", "zh-CN"):
        path = tmp_path / f"bill-{lang}.csv"
        path.write_bytes(bill(lang))
        result = kapok("verify", path, "--keys", keys)
        assert "3 rows, 3 verified" in result.stdout, result.output


def rewrite(data: bytes, change) -> bytes:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    change(rows[0], rows[1:])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode()


def set_cell(row: int, column: str, value):
    def change(header, rows):
        rows[row][header.index(column)] = value(rows[row][header.index(column)])

    return change


@pytest.mark.parametrize(
    ("change", "row", "words"),
    [
        (set_cell(0, "Consumption", lambda v: f"{float(v) - 10:.3f}"), 2, "consumption is"),
        (set_cell(1, "Start register", lambda v: f"{float(v) + 0.5:.3f}"), 3, "start register"),
        (set_cell(1, "Start flag", lambda v: "ACTUAL"), 3, "flag ACTUAL does not fit"),
        (set_cell(1, "End reading seq", lambda v: str(int(v) + 1)), 3, "says seq"),
        (set_cell(2, "Start reading time", lambda v: v.replace(":01:", ":02:")), 4, "no vol"),
        (set_cell(2, "Start reading COSE (hex)", lambda v: v[:-2] + "00"), 4, "NOT verify"),
        (set_cell(0, "Meter", lambda v: "wm-1"), 2, "a message of gm-1"),
    ],
)
def test_a_tampered_row_fails_alone(tmp_path, keys, change, row, words):
    path = tmp_path / "bill.csv"
    path.write_bytes(rewrite(bill(), change))
    result = kapok("verify", "--export", path, "--keys", keys, ok=False)
    assert result.exit_code == 1, result.output
    failing = [line for line in result.stdout.splitlines() if "FAILS" in line]
    assert len(failing) == 1 and failing[0].startswith(f"row {row} "), result.stdout
    assert words in failing[0], failing[0]


def test_a_unit_total_must_be_the_sum_of_its_meters(tmp_path, keys):
    def change(header, rows):
        rows[0][header.index("Unit total")] = "1.000"

    path = tmp_path / "bill.csv"
    path.write_bytes(rewrite(bill(), change))
    result = kapok("verify", path, "--keys", keys, ok=False)
    assert result.exit_code == 1 and "row 2 (gm-1): FAILS: unit total" in result.stdout


def test_missing_keys_and_foreign_files_are_usage_errors(tmp_path, keys):
    path = tmp_path / "bill.csv"
    path.write_bytes(bill())
    no_keys = kapok("verify", path, ok=False)
    assert no_keys.exit_code == 2 and "--keys" in no_keys.stderr
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert kapok("verify", other, "--keys", keys, ok=False).exit_code == 2
    unknown = tmp_path / "empty.json"
    unknown.write_text("{}")
    result = kapok("verify", path, "--keys", unknown, ok=False)
    assert result.exit_code == 1 and result.stdout.count("no public key") == 3
