"""The MQTT bridge's cursor over the store's `uplinks` table.

The cursor is the id of the last row published (and acknowledged by the
broker, QoS 1); it lives in `meta` as `mqtt_cursor`, saved at most once a
second and at shutdown, so a crash republishes at most that second
(at-least-once). Rows above it keep their COSE bytes after the cloud took
them (`Store.hold_after`) until the bridge has published them and releases
them here; rowids never go back while held (Store.prune keeps the newest
row). Every function but `Cursor` runs on the store's database thread.
"""

from __future__ import annotations

from ..store import Store

META_KEY = "mqtt_cursor"


def _start(conn) -> tuple[int, bool]:
    """(cursor, fresh): the saved cursor, or the newest row on a first start
    (readings stored before MQTT was first turned on are not published)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
    if row is not None:
        return int(row[0]), False
    newest = conn.execute("SELECT COALESCE(MAX(id), 0) FROM uplinks").fetchone()[0]
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (META_KEY, str(newest)))
    return newest, True


def _last_uplinks(conn) -> dict[str, int]:
    return dict(conn.execute("SELECT id, last_rx FROM devices WHERE last_rx IS NOT NULL"))


def _rows_after(conn, after: int, limit: int):
    return conn.execute(
        "SELECT id, device, rx, cose FROM uplinks WHERE id > ? ORDER BY id LIMIT ?",
        (after, limit),
    ).fetchall()


def _advance(conn, released: int, cursor: int) -> None:
    """Save the cursor and drop the bytes of published rows the cloud has."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "UPDATE uplinks SET cose = NULL WHERE id > ? AND id <= ? "
        "AND done IS NOT NULL AND cose IS NOT NULL",
        (released, cursor),
    )
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (META_KEY, str(cursor)),
    )
    conn.execute("COMMIT")


class Cursor:
    def __init__(self, store: Store):
        self.store = store
        self.position = 0
        self.saved = 0
        self.released = 0

    async def open(self) -> bool:
        """Load the cursor and hold the rows above it; True on a first start.
        Call before the forwarder runs, so it strips no unpublished row."""
        self.position, fresh = await self.store.run(_start)
        self.store.hold_after = self.position
        await self.store.run(_advance, 0, self.position)  # left held by a crash
        self.saved = self.released = self.position
        return fresh

    async def last_uplinks(self) -> dict[str, int]:
        return await self.store.run(_last_uplinks)

    async def rows(self, limit: int):
        """[(id, device, rx, cose or None)] after the cursor."""
        return await self.store.run(_rows_after, self.position, limit)

    def moved(self, position: int) -> None:
        """The rows up to `position` are published: the cloud may drop them."""
        self.position = position
        self.store.hold_after = position

    async def save(self) -> None:
        if self.position != self.saved:
            position = self.position
            await self.store.run(_advance, self.released, position)
            self.saved = self.released = position
