"""The durable queue: one SQLite file (WAL, synchronous=FULL) in the data dir.

One thread owns the connection; everything that touches the file runs there,
one job at a time, so the event loop never waits on an fsync. Uplinks are
committed in groups: handlers hand their record to `commit_uplink()` and
wait; the writer task takes every record pending at that moment, commits
them in ONE transaction (one fsync), then wakes all their handlers — so
concurrent nodes share the cost of durability and a 2.04 is never sent
before its row is on disk.

Tables: uplinks (the node's COSE bytes until the cloud has them — and, with
MQTT on, until the MQTT bridge has published them: `hold_after` — then only
seq and reply, kept `reply_retention` for late retransmissions), batches (a
batch id and its rows, written before the batch is sent, so a retry after a
crash reuses the id), rejects (what the cloud refused, with its reason, for
the operator), devices (replay window and last source address), commands,
reports (what the cloud must still be told), meta.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import json
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

from .models import OPEN_STATES, ROW_OVERHEAD, Command, UplinkRecord
from .replay import ReplayWindow

log = logging.getLogger(__name__)

DB_NAME = "queue.sqlite3"
PRUNE_CHUNK = 2000
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE uplinks (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    rx INTEGER NOT NULL,        -- gateway receive time, Unix seconds
    cose BLOB,                  -- the node's bytes; NULL once the cloud has them
    size INTEGER NOT NULL,      -- bytes counted against the queue quota
    reply BLOB NOT NULL,        -- the 2.04 body, sent again for a repeated seq
    batch INTEGER,              -- batches.id while being forwarded
    done INTEGER,               -- when the cloud accepted or rejected it
    UNIQUE (device, seq)
);
CREATE INDEX uplinks_unsent ON uplinks (id) WHERE done IS NULL;
CREATE INDEX uplinks_done ON uplinks (done) WHERE done IS NOT NULL;
CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    batch_id BLOB NOT NULL UNIQUE,
    created INTEGER NOT NULL
);
CREATE TABLE rejects (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    rx INTEGER NOT NULL,
    cose BLOB NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    high INTEGER NOT NULL,
    window BLOB NOT NULL,
    addr TEXT,
    last_rx INTEGER
);
CREATE TABLE commands (
    id INTEGER PRIMARY KEY,
    cloud_id INTEGER UNIQUE,    -- NULL for commands the gateway signed itself
    device TEXT NOT NULL,
    cmd_id INTEGER NOT NULL,
    op TEXT NOT NULL,
    not_after INTEGER NOT NULL,
    cose BLOB NOT NULL,
    event TEXT,
    state TEXT NOT NULL,
    carried_seq INTEGER,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX commands_open ON commands (device) WHERE state IN ('pending', 'carried');
CREATE TABLE reports (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(Exception):
    """The store cannot take the write (the uplink gets 5.03)."""


class StoreFull(StoreError):
    """The disk or the quota is full."""


def _classify(error: BaseException) -> StoreError:
    if isinstance(error, StoreError):
        return error
    if isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorcode", None) == 13:
        return StoreFull(f"disk full: {error}")  # SQLITE_FULL
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFull(f"disk full: {error}")
    return StoreError(f"{type(error).__name__}: {error}")


def connect(path: Path, *, max_page_count: int | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the queue database with the pragmas an ACK
    depends on."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    if max_page_count:
        conn.execute(f"PRAGMA max_page_count={int(max_page_count)}")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        # one transaction: a crash leaves no half-made schema
        conn.executescript(
            f"BEGIN IMMEDIATE; {SCHEMA}; PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
        )
    elif version != SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version}, this agent knows {SCHEMA_VERSION}")
    return conn


# group commit: a commit waits up to GROUP_LINGER seconds for more uplinks
# unless GROUP_TARGET are already waiting
GROUP_LINGER = 0.001
GROUP_TARGET = 32


class Store:
    def __init__(
        self,
        data_dir: Path,
        *,
        max_queue_bytes: int,
        min_free_bytes: int = 0,
        replay_window: int = 1024,
        max_page_count: int | None = None,
    ):
        self.path = data_dir / DB_NAME
        self.max_queue_bytes = max_queue_bytes
        self.min_free_bytes = min_free_bytes
        self.disk_free: int | None = None
        self.free_pages_bytes = 0  # SQLite's free list: room for new rows in the file
        self.space_wanted = asyncio.Event()
        self._disk_checked = -1.0
        self.replay_window = replay_window
        self.max_page_count = max_page_count
        self._db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kapok-db")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[UplinkRecord, asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._writer_task: asyncio.Task | None = None
        self._closing = False
        # in-memory mirrors, changed only after a commit succeeded
        self.windows: dict[str, ReplayWindow] = {}
        self.addresses: dict[str, str] = {}
        self.queue_bytes = 0  # committed, not yet forwarded (plus rejects kept)
        self.unsent = 0
        self.oldest_unsent: int | None = None
        self._reserved = 0  # bytes of uplinks on their way to the disk
        self._in_flight = 0
        self.on_commit = None  # callable(records) after a successful group
        # Rows above this id keep their COSE bytes when the cloud takes them:
        # a downstream reader (the MQTT bridge, edge_agent/mqtt) has not read
        # them yet and releases them itself. None: nobody else reads them.
        # Held bytes are not counted against the quota; they go with the
        # normal prune (or the urgent one when the disk runs low), so a
        # reader that is behind never makes the gateway refuse an uplink.
        self.hold_after: int | None = None

    # -- plumbing

    async def run(self, fn, *args):
        """Run fn(connection, *args) on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._db, self._call, fn, args)

    def _call(self, fn, args):
        conn = self._conn
        try:
            return fn(conn, *args)
        except BaseException:
            if conn is not None and conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback failed")
            raise

    async def open(self) -> None:
        loop = asyncio.get_running_loop()

        def opener(_conn):
            self._conn = connect(self.path, max_page_count=self.max_page_count)
            return _load_state(self._conn)

        state = await loop.run_in_executor(self._db, self._call, opener, ())
        for device, high, window, addr in state["devices"]:
            self.windows[device] = ReplayWindow.from_bytes(self.replay_window, high, window)
            if addr:
                self.addresses[device] = addr
        self.queue_bytes = state["queue_bytes"]
        self.unsent = state["unsent"]
        self.oldest_unsent = state["oldest"]
        self.free_pages_bytes = await self.run(_free_pages_bytes)
        free = self.check_disk()
        if free < self.max_queue_bytes - self.queue_bytes + self.min_free_bytes:
            log.warning(
                "the disk is smaller than the queue quota: it will refuse uplinks (5.03) "
                "when the disk runs low, before the quota",
                extra={"free": free, "max_queue_bytes": self.max_queue_bytes},
            )
        self._wake = asyncio.Event()
        self._writer_task = loop.create_task(self._writer(), name="kapok-store-writer")

    async def close(self) -> None:
        """Commit what is pending, then close the file."""
        self._closing = True
        if self._writer_task is not None:
            self._wake.set()
            await self._writer_task
        if self._conn is not None:
            await self.run(lambda conn: conn.close())
            self._conn = None
        self._db.shutdown(wait=True)

    # -- uplinks

    def check_disk(self, max_age: float = 1.0) -> int:
        """Free bytes on the data directory's filesystem (checked at most
        once per `max_age` seconds)."""
        now = time.monotonic()
        if self.disk_free is None or now - self._disk_checked >= max_age:
            self.disk_free = shutil.disk_usage(self.path.parent).free
            self._disk_checked = now
        return self.disk_free

    @property
    def in_flight(self) -> int:
        """Uplinks handed to commit_uplink() and not yet answered."""
        return self._in_flight

    async def commit_uplink(self, record: UplinkRecord, *, alarm: bool = False) -> bool:
        """Durably store `record`; True when new, False when (device, seq) was
        already stored. StoreFull when the quota or the disk is full,
        StoreError when the disk refused otherwise. An `alarm` (an uplink
        that set off a safety rule) is not held to the quota, only to the
        disk: its fail-safe commands ride on the reply."""
        if self._closing:
            raise StoreError("shutting down")
        size = record.size
        if not alarm:
            if self.queue_bytes + self._reserved + size > self.max_queue_bytes:
                raise StoreFull(f"queue quota of {self.max_queue_bytes} bytes reached")
            if self.check_disk() + self.free_pages_bytes < self.min_free_bytes:
                self.space_wanted.set()  # prune forwarded rows now, not in a day
                raise StoreFull(f"disk nearly full ({self.disk_free} bytes free)")
        self._reserved += size
        self._in_flight += 1
        future = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        self._wake.set()
        return await future

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._pending) < GROUP_TARGET and not self._closing:
                # let the uplinks already in the socket buffer join this
                # commit: one fsync for many (they are answered after it)
                await asyncio.sleep(GROUP_LINGER)
            self._wake.clear()
            group, self._pending = self._pending, []
            if not group:
                if self._closing:
                    return
                continue
            try:
                await self._commit_group(group)
            except Exception as e:  # whatever happens, no handler waits forever
                error = _classify(e)
                log.error("store: commit failed", extra={"error": str(error), "group": len(group)})
                for record, future in group:
                    self._reserved -= record.size
                    self._in_flight -= 1
                    if not future.done():
                        future.set_exception(error)

    async def _commit_group(self, group: list[tuple[UplinkRecord, asyncio.Future]]) -> None:
        staged: dict[str, ReplayWindow] = {}
        for record, _ in group:
            window = staged.get(record.device)
            if window is None:
                window = self.windows.get(record.device)
                window = window.copy() if window else ReplayWindow(self.replay_window)
                staged[record.device] = window
            window.accept(record.seq)
            record.high = window.high
            record.window = window.to_bytes()
        records = [record for record, _ in group]
        self.free_pages_bytes = await asyncio.get_running_loop().run_in_executor(
            self._db, self._call, _write_uplinks, (records,)
        )
        # committed: from here on nothing may fail
        self.windows.update(staged)
        for record, future in group:
            self._reserved -= record.size
            self._in_flight -= 1
            if record.inserted:
                self.queue_bytes += record.size
                self.unsent += 1
                if self.oldest_unsent is None:
                    self.oldest_unsent = record.rx
            if record.addr:
                self.addresses[record.device] = record.addr
            if not future.done():
                future.set_result(record.inserted)
        if self.on_commit is not None:
            try:
                self.on_commit(records)
            except Exception:
                log.exception("store: on_commit failed")

    def replay_state(self, device: str, seq: int) -> str:
        window = self.windows.get(device)
        if window is None:
            return "new"
        return window.check(seq)

    async def stored_reply(self, device: str, seq: int) -> bytes | None:
        def query(conn):
            row = conn.execute(
                "SELECT reply FROM uplinks WHERE device = ? AND seq = ?", (device, seq)
            ).fetchone()
            return row[0] if row else None

        return await self.run(query)

    # -- forwarding

    async def open_batches(self) -> list[tuple[int, bytes, list[tuple[int, int, bytes]]]]:
        return await self.run(_open_batches)

    async def new_batch(self, *, newest: bool, limit: int):
        """Assign up to `limit` unsent rows to a new batch (persisted before it
        is sent); (batch pk, batch id, [(row id, rx, cose)]) or None."""
        return await self.run(_new_batch, newest, limit)

    async def unassign_batch(self, batch_pk: int) -> None:
        await self.run(_unassign_batch, batch_pk)

    async def finish_batch(self, batch_pk: int, results: list[tuple[int, str | None]]) -> None:
        """Record the cloud's verdict: (row id, None) for accepted or
        duplicate, (row id, reason) for rejected."""
        freed, finished, oldest = await self.run(_finish_batch, batch_pk, results, self.hold_after)
        self.queue_bytes -= freed
        self.unsent -= finished
        self.oldest_unsent = oldest

    async def prune(self, before: int) -> int:
        """Delete forwarded rows done before `before`, a chunk per transaction
        (one big DELETE needs WAL space a nearly full disk does not have);
        their pages go to SQLite's free list for new rows."""
        total = 0
        # while a reader holds rows, the newest row is kept: SQLite gives a
        # new row max(id) + 1, and a reader's cursor must never see an id again
        keep_newest = self.hold_after is not None
        while True:
            n = await self.run(_prune_chunk, before, PRUNE_CHUNK, keep_newest)
            total += n
            if n < PRUNE_CHUNK:
                break
        self.free_pages_bytes = await self.run(_free_pages_bytes)
        return total

    # -- commands and reports

    async def load_open_commands(self) -> list[Command]:
        return await self.run(_load_open_commands)

    async def last_local_cmd_ids(self) -> dict[str, int]:
        return await self.run(
            lambda conn: dict(
                conn.execute(
                    "SELECT device, MAX(cmd_id) FROM commands WHERE cloud_id IS NULL "
                    "GROUP BY device"
                ).fetchall()
            )
        )

    async def add_cloud_commands(self, commands: list[Command], report_for) -> list[Command]:
        """Store the commands not seen before (by cloud id), each with the
        report `report_for(command)` -> (path, body); returns the new ones."""
        return await self.run(_add_cloud_commands, commands, report_for)

    async def add_local_commands(self, commands: list[Command], reports: list) -> None:
        """Store gateway-signed commands that no uplink carried in (a fail-safe
        op asked for over MQTT), with their reports, in one transaction."""
        await self.run(_add_local_commands, commands, reports)

    async def update_command(self, command: Command, state: str, reports: list) -> None:
        await self.run(_update_commands, [(command, state, command.carried_seq)], reports)

    async def next_reports(self, limit: int = 50) -> list[tuple[int, str, dict]]:
        rows = await self.run(
            lambda conn: conn.execute(
                "SELECT id, path, body FROM reports ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        )
        return [(rid, path, json.loads(body)) for rid, path, body in rows]

    async def delete_report(self, report_id: int) -> None:
        def delete(conn):
            conn.execute("DELETE FROM reports WHERE id = ?", (report_id,))

        await self.run(delete)

    async def set_meta(self, key: str, value: str) -> None:
        def put(conn):
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self.run(put)


# -- functions that run on the database thread ------------------------------


def _load_state(conn: sqlite3.Connection) -> dict:
    devices = conn.execute("SELECT id, high, window, addr FROM devices").fetchall()
    unsent, unsent_bytes = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM uplinks WHERE done IS NULL"
    ).fetchone()
    reject_bytes = conn.execute(
        f"SELECT COALESCE(SUM(LENGTH(cose) + LENGTH(reason) + {ROW_OVERHEAD}), 0) FROM rejects"
    ).fetchone()[0]
    return {
        "devices": devices,
        "unsent": unsent,
        "queue_bytes": unsent_bytes + reject_bytes,
        "oldest": _oldest_unsent(conn),
    }


def _oldest_unsent(conn) -> int | None:
    row = conn.execute("SELECT rx FROM uplinks WHERE done IS NULL ORDER BY id LIMIT 1").fetchone()
    return row[0] if row else None


def _write_uplinks(conn: sqlite3.Connection, records: list[UplinkRecord]) -> int:
    now = int(time.time())
    conn.execute("BEGIN IMMEDIATE")
    for r in records:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO uplinks (device, seq, rx, cose, size, reply) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (r.device, r.seq, r.rx, r.cose, r.size, r.reply),
        )
        r.inserted = cursor.rowcount == 1
        if not r.inserted:
            continue
        conn.execute(
            "INSERT INTO devices (id, high, window, addr, last_rx) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET high = excluded.high, window = excluded.window, "
            "addr = COALESCE(excluded.addr, addr), last_rx = excluded.last_rx",
            (r.device, r.high, r.window, r.addr, r.rx),
        )
        _insert_commands(conn, r.new_commands, now)
        _apply_updates(conn, r.command_updates, now)
        _insert_reports(conn, r.reports, now)
    conn.execute("COMMIT")
    return _free_pages_bytes(conn)


