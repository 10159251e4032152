"""Wakes the long polls of gateways (GET /api/v1/gateway/commands) when a
command is queued for one of their devices.

Commands are created in worker threads; a waiting poll is an asyncio task.
`notify` may be called from any thread. It is wired to the session's
`after_commit`, so a poll wakes only once the command is visible to it.
Other worker processes do not hear it: their polls also look again every
few seconds.
"""

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

PENDING = "kapok.notify_gateways"


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

    def notify(self, gateway_ids: Iterable[str]) -> None:
        ids = list(gateway_ids)
        loop = self._loop
        if not ids or loop is None or loop.is_closed():
            return
        # RuntimeError: the loop is shutting down, nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._wake, ids)

    def _wake(self, ids: list[str]) -> None:
        for gateway_id in ids:
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
    session.info.setdefault(PENDING, set()).add(gateway_id)
