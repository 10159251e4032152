"""Benchmark of the cloud service: ingest throughput and dashboard queries,
SQLite against PostgreSQL.

Run:  .venv/bin/python benchmarks/cloud.py [--quick] [--meters N] [--days D]
                                           [--postgres URL]

Without --postgres it starts a throwaway PostgreSQL server (Debian's
binaries, fsync on, as in production) in a temp dir. Prints two tables:

1. Ingest, per worker (one process, one thread, batches of 100 messages of
   3 readings, as a gateway sends them): messages and readings per second
   through `crud.ingest.ingest` (CBOR parse, Ed25519 verify against the
   registered key, dedup, store, seq tracking, alarms) on SQLite (WAL,
   synchronous=FULL) and on PostgreSQL, each against its ceiling in the same
   run: the same Ed25519 verifications plus a bulk insert of the same rows
   and nothing else.
2. Dashboard queries through the HTTP API (routing, auth, JSON included):
   p50 / p95 of a device's month of readings, a community's monthly bill
   and the alarm list, over N meters × D days of 15-minute readings
   generated in the database. The goal is p95 < 200 ms. The issue's full
   size is `--meters 1000 --days 365` (35 million readings; allow some
   minutes and ~15 GB of disk for PostgreSQL).
"""

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from kapok.cloud.bootstrap import prepare  # noqa: E402
from kapok.cloud.core.config import Settings  # noqa: E402
from kapok.cloud.core.db import make_engine, normalize_url, session_factory, session_scope  # noqa: E402
from kapok.cloud.crud import devices as devices_crud  # noqa: E402
from kapok.cloud.crud import gateways, ingest, places  # noqa: E402
from kapok.cloud.keys import KeyStore  # noqa: E402
from kapok.cloud.main import create_app  # noqa: E402
from kapok.cloud.models import Message, Reading  # noqa: E402
from kapok.protocols import cose, ed25519, messages, senml  # noqa: E402
from tests.cloud.pg import PostgresServer  # noqa: E402

T0 = 1767196800  # 2026-01-01 00:00 +08:00 (Asia/Shanghai)
PASSWORD = "benchmark-admin"
BATCH = 100


def seed(device_id: str) -> bytes:
    return hashlib.sha256(device_id.encode()).digest()


class Postgres:
    """Databases on a server we were given or started."""

    def __init__(self, url: str | None):
        self.server = None
        if url is None:
            self.server = PostgresServer(durable=True)
            url = self.server.start()
        self.url = normalize_url(url)
        self.admin = make_engine(self.url, isolation_level="AUTOCOMMIT")
        self.count = 0

    def database(self) -> str:
        self.count += 1
        name = f"kapok_bench_{os.getpid()}_{self.count}"
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url.rsplit("/", 1)[0] + "/" + name

    def close(self):
        self.admin.dispose()
        if self.server:
            self.server.stop()


def fresh_settings(url: str, data_dir: Path) -> Settings:
    settings = Settings(
        data_dir=data_dir,
        db=url,
        admin_password=PASSWORD,
        background_checks=False,
        scrypt_n=1024,
    )
    prepare(settings, now=T0)
    return settings


# ------------------------------------------------------------------ ingest


def ingest_setup(settings: Settings, devices: int):
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    with session_scope(sessions) as s:
        community = places.create_community(s, name="bench", timezone="Asia/Shanghai", now=T0)
        gateway, _ = gateways.create_gateway(s, community=community, name="gw", now=T0)
        for i in range(devices):
            device_id = f"gm-{i:05d}"
            devices_crud.create_device(
                s,
                device_id=device_id,
                kind="gas-meter",
                gateway=gateway,
                now=T0,
                public_key=ed25519.public_key(seed(device_id)),
            )
    return engine, sessions, gateway


def signed_batches(devices: int, batches: int) -> list[list[tuple[int, bytes]]]:
    out, seq = [], {}
    for b in range(batches):
        items = []
        for j in range(BATCH):
            device_id = f"gm-{(b * BATCH + j) % devices:05d}"
            n = seq[device_id] = seq.get(device_id, 0) + 1
            t = T0 + n * 900
            payload = messages.build_uplink(n, t, compact=senml.compact(1, [n * 0.125, 3.3, -100]))
            items.append((t + 2, cose.sign1(payload, seed(device_id), device_id.encode())))
        out.append(items)
    return out