def _insert_commands(conn, commands: list[Command], now: int) -> None:
    for c in commands:
        cursor = conn.execute(
            "INSERT INTO commands (cloud_id, device, cmd_id, op, not_after, cose, event, state, "
            "carried_seq, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                c.cloud_id,
                c.device,
                c.cmd_id,
                c.op,
                c.not_after,
                c.cose,
                c.event,
                c.state,
                c.carried_seq,
                c.created or now,
                now,
            ),
        )
        c.row = cursor.lastrowid


def _apply_updates(conn, updates, now: int) -> None:
    for command, state, carried_seq in updates:
        conn.execute(
            # a finished command stays finished (a push may have won the race)
            "UPDATE commands SET state = ?, carried_seq = ?, updated = ? "
            "WHERE id = ? AND state IN ('pending', 'carried')",
            (state, carried_seq, now, command.row),
        )


def _insert_reports(conn, reports, now: int) -> None:
    for path, body in reports:
        conn.execute(
            "INSERT INTO reports (path, body, created) VALUES (?, ?, ?)",
            (path, json.dumps(body, separators=(",", ":")), now),
        )


def _rows_of(conn, batch_pk: int) -> list[tuple[int, int, bytes]]:
    return conn.execute(
        "SELECT id, rx, cose FROM uplinks WHERE batch = ? AND done IS NULL ORDER BY id",
        (batch_pk,),
    ).fetchall()


