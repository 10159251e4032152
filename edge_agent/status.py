"""`kapok agent status`: what an operator asks first, read from the data
directory without disturbing a running agent (SQLite opened read-only)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from .agent import FIRMWARE_DIR, REGISTRY_FILE
from .store import DB_NAME


class StatusError(Exception):
    pass


def read_status(data_dir: Path, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    db = data_dir / DB_NAME
    if not db.exists():
        raise StatusError(f"no agent queue in {data_dir} (looked for {DB_NAME})")
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        unsent, unsent_bytes, oldest = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(rx) FROM uplinks WHERE done IS NULL"
        ).fetchone()
        in_batches = conn.execute(
            "SELECT COUNT(*) FROM uplinks WHERE done IS NULL AND batch IS NOT NULL"
        ).fetchone()[0]
        forwarded = conn.execute("SELECT COUNT(*) FROM uplinks WHERE done IS NOT NULL").fetchone()[
            0
        ]
        rejects = [
            {"reason": reason, "count": count, "last": last}
            for reason, count, last in conn.execute(
                "SELECT reason, COUNT(*), MAX(at) FROM rejects GROUP BY reason "
                "ORDER BY COUNT(*) DESC, reason"
            )
        ]
        commands = dict(conn.execute("SELECT state, COUNT(*) FROM commands GROUP BY state"))
        reports = conn.execute("SELECT COUNT(*) FROM reports").fetchone()[0]
        devices = conn.execute("SELECT COUNT(*) FROM devices").fetchone()[0]
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()
    contact = int(meta["last_cloud_contact"]) if "last_cloud_contact" in meta else None
    registry = {"version": None, "devices": None, "saved": None}
    path = data_dir / REGISTRY_FILE
    if path.exists():
        try:
            doc = json.loads(path.read_bytes())
            registry = {
                "version": doc.get("version"),
                "devices": len(doc.get("devices") or ()),
                # None: the document has none, the agent runs the defaults
                "rules": None if doc.get("rules") is None else len(doc["rules"]),
                "saved": int(path.stat().st_mtime),
            }
        except (ValueError, OSError):
            registry["error"] = "unreadable"
    fw_dir = data_dir / FIRMWARE_DIR
    return {
        "queue": {
            "depth": unsent,
            "bytes": unsent_bytes,
            "oldest_unsent": oldest,
            "oldest_unsent_age": None if oldest is None else max(0, int(now - oldest)),
            "in_flight_batches_rows": in_batches,
            "forwarded_kept": forwarded,
        },
        "cloud": {
            "last_contact": contact,
            "last_contact_age": None if contact is None else max(0, int(now - contact)),
        },
        "rejects": rejects,
        "commands": commands,
        "reports_pending": reports,
        "devices_seen": devices,
        "registry": registry,
        "firmware_bundles": len(list(fw_dir.iterdir())) if fw_dir.is_dir() else 0,
        "gateway_public_key": meta.get("gateway_public_key"),
    }


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds} s ago"


def render(status: dict, console) -> None:
    from rich.table import Table

    q, c, r = status["queue"], status["cloud"], status["registry"]
    table = Table(title="Kapok gateway agent", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("queue depth", f"{q['depth']} readings ({q['bytes']} bytes)")
    oldest = q["oldest_unsent_age"]
    table.add_row("oldest unsent", "none" if oldest is None else _age(oldest))
    table.add_row("in batches being sent", str(q["in_flight_batches_rows"]))
    table.add_row("last cloud contact", _age(c["last_contact_age"]))
    reg = "none yet (default safety rules)"
    if r.get("version") is not None:
        rules = "default" if r.get("rules") is None else str(r["rules"])
        reg = f"version {r['version']}, {r['devices']} devices, {rules} safety rules"
    table.add_row("registry", reg)
    table.add_row("devices seen", str(status["devices_seen"]))
    commands = ", ".join(f"{k} {v}" for k, v in sorted(status["commands"].items())) or "none"
    table.add_row("commands", commands)
    table.add_row("reports for the cloud", str(status["reports_pending"]))
    table.add_row("firmware bundles", str(status["firmware_bundles"]))
    table.add_row("gateway public key", status["gateway_public_key"] or "-")
    console.print(table)
    rejects = Table(title="Rejected by the cloud (kept for you)")
    rejects.add_column("reason")
    rejects.add_column("count", justify="right")
    rejects.add_column("last")
    for row in status["rejects"]:
        last = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["last"]))
        rejects.add_row(row["reason"], str(row["count"]), last)
    if not status["rejects"]:
        rejects.add_row("none", "0", "-")
    console.print(rejects)
