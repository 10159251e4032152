"""`kapok verify` on the cloud's billing export: meters simulated by `kapok
sim` (each signing its own readings: two months of history through ingest,
then live uplinks through the agent), last month's bill exported as CSV and
XLSX by the cloud, every row re-verified against the meters' public keys;
a row whose consumption or register was altered fails, even though its
COSE is intact, and so does a row whose signed message was altered."""

import csv
import io
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kapok.protocols import ed25519

from .helpers import kapok

SHANGHAI = ZoneInfo("Asia/Shanghai")


def last_month() -> str:
    first = datetime.now(SHANGHAI).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


@pytest.fixture(scope="module")
def billed(stack, tmp_path_factory):
    """Six simulated meters with history; their public keys in a file."""
    folder = tmp_path_factory.mktemp("billing")
    kapok(
        "sim", "--gateway", f"127.0.0.1:{stack.coap_port}", "--gas", "3", "--water", "2",
        "--electricity", "1", "--interval", "5", "--duration", "6", "--state", folder / "sim",
        "--provision", "--cloud", stack.url, "--gateway-id", stack.gateway,
        "--token", stack.admin.token, "--history-days", "65",
        "--gateway-token", stack.gateway_token,
    )  # fmt: skip
    state = json.loads((folder / "sim" / "sim.json").read_text())
    keys = {
        device: ed25519.public_key(bytes.fromhex(rec["seed"])).hex()
        for device, rec in state["nodes"].items()
    }
    (folder / "keys.json").write_text(json.dumps(keys))
    return folder


def export(stack, folder, fmt: str, lang: str):
    response = stack.admin.request(
        "GET",
        "/api/v1/billing/export",
        params={"community": stack.community, "month": last_month(), "format": fmt, "lang": lang},
    )
    path = folder / f"bill-{lang}.{fmt}"
    path.write_bytes(response.content)
    return path


def test_a_genuine_export_verifies_row_by_row(stack, billed):
    path = export(stack, billed, "csv", "en")
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    header = rows[0]
    assert len(rows) == 1 + 6  # one row per meter
    status = header.index("Status")
    assert {r[status] for r in rows[1:]} == {"ACTUAL"}  # readings at both month boundaries
    result = kapok("verify", path, "--keys", billed / "keys.json")
    assert "6 rows, 6 verified" in result.stdout

    xlsx = export(stack, billed, "xlsx", "zh-CN")  # Chinese headers, numbers as numbers
    result = kapok("verify", "--export", xlsx, "--cloud", stack.url, "--token", stack.admin.token)
    assert "6 rows, 6 verified" in result.stdout


def _tampered(path, out, change):
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    change(rows[0], rows[1:])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    out.write_bytes(("\ufeff" + buf.getvalue()).encode("utf-8"))
    return out


def test_an_altered_consumption_register_or_message_fails_its_row(stack, billed):
    path = export(stack, billed, "csv", "en")

    def more_gas(header, rows):  # the bill says more than the meter measured
        i = header.index("Consumption")
        rows[0][i] = f"{float(rows[0][i]) + 1.5:.3f}"
        rows[0][header.index("Unit total")] = rows[0][i]

    def lower_start(header, rows):
        i = header.index("Start register")
        rows[2][i] = f"{float(rows[2][i]) - 3:.3f}"

    def other_reading(header, rows):  # a valid signature of another message
        i = header.index("End reading COSE (hex)")
        rows[3][i] = rows[4][i]

    def broken_signature(header, rows):
        i = header.index("End reading COSE (hex)")
        cose = bytearray.fromhex(rows[1][i])
        cose[-1] ^= 0x01
        rows[1][i] = cose.hex()

    for change, row, words in (
        (more_gas, 2, "consumption is"),
        (lower_start, 4, "start register is"),
        (other_reading, 5, "a message of wm-0002, not gm-0002"),
        (broken_signature, 3, "does NOT verify"),
    ):
        bad = _tampered(path, billed / f"{change.__name__}.csv", change)
        result = kapok("verify", bad, "--keys", billed / "keys.json", ok=False)
        assert result.exit_code == 1, result.output
        lines = [line for line in result.stdout.splitlines() if "FAILS" in line]
        assert len(lines) == 1, result.stdout
        assert lines[0].startswith(f"row {row} ") and words in lines[0], lines[0]
        assert "6 rows, 5 verified" in result.stderr and "1 FAIL" in result.stderr
