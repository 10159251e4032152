"""Several cloud workers send the outbox at once, each with its own engine
(its own connections, as separate processes have): every notification is
delivered exactly once. On PostgreSQL this is `FOR UPDATE SKIP LOCKED` and
the lease at work; on SQLite the single writer serialises the claims."""

from concurrent.futures import ThreadPoolExecutor

from kapok.cloud.core.db import engine_for, session_factory
from kapok.cloud.notifications.sender import deliver_due

from ..test_alarms import event
from .test_alarm_notifications import channel

WORKERS = 4
CHANNELS = 12


def test_four_workers_deliver_each_notification_exactly_once(world, settings, hook, clock):
    a = world.a
    for i in range(CHANNELS):
        channel(world, a, "webhook", f"{hook.url}?to={i}", secret="hook-secret-1")
    event(world, a, a.gas, 1, "gas.leak", 50)
    event(world, a, a.hub, 2, "smoke")
    engines = [engine_for(settings) for _ in range(WORKERS)]
    try:
        factories = [session_factory(e) for e in engines]

        def worker(sessions) -> int:
            sent = 0
            while n := deliver_due(sessions, settings, clock(), limit=3):
                sent += n
            return sent

        with ThreadPoolExecutor(WORKERS) as pool:
            per_worker = list(pool.map(worker, factories))
    finally:
        for e in engines:
            e.dispose()
    deliveries = [
        next(v for k, v in h["headers"].items() if k.lower() == "x-kapok-delivery")
        for h in hook.received
    ]
    assert len(deliveries) == 2 * CHANNELS  # two alarms, each to every channel
    assert len(set(deliveries)) == len(deliveries), "a notification was sent twice"
    assert sum(per_worker) == 2 * CHANNELS
    notifications = world.ok("GET", "/api/v1/notifications", params={"community": a.community})
    assert {n["state"] for n in notifications} == {"sent"}
    assert all(n["attempts"] == 1 for n in notifications)
