"""The cloud's own periodic checks: commands past their expiry, alarms not
acknowledged in time (escalation), devices silent for too long. Each is a
plain function of `now`, so tests call it with the time they want; the app
runs them every `KAPOK_CHECK_SECONDS` in the background. With several
worker processes on PostgreSQL one round runs at a time: a round holds a
transaction-scoped advisory lock, and a worker that cannot take it skips
its round (another is doing the work)."""

import asyncio
import logging

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete, select, text

from .core.db import session_scope
from .crud import alarms, commands, firmware
from .models import AccessToken, LoginFailure, Rollout

log = logging.getLogger("kapok.cloud.checks")

# pg_try_advisory_xact_lock key of a checks round ("KAPOK" in ASCII)
ROUND_LOCK = 0x4B41504F4B


def _take_round(session) -> bool:
    """True when this worker may run the round (always on SQLite: one process)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": ROUND_LOCK}))


def run_checks(app, now: float) -> dict[str, int]:
    settings = app.state.settings
    keys = app.state.keys
    with session_scope(app.state.sessions) as session:
        if not _take_round(session):
            return {"skipped": 1}
        expired = commands.check_expired(session, now=now)
        for command in expired:
            if command.source == "rollout":
                firmware.on_command_finished(session, command=command, keys=keys, now=now)
        for rollout in session.scalars(select(Rollout).where(Rollout.state == "active")).all():
            firmware.advance(session, rollout=rollout, keys=keys, now=now)
        escalated = alarms.check_escalations(session, now=now)
        silent = alarms.check_silent(session, now=now, factor=settings.silent_factor)
        auto_resolved = alarms.check_auto_resolve(session, now=now)
        session.execute(delete(AccessToken).where(AccessToken.expires_at < now - 86400))
        session.execute(
            delete(LoginFailure).where(LoginFailure.at < now - settings.login_window_seconds)
        )
    return {
        "expired": len(expired),
        "escalated": len(escalated),
        "silent": len(silent),
        "auto_resolved": len(auto_resolved),
    }


async def run_forever(app) -> None:
    interval = app.state.settings.check_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(run_checks, app, app.state.clock())
        except Exception:  # a bad round must not stop the next ones
            log.exception("periodic checks failed")
