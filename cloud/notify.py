"""Wakes the long polls of gateways (GET /api/v1/gateway/commands) when a
command is queued for one of their devices — in this worker process and,
on PostgreSQL, in every other worker on the same database.

Commands are created in worker threads; a waiting poll is an asyncio task.
`queued` marks the transaction; after its commit the local `CommandNotifier`
wakes this process's polls at once. On PostgreSQL `queued` also issues
`pg_notify('kapok_commands', <gateway id>)` inside the transaction, which
the server delivers on commit (and never for a rolled-back one) to every
`PostgresListener` — one per worker process, on a connection of its own —
and each wakes the polls of its process. Nothing of this lives only in one
worker's memory: a listener that lost its connection wakes every poll once
it is back (they look at the database again), and polls also look again
every `long_poll_recheck_seconds` on their own.
"""

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from .core.db import normalize_url

PENDING = "kapok.notify_gateways"
CHANNEL = "kapok_commands"

log = logging.getLogger("kapok.cloud.notify")


class CommandNotifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, gateway_id: str) -> asyncio.Event:
        """Call from the event loop; pair with `unsubscribe`."""
        self._loop = asyncio.get_running_loop()
        waiter = asyncio.Event()
        self._waiters[gateway_id].add(waiter)
        return waiter

    def unsubscribe(self, gateway_id: str, waiter: asyncio.Event) -> None:
        waiters = self._waiters.get(gateway_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[gateway_id]

    def notify(self, gateway_ids: Iterable[str] | None) -> None:
        """Wake the polls of these gateways (None: every poll). Any thread."""
        ids = None if gateway_ids is None else list(gateway_ids)
        loop = self._loop
        if ids == [] or loop is None or loop.is_closed():
            return
        # RuntimeError: the loop is shutting down, nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._wake, ids)

    def _wake(self, ids: list[str] | None) -> None:
        for gateway_id in list(self._waiters) if ids is None else ids:
            for waiter in self._waiters.get(gateway_id, ()):
                waiter.set()

    def attach(self, sessions: sessionmaker[Session]) -> None:
        """Notify after every commit that queued commands (see `queued`)."""

        def after_commit(session: Session) -> None:
            self.notify(session.info.pop(PENDING, ()))

        def after_rollback(session: Session) -> None:
            session.info.pop(PENDING, None)

        event.listen(sessions, "after_commit", after_commit)
        event.listen(sessions, "after_soft_rollback", lambda s, _tx: after_rollback(s))


def queued(session: Session, gateway_id: str) -> None:
    """Record that a command for `gateway_id` was queued in this transaction."""
    pending = session.info.setdefault(PENDING, set())
    if gateway_id in pending:
        return
    pending.add(gateway_id)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:c, :g)"), {"c": CHANNEL, "g": gateway_id})


class PostgresListener:
    """LISTENs on `kapok_commands` on a connection of its own (a daemon
    thread) and passes every notification to `notifier`. Reconnects with
    backoff; after a reconnect it wakes every poll, since notifications sent
    while it was away are lost."""

    def __init__(self, notifier: CommandNotifier, url: str, *, retry_max: float = 10.0):
        """`url`: the PostgreSQL server itself (a pooler in transaction mode
        would hand the LISTEN's session to others)."""
        self.notifier = notifier
        self.conninfo = (
            make_url(normalize_url(url))
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self.retry_max = retry_max
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kapok-listen", daemon=True)
        self.connected = threading.Event()

    def start(self) -> "PostgresListener":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        import psycopg

        delay = 0.5
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    if not first:
                        self.notifier.notify(None)
                    first, delay = False, 0.5
                    while not self._stop.is_set():
                        # a short timeout so stop() is heard; notifications
                        # queue on the connection meanwhile
                        for note in conn.notifies(timeout=1.0):
                            self.notifier.notify([note.payload])
            except Exception as e:  # server restarted, network: try again
                self.connected.clear()
                first = False
                log.warning("command wake-ups: %s; reconnecting in %.1f s", e, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_max)
