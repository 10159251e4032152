"""Firmware budgets: the compiled (.mpy) bundle per app and board, as
`kapok fw build` lays it out (image_sources + mpy-cross), and the airtime
of a battery gas meter at its default schedule, from datagrams built with
the real protocol code. Run: python benchmarks/firmware.py"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kapok.protocols import coap, cose, messages, senml
from kapok.protocols import coap_numbers as n
from kapok.tools.virtualboard import BOARDS, build_image

APPS = ("meter", "water_quality", "hub")
BUNDLE_GOAL = 150 * 1024
SEND_S = 3600  # firmware/runtime/config.py DEFAULTS
SAMPLE_S = 900


def bundle_size(app: str, board: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        image = build_image(Path(tmp) / "flash", board=board, app=app, compiled=True)
        return sum(p.stat().st_size for p in (image / "lib").rglob("*.mpy"))


def gas_meter_datagrams() -> tuple[int, int]:
    """(uplink bytes, reply bytes) of one hourly uplink: four samples."""
    seed = bytes(range(32))
    t0 = 1_790_000_000
    samples = [[("vol", 1234.56 + i * 0.1), ("bat", 3.6)] for i in range(SEND_S // SAMPLE_S)]
    records = [
        senml.record(name, value, t=t0 + i * SAMPLE_S)
        for i, s in enumerate(samples)
        for name, value in s
    ]
    payload = messages.build_uplink(1000, t0, records=records)
    body = cose.sign1(payload, seed, b"gm-0001")
    req = coap.Message(
        n.CON,
        n.POST,
        1,
        b"\x01\x02\x03\x04",
        [(n.URI_PATH, b"u"), (n.CONTENT_FORMAT, n.CF_COSE_SIGN1)],
        body,
    )
    reply = coap.ack_for(
        req, n.CHANGED, messages.build_reply(1000, t0 + SEND_S), [(n.CONTENT_FORMAT, n.CF_CBOR)]
    )
    return len(req.encode()), len(reply.encode())


def main() -> None:
    table = Table(title="Firmware budgets")
    for col in ("measure", "value", "goal", "ok"):
        table.add_column(col)
    for board in BOARDS:
        for app in APPS:
            size = bundle_size(app, board)
            table.add_row(
                f".mpy bundle {app} / {board}",
                f"{size / 1024:.1f} KB",
                "< 150 KB",
                "yes" if size < BUNDLE_GOAL else "NO",
            )
    up, reply = gas_meter_datagrams()
    per_day = 86400 // SEND_S
    table.add_row("gas meter uplinks per day", str(per_day), f"send_s {SEND_S}", "")
    table.add_row("uplink + 2.04 reply (UDP payload)", f"{up} + {reply} B", "", "")
    table.add_row("bytes on air per day (CoAP)", f"{per_day * (up + reply)} B", "", "")
    Console().print(table)


if __name__ == "__main__":
    main()