def run_ingest(settings, batches, devices):
    engine, sessions, gateway = ingest_setup(settings, devices)
    keys = KeyStore(settings.data_dir / "keys")
    bodies = [messages.build_batch(os.urandom(16), [list(i) for i in items]) for items in batches]
    start = time.perf_counter()
    for body in bodies:
        with session_scope(sessions) as s:
            reply = ingest.ingest(s, gateway=s.merge(gateway), body=body, keys=keys, now=T0)
        assert messages.parse_batch_reply(reply)["accepted"] == BATCH
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def run_ceiling(settings, batches, devices):
    """Verify every signature and bulk-insert the same rows: no batch
    format, no dedup, no seq tracking, no alarms, no commands."""
    engine, sessions, gateway = ingest_setup(settings, devices)
    keys = {f"gm-{i:05d}": ed25519.public_key(seed(f"gm-{i:05d}")) for i in range(devices)}
    start = time.perf_counter()
    for items in batches:
        with session_scope(sessions) as s:
            rows = []
            for rx, msg in items:
                device_id = cose.kid(msg).decode()
                up = messages.parse_uplink(cose.verify1(msg, keys[device_id]), device_id)
                rows.append((rx, msg, device_id, up))
            ids = s.scalars(
                insert(Message).returning(Message.id, sort_by_parameter_order=True),
                [
                    {
                        "device_id": d,
                        "seq": up["seq"],
                        "t": up["t"],
                        "rx_time": rx,
                        "gateway_id": gateway.id,
                        "cose": msg,
                    }
                    for rx, msg, d, up in rows
                ],
            ).all()
            s.execute(
                insert(Reading),
                [
                    {
                        "message_id": message_id,
                        "device_id": d,
                        "seq": up["seq"],
                        "name": r["n"],
                        "unit": r["u"],
                        "value": r["v"],
                        "t": r["t"],
                        "time_source": r["time_source"],
                    }
                    for message_id, (_, _, d, up) in zip(ids, rows, strict=True)
                    for r in up["readings"]
                ],
            )
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def ingest_table(pg: Postgres, work: Path, quick: bool) -> Table:
    devices, n_batches = (50, 10) if quick else (200, 40)
    batches = signed_batches(devices, n_batches)
    msgs = n_batches * BATCH
    table = Table(title=f"Ingest per worker: {n_batches} batches × {BATCH} messages × 3 readings")
    for col in ("database", "messages/s", "readings/s", "ceiling msg/s", "of ceiling"):
        table.add_column(col, justify="right" if col != "database" else "left")
    results = {}
    for name in ("SQLite", "PostgreSQL"):
        runs = []
        for fn in (run_ingest, run_ceiling):
            url = (
                f"sqlite:///{work / f'{name}-{fn.__name__}.db'}"
                if name == "SQLite"
                else pg.database()
            )
            data = work / f"data-{name}-{fn.__name__}"
            runs.append(fn(fresh_settings(url, data), batches, devices))
        ours, ceiling = msgs / runs[0], msgs / runs[1]
        results[name] = ours
        table.add_row(
            name, f"{ours:,.0f}", f"{ours * 3:,.0f}", f"{ceiling:,.0f}", f"{ours / ceiling:.0%}"
        )
    table.caption = f"PostgreSQL / SQLite: {results['PostgreSQL'] / results['SQLite']:.2f}×"
    return table


# ------------------------------------------------------------------ queries


