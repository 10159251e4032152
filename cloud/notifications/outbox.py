"""Notifications as rows: the durable outbox.

- `queue` adds a row in the caller's transaction (the alarm change that
  caused it): committed together or not at all. The unique key (channel,
  alarm, event, step) makes queueing the same step twice a no-op.
- `claim` takes due rows for one sender: `pending` ones whose time has
  come, and `sending` ones whose lease ran out (a sender died mid-send).
  On PostgreSQL `FOR UPDATE SKIP LOCKED` lets several workers claim at once
  without ever taking the same row; SQLite has one writer anyway.
- `finish` records the outcome: `sent`, or back to `pending` with an
  exponential backoff, or `dead` (a permanent refusal, or the last try).

A send that times out may still have arrived, and a sender that dies after
sending but before `finish` leaves the row to be sent again when its lease
ends: delivery is at least once, exactly once for every peer that honours
the message key (webhook `X-Kapok-Delivery`, e-mail `Message-ID`, the SMS
providers' out ids). Queueing is exactly once per recipient and step.
"""

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..models import Channel, Notification
from .adapters import Message, Target
from .messages import from_row, to_row

LEASE_SECONDS = 120
# Session.info: this transaction queued notifications (sender.Wakeup wakes
# this process's sender after its commit)
QUEUED = "kapok.notifications_queued"


def queue(
    session: Session,
    *,
    channel: Channel,
    message: Message,
    event: str,
    step: int,
    now: float,
    alarm_id: int | None = None,
    not_before: float | None = None,
) -> int | None:
    """Queue one message: its id, or None when this step was already queued
    for the channel."""
    values = dict(
        channel_id=channel.id,
        community_id=channel.community_id,
        alarm_id=alarm_id,
        event=event,
        step=step,
        message=to_row(message),
        state="pending",
        attempts=0,
        next_at=max(now, not_before or now),
        created_at=now,
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.info[QUEUED] = True
    if alarm_id is None:  # test messages: NULLs never collide
        row = Notification(**values)
        session.add(row)
        session.flush()
        return row.id
    stmt = insert(Notification).values(**values).on_conflict_do_nothing()
    return session.execute(stmt.returning(Notification.id)).scalar()


def target_of(channel: Channel) -> Target:
    return Target(
        kind=channel.kind,
        target=channel.target,
        secret=channel.secret,
        lang=channel.lang,
        name=channel.name,
    )


def claim(session: Session, *, now: float, limit: int = 20) -> list[tuple[int, Target, Message]]:
    """Due notifications for this sender, leased for LEASE_SECONDS."""
    rows = session.scalars(
        select(Notification)
        .where(
            or_(
                (Notification.state == "pending") & (Notification.next_at <= now),
                (Notification.state == "sending") & (Notification.lease_until < now),
            )
        )
        .order_by(Notification.next_at, Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    claimed = []
    for row in rows:
        row.state = "sending"
        row.lease_until = now + LEASE_SECONDS
        row.attempts += 1
        channel = session.get(Channel, row.channel_id)
        claimed.append((row.id, target_of(channel), from_row(row.message)))
    session.flush()
    return claimed


def backoff(attempts: int, *, base: float, ceiling: float) -> float:
    """Seconds before try number `attempts + 1`: base, 2·base, 4·base, … ≤ ceiling."""
    return min(ceiling, base * 2 ** max(0, attempts - 1))


def finish(
    session: Session,
    *,
    notification_id: int,
    now: float,
    error: str | None,
    retry: bool,
    max_attempts: int,
    base: float,
    ceiling: float,
) -> Notification:
    row = session.get(Notification, notification_id, with_for_update=True)
    row.lease_until = None
    if error is None:
        row.state, row.sent_at, row.last_error = "sent", now, None
    elif retry and row.attempts < max_attempts:
        row.state, row.last_error = "pending", error
        row.next_at = now + backoff(row.attempts, base=base, ceiling=ceiling)
    else:
        row.state, row.last_error = "dead", error
    session.flush()
    return row


def retry_dead(session: Session, *, notification: Notification, now: float) -> None:
    """A dead letter queued again (a person fixed the channel)."""
    notification.state = "pending"
    notification.attempts = 0
    notification.next_at = now
    notification.lease_until = None
    session.info[QUEUED] = True
    session.flush()
