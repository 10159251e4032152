"""Weeks of past readings for a simulated community, so its billing has
months behind it from the first minute.

Each node signs its history itself, as a node that buffered its readings
would: one uplink a day carrying that day's readings at 00:00, 06:00, 12:00
and 18:00 local time (SenML records with their own absolute times), with
seqs reserved in the state file before the live run's, so everything in the
cloud is verifiable (`kapok verify`) and in seq order. They go to the cloud
the way a gateway forwards them: ingest batches with the gateway's token.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from kapok.protocols import cose, messages, senml

from .community import SimState
from .node import NodeSpec, SimNode, f32

HOURS = (0, 6, 12, 18)
SENT_AFTER_S = 300  # the day's uplink leaves a little after its last reading
BATCH = 500
KINDS_WITH_HISTORY = ("gas-meter", "water-meter", "electricity-meter", "water-quality")


class HistoryError(RuntimeError):
    pass


def reading_times(days: int, *, now: float, timezone: str) -> list[list[float]]:
    """Per past day (oldest first), the Unix times of its readings; the
    days end before today (local), so live readings follow them."""
    tz = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for back in range(days, 0, -1):
        day = (today - timedelta(days=back)).date()
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        out.append([midnight.replace(hour=h).timestamp() for h in HOURS])
    return out


def _records(node: SimNode, times: list[float]) -> list[dict]:
    kind = node.spec.kind
    out = []
    for t in times:
        ti = int(t)
        if kind in ("gas-meter", "water-meter"):
            out.append(senml.record("vol", f32(round(node.register(t), 3)), t=ti))
        elif kind == "electricity-meter":
            out.append(senml.record("energy", f32(round(node.register(t), 2)), t=ti))
        else:
            q = node.quality(t)
            out.extend(senml.record(n, f32(q[n]), t=ti) for n in ("ph", "turb", "cl", "temp"))
    out.append(senml.record("bat", f32(round(node.battery, 3)), t=int(times[-1])))
    return out


def messages_for(
    node: SimNode, days: list[list[float]], first_seq: int, rx: int
) -> list[tuple[int, bytes]]:
    """[(rx time, COSE_Sign1)] of the node's history, seqs from first_seq:
    a node's buffered readings, reaching the gateway at `rx` (now, so the
    cloud sees the node as heard from, not as silent since last month)."""
    out = []
    for i, times in enumerate(days):
        sent = int(times[-1]) + SENT_AFTER_S
        payload = messages.build_uplink(
            first_seq + i, sent, records=senml.pack(_records(node, times), node.id)
        )
        out.append((rx, cose.sign1(payload, node.seed, node.kid)))
    return out


def backfill(
    state: SimState,
    specs: list[NodeSpec],
    *,
    days: int,
    now: float,
    timezone: str,
    ingest: Callable[[bytes], bytes],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Sign and send `days` days of history for the nodes that keep
    registers or measurements; returns how many readings went in. The seqs
    are taken from the state, so call this before `state.nodes()` hands
    out the live ones. `ingest(body) -> reply` posts one CBOR batch."""
    day_times = reading_times(days, now=now, timezone=timezone)
    items = []
    for spec in specs:
        if spec.kind not in KINDS_WITH_HISTORY:
            continue
        node = SimNode(spec, bytes.fromhex(state.identity(spec)["seed"]), {})
        first = state.take_seqs(spec, len(day_times))
        items.extend(messages_for(node, day_times, first, int(now)))
    state.save()  # the seqs are spent, whatever happens next
    readings = 0
    for i in range(0, len(items), BATCH):
        chunk = items[i : i + BATCH]
        reply = messages.parse_batch_reply(ingest(messages.build_batch(os.urandom(16), chunk)))
        if reply["rejects"]:
            _, reason = reply["rejects"][0]
            raise HistoryError(f"the cloud refused {len(reply['rejects'])} messages: {reason}")
        readings += len(chunk) * len(HOURS)
        if progress is not None:
            progress(len(chunk))
    return readings


def since_last_month(now: float, timezone: str) -> int:
    """Days of history that cover last month whole (and this one so far)."""
    tz = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, tz).date()
    first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    return (today - first).days + 1


def install_time(days: int, *, now: float, timezone: str) -> float:
    """When the simulated meters were installed: a day before their history."""
    return reading_times(days, now=now, timezone=timezone)[0][0] - 86400 if days else now