def generate(url: str, meters: int, days: int, backend: str) -> tuple[int, int]:
    """A community of `meters` gas meters (one per unit, 20 buildings) with a
    reading every 15 minutes for `days` days, and some alarms. Returns
    (community id, rows of readings)."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    per_meter = days * 96
    with session_scope(sessions) as s:
        community = places.create_community(s, name="bench", timezone="Asia/Shanghai", now=T0)
        gateway, _ = gateways.create_gateway(
            s, community=community, name="gw", now=T0, gateway_id="gw-bench"
        )
        buildings = [
            places.create_building(s, community=community, name=f"{b + 1}栋", now=T0)
            for b in range(20)
        ]
        units = [
            places.create_unit(s, building=buildings[i % 20], name=f"{i:04d}", now=T0)
            for i in range(meters)
        ]
        for i, unit in enumerate(units):
            devices_crud.create_device(
                s,
                device_id=f"bm-{i:05d}",
                kind="gas-meter",
                gateway=gateway,
                now=T0,
                public_key=ed25519.public_key(seed(f"bm-{i:05d}")),
                unit=unit,
                installed_at=T0 - 86400,
            )
        community_id = community.id
    blob = bytes(114)  # stands in for a Sign1 reading's COSE bytes
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(
                text(
                    """
                INSERT INTO messages (id, device_id, seq, t, rx_time, gateway_id, cose)
                SELECT d * :n + s, 'bm-' || lpad(d::text, 5, '0'), s, :t0 + s * 900,
                       :t0 + s * 900 + 2, 'gw-bench', :blob
                FROM generate_series(0, :m - 1) d, generate_series(1, :n) s"""
                ),
                {"n": per_meter, "m": meters, "t0": T0, "blob": blob},
            )
            conn.execute(
                text(
                    """
                INSERT INTO readings (id, message_id, device_id, seq, name, unit, value, t,
                                      time_source)
                SELECT id, id, device_id, seq, 'vol', 'm3', seq * 0.01, t, 'message'
                FROM messages"""
                )
            )
            for table in ("messages", "readings"):
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                conn.execute(text(f"SELECT setval({sequence}, max(id)) FROM {table}"))
            conn.execute(text("ANALYZE"))
        else:
            raw = conn.connection.driver_connection
            cur = raw.cursor()
            for d in range(meters):
                device_id = f"bm-{d:05d}"
                base = d * per_meter
                cur.executemany(
                    "INSERT INTO messages (id, device_id, seq, t, rx_time, gateway_id, cose) "
                    "VALUES (?, ?, ?, ?, ?, 'gw-bench', ?)",
                    [
                        (base + s, device_id, s, T0 + s * 900, T0 + s * 900 + 2, blob)
                        for s in range(1, per_meter + 1)
                    ],
                )
                cur.executemany(
                    "INSERT INTO readings (id, message_id, device_id, seq, name, unit, value, t, "
                    "time_source) VALUES (?, ?, ?, ?, 'vol', 'm3', ?, ?, 'message')",
                    [
                        (base + s, base + s, device_id, s, s * 0.01, T0 + s * 900)
                        for s in range(1, per_meter + 1)
                    ],
                )
            cur.execute("ANALYZE")
        # a year's worth of alarms: most resolved, some open
        conn.execute(
            text(
                "INSERT INTO alarms (device_id, community_id, code, severity, state, value, count, "
                "opened_at, last_at, escalation_level) VALUES (:d, :c, :code, 'minor', :state, "
                "'null', 1, :t, :t, 0)"
            ),
            [
                {
                    "d": f"bm-{i % meters:05d}",
                    "c": community_id,
                    "code": "battery.low" if i % 7 else "tamper",
                    "state": "open" if i >= 4950 else "resolved",
                    "t": T0 + i * 600,
                }
                for i in range(5000)
            ],
        )
    engine.dispose()
    return community_id, meters * per_meter


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95


def time_queries(settings: Settings, community: int, meters: int, days: int, runs: int):
    app = create_app(settings)
    months = days // 31
    month = "2026-01" if months >= 1 else None
    with TestClient(app) as client:
        r = client.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

        def timed(url, **params):
            start = time.perf_counter()
            r = client.get(url, params=params, headers=headers)
            elapsed = time.perf_counter() - start
            assert r.status_code == 200, r.text
            return elapsed * 1000, r

        device_month, bill, alarm_list = [], [], []
        for i in range(runs):
            device = f"bm-{(i * 7919) % meters:05d}"
            ms, r = timed(
                f"/api/v1/devices/{device}/readings", n="vol", **{"from": T0, "to": T0 + 31 * 86400}
            )
            device_month.append(ms)
            rows_per_month = len(r.json())
            if month:
                ms, r = timed("/api/v1/billing", community=community, month=month, utility="gas")
                bill.append(ms)
                assert len(r.json()) == meters
            ms, _ = timed("/api/v1/alarms", community=community, active="true")
            alarm_list.append(ms)
    return {
        f"device month ({rows_per_month} readings)": percentiles(device_month),
        f"monthly bill ({meters} meters)": percentiles(bill) if bill else None,
        "active alarms of a community": percentiles(alarm_list),
    }


def query_table(
    pg: Postgres, work: Path, meters: int, days: int, runs: int, backends: list[str]
) -> Table:
    table = Table(
        title=f"Dashboard queries through the API: {meters} meters × {days} days of "
        f"15-minute readings, {runs} runs each (ms)"
    )
    for col in ("query", "database", "rows", "p50", "p95", "goal p95 < 200"):
        table.add_column(col, justify="left" if col in ("query", "database") else "right")
    for backend in backends:
        url = pg.database() if backend == "postgresql" else f"sqlite:///{work / 'queries.db'}"
        settings = fresh_settings(url, work / f"data-q-{backend}")
        started = time.perf_counter()
        community, rows = generate(settings.database_url, meters, days, backend)
        generated = time.perf_counter() - started
        results = time_queries(settings, community, meters, days, runs)
        for query, result in results.items():
            if result is None:
                continue
            p50, p95 = result
            table.add_row(
                query,
                f"{'PostgreSQL' if backend == 'postgresql' else 'SQLite'}",
                f"{rows:,}",
                f"{p50:.1f}",
                f"{p95:.1f}",
                "yes" if p95 < 200 else "NO",
            )
        table.caption = (table.caption or "") + f"{backend}: data generated in {generated:.0f} s. "
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--meters", type=int, default=None)
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument(
        "--postgres", default=None, help="URL of a server to use (a role that may create databases)"
    )
    parser.add_argument(
        "--queries-on",
        default="postgresql,sqlite",
        help="databases for table 2 (comma-separated; the full year is for postgresql)",
    )
    parser.add_argument("--no-ingest", action="store_true", help="skip table 1")
    args = parser.parse_args()
    meters = args.meters or (100 if args.quick else 1000)
    days = args.days or (31 if args.quick else 62)
    runs = args.runs or (10 if args.quick else 40)

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="kapok-bench-"))
    pg = Postgres(args.postgres)
    try:
        if not args.no_ingest:
            console.print(ingest_table(pg, work, args.quick))
        backends = [b.strip() for b in args.queries_on.split(",") if b.strip()]
        console.print(query_table(pg, work, meters, days, runs, backends))
    finally:
        pg.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
