"""The loop that delivers due notifications (outbox.py), in every worker.

Each round claims a few due rows in a short transaction, sends them with
no transaction open (a slow peer holds no lock), then records each outcome
in a transaction of its own. New notifications of this process wake the
loop at once (after their commit); those of other workers are found by the
next poll, every KAPOK_NOTIFY_POLL_SECONDS. Deliveries that end (sent or
dead) are audited.
"""

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from ..core.db import session_scope
from ..crud import audit
from . import email, outbox, robots, sms, webhook
from .adapters import Adapter, DeliveryError
from .outbox import QUEUED

log = logging.getLogger("kapok.cloud.notifications")

ADAPTERS: dict[str, Adapter] = {
    "webhook": webhook.send,
    "email": email.send,
    "wecom": robots.send_wecom,
    "dingtalk": robots.send_dingtalk,
    "sms": sms.send,
}
ROUND = 20  # notifications claimed per round


def deliver_due(
    sessions: sessionmaker[Session], settings, now: float, *, limit: int = ROUND
) -> int:
    """One round: returns how many notifications it tried. The sends run
    side by side, so one slow peer does not hold up the others."""
    with session_scope(sessions) as session:
        claimed = outbox.claim(session, now=now, limit=limit)
    if claimed:
        with ThreadPoolExecutor(max_workers=min(8, len(claimed))) as pool:
            list(pool.map(lambda item: _deliver(sessions, settings, now, *item), claimed))
    return len(claimed)


def _deliver(sessions, settings, now: float, notification_id: int, target, message) -> None:
    error, retry = None, False
    try:
        ADAPTERS[target.kind](target, message, settings)
    except DeliveryError as e:
        error, retry = e.reason, e.retry
    except Exception as e:  # a bug in an adapter must not stop the others
        log.exception("notification %s", notification_id)
        error, retry = f"{type(e).__name__}: {e}", True
    with session_scope(sessions) as session:
        row = outbox.finish(
            session,
            notification_id=notification_id,
            now=now,
            error=error,
            retry=retry,
            max_attempts=settings.notify_max_attempts,
            base=settings.notify_backoff_seconds,
            ceiling=settings.notify_backoff_max_seconds,
        )
        if row.state in ("sent", "dead"):
            audit.record(
                session,
                actor="system",
                action=f"notify.{row.state}",
                target=f"notification:{row.id}",
                community_id=row.community_id,
                detail={
                    "channel": row.channel_id,
                    "kind": target.kind,
                    "alarm": row.alarm_id,
                    "event": row.event,
                    "step": row.step,
                    "attempts": row.attempts,
                    "error": error,
                },
                now=now,
            )


class Wakeup:
    """Wakes this process's sender after a commit that queued notifications."""

    def __init__(self) -> None:
        self.event: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def attach(self, sessions: sessionmaker[Session]) -> None:
        def after_commit(session: Session) -> None:
            if session.info.pop(QUEUED, False):
                self.wake()

        event.listen(sessions, "after_commit", after_commit)
        event.listen(sessions, "after_soft_rollback", lambda s, _tx: s.info.pop(QUEUED, None))

    def wake(self) -> None:
        loop, ev = self.loop, self.event
        if loop is not None and ev is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ev.set)

    async def wait(self, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = self.event or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()


async def run_forever(app) -> None:
    settings = app.state.settings
    wakeup: Wakeup = app.state.notify_wakeup
    while True:
        await wakeup.wait(settings.notify_poll_seconds)
        try:
            # a full round may leave more due: go again at once
            while (
                await run_in_threadpool(
                    deliver_due, app.state.sessions, settings, app.state.clock()
                )
                >= 20
            ):
                pass
        except Exception:  # the database away, say: the next round tries again
            log.exception("notification round failed")