def _open_batches(conn):
    # rows pointing at a batch that is gone go back to the queue (defensive:
    # no code path leaves them, but a row must never be stranded)
    conn.execute(
        "UPDATE uplinks SET batch = NULL WHERE done IS NULL AND batch IS NOT NULL "
        "AND batch NOT IN (SELECT id FROM batches)"
    )
    out = []
    for batch_pk, batch_id in conn.execute(
        "SELECT id, batch_id FROM batches ORDER BY id"
    ).fetchall():
        rows = _rows_of(conn, batch_pk)
        if rows:
            out.append((batch_pk, batch_id, rows))
        else:
            conn.execute("DELETE FROM batches WHERE id = ?", (batch_pk,))
    return out


def _new_batch(conn, newest: bool, limit: int):
    order = "DESC" if newest else "ASC"
    ids = [
        row[0]
        for row in conn.execute(
            f"SELECT id FROM uplinks WHERE done IS NULL AND batch IS NULL ORDER BY id {order} "
            "LIMIT ?",
            (limit,),
        ).fetchall()
    ]
    if not ids:
        return None
    batch_id = os.urandom(16)
    conn.execute("BEGIN IMMEDIATE")
    cursor = conn.execute(
        "INSERT INTO batches (batch_id, created) VALUES (?, ?)", (batch_id, int(time.time()))
    )
    batch_pk = cursor.lastrowid
    conn.executemany("UPDATE uplinks SET batch = ? WHERE id = ?", [(batch_pk, i) for i in ids])
    conn.execute("COMMIT")
    return batch_pk, batch_id, _rows_of(conn, batch_pk)


def _unassign_batch(conn, batch_pk: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE uplinks SET batch = NULL WHERE batch = ? AND done IS NULL", (batch_pk,))
    conn.execute("DELETE FROM batches WHERE id = ?", (batch_pk,))
    conn.execute("COMMIT")


def _finish_batch(conn, batch_pk: int, results: list[tuple[int, str | None]], hold_after=None):
    now = int(time.time())
    freed = finished = 0
    conn.execute("BEGIN IMMEDIATE")
    for row_id, reason in results:
        row = conn.execute(
            "SELECT device, seq, rx, cose, size FROM uplinks WHERE id = ? AND done IS NULL",
            (row_id,),
        ).fetchone()
        if row is None:
            continue
        device, seq, rx, cose, size = row
        freed += size
        finished += 1
        if reason is not None:
            conn.execute(
                "INSERT INTO rejects (device, seq, rx, cose, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
                (device, seq, rx, cose, reason, now),
            )
            freed -= len(cose) + len(reason.encode()) + ROW_OVERHEAD
        if hold_after is not None and row_id > hold_after:
            conn.execute("UPDATE uplinks SET done = ? WHERE id = ?", (now, row_id))
        else:
            conn.execute("UPDATE uplinks SET cose = NULL, done = ? WHERE id = ?", (now, row_id))
    conn.execute("DELETE FROM batches WHERE id = ?", (batch_pk,))
    conn.execute("COMMIT")
    return freed, finished, _oldest_unsent(conn)


def _prune_chunk(conn, before: int, limit: int, keep_newest: bool = False) -> int:
    newest = " AND id < (SELECT MAX(id) FROM uplinks)" if keep_newest else ""
    conn.execute("BEGIN IMMEDIATE")
    n = conn.execute(
        "DELETE FROM uplinks WHERE id IN (SELECT id FROM uplinks "
        f"WHERE done IS NOT NULL AND done < ?{newest} ORDER BY done LIMIT ?)",
        (before, limit),
    ).rowcount
    if n < limit:
        conn.execute(
            "DELETE FROM commands WHERE state NOT IN ('pending', 'carried') AND updated < ?",
            (before,),
        )
    conn.execute("COMMIT")
    return n


def _free_pages_bytes(conn) -> int:
    pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return pages * conn.execute("PRAGMA page_size").fetchone()[0]


def _command_from_row(row) -> Command:
    (row_id, cloud_id, device, cmd_id, op, not_after, cose, event, state, carried, created) = row
    return Command(
        device=device,
        cmd_id=cmd_id,
        op=op,
        not_after=not_after,
        cose=cose,
        state=state,
        cloud_id=cloud_id,
        event=event,
        carried_seq=carried,
        created=created,
        row=row_id,
    )


def _load_open_commands(conn) -> list[Command]:
    marks = ", ".join("?" for _ in OPEN_STATES)
    rows = conn.execute(
        "SELECT id, cloud_id, device, cmd_id, op, not_after, cose, event, state, carried_seq, "
        f"created FROM commands WHERE state IN ({marks}) ORDER BY id",
        OPEN_STATES,
    ).fetchall()
    return [_command_from_row(r) for r in rows]


def _add_cloud_commands(conn, commands: list[Command], report_for) -> list[Command]:
    now = int(time.time())
    conn.execute("BEGIN IMMEDIATE")
    new = []
    for c in commands:
        if conn.execute("SELECT 1 FROM commands WHERE cloud_id = ?", (c.cloud_id,)).fetchone():
            continue
        _insert_commands(conn, [c], now)
        _insert_reports(conn, [report_for(c)], now)
        new.append(c)
    conn.execute("COMMIT")
    return new


def _add_local_commands(conn, commands: list[Command], reports) -> None:
    now = int(time.time())
    conn.execute("BEGIN IMMEDIATE")
    _insert_commands(conn, commands, now)
    _insert_reports(conn, reports, now)
    conn.execute("COMMIT")


def _update_commands(conn, updates, reports) -> None:
    now = int(time.time())
    conn.execute("BEGIN IMMEDIATE")
    _apply_updates(conn, updates, now)
    _insert_reports(conn, reports, now)
    conn.execute("COMMIT")
