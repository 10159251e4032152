"""Bulk reads for outside systems: readings and alarms of a key's
communities in pages, from a cursor, and a month of readings as a file.

A cursor must never skip a row nor give one twice, while readings are being
written. Row ids are allocated when a transaction inserts, not when it
commits: on PostgreSQL a transaction that began earlier can commit id 104
after a reader has seen 105, and a cursor "after 105" would lose it. So on
PostgreSQL every row carries the 64-bit id of its inserting transaction
(`tx`, a server default), pages are ordered by (tx, id), and a page only
holds rows of transactions older than the oldest one still running
(`pg_snapshot_xmin`): those are all committed or gone for good, and every
later row has a larger tx. On SQLite writers take turns (BEGIN IMMEDIATE),
so ids commit in order and (0, id) is the cursor.
"""

import base64
import csv
import io
import re

from sqlalchemy import Select, and_, select, text, tuple_
from sqlalchemy.orm import Session

from ..errors import Invalid, ServiceUnavailable
from ..models import Alarm, Device, Message, Reading
from .billing import month_bounds

_CURSOR = re.compile(r"^(\d{1,20}):(\d{1,20})$")
START = "0:0"


def encode_cursor(tx: int, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{tx}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[int, int]:
    """(tx, id) of a cursor from a previous page; (0, 0) for the start."""
    if not cursor:
        return 0, 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    m = _CURSOR.match(raw)
    if not m:
        raise Invalid("cursor is not one this API gave out")
    return int(m.group(1)), int(m.group(2))


def _horizon(session: Session) -> int | None:
    """PostgreSQL: the oldest transaction still running (rows of older ones
    are final). None on SQLite (no horizon needed)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))


def _page(session: Session, stmt: Select, model, cursor: str | None, limit: int):
    tx, row_id = decode_cursor(cursor)
    horizon = _horizon(session)
    if horizon is None:
        stmt = stmt.where(model.id > row_id).order_by(model.id)
    else:
        stmt = stmt.where(
            model.tx < horizon, tuple_(model.tx, model.id) > tuple_(tx, row_id)
        ).order_by(model.tx, model.id)
    rows = session.execute(stmt.limit(limit)).all()
    if rows:
        last = rows[-1][0]
        cursor = encode_cursor(last.tx or 0, last.id)
    else:
        cursor = cursor or encode_cursor(0, 0)
    return rows, cursor


def readings_page(
    session: Session,
    *,
    communities: frozenset[int],
    cursor: str | None,
    limit: int,
    name: str | None = None,
    with_cose: bool = False,
) -> dict:
    """{"items": [...], "cursor": ...}: readings after `cursor` in commit
    order; pass the returned cursor to get the next page (an empty page
    keeps the cursor: ask again later)."""
    columns = [Reading, Device.community_id, Device.unit_id]
    if with_cose:
        columns.append(Message.cose)
    stmt = select(*columns).join(Device, Device.id == Reading.device_id)
    if with_cose:
        stmt = stmt.join(Message, Message.id == Reading.message_id)
    stmt = stmt.where(Device.community_id.in_(communities))
    if name is not None:
        stmt = stmt.where(Reading.name == name)
    rows, next_cursor = _page(session, stmt, Reading, cursor, limit)
    items = []
    for row in rows:
        r = row[0]
        item = {
            "id": r.id,
            "device": r.device_id,
            "community": row[1],
            "unit": row[2],
            "seq": r.seq,
            "t": r.t,
            "n": r.name,
            "u": r.unit,
            "v": _value(r),
            "time_source": r.time_source,
        }
        if with_cose:
            item["cose"] = row[3].hex()
        items.append(item)
    return {"items": items, "cursor": next_cursor}


def _value(r: Reading):
    if r.value is not None:
        return r.value
    if r.value_bool is not None:
        return r.value_bool
    return r.value_str


def alarms_page(
    session: Session, *, communities: frozenset[int], cursor: str | None, limit: int
) -> dict:
    """Alarms opened after `cursor`, each as it stands now."""
    stmt = select(Alarm).where(Alarm.community_id.in_(communities))
    rows, next_cursor = _page(session, stmt, Alarm, cursor, limit)
    return {"items": [row[0] for row in rows], "cursor": next_cursor}


EXPORT_COLUMNS = ("device", "unit", "seq", "t", "n", "u", "v", "time_source", "cose")


def month_rows(session: Session, *, community, month: str):
    """Every reading of the community's devices in `month` (its time zone),
    in time order, with the signed original of its message: tuples in
    EXPORT_COLUMNS order. A generator: a month is read in chunks."""
    start, end = month_bounds(month, community.timezone)
    stmt = (
        select(Reading, Device.unit_id, Message.cose)
        .join(Device, Device.id == Reading.device_id)
        .join(Message, Message.id == Reading.message_id)
        .where(
            Device.community_id == community.id,
            and_(Reading.t >= start, Reading.t < end),
        )
        .order_by(Reading.t, Reading.id)
        .execution_options(yield_per=2000)
    )
    for r, unit, cose in session.execute(stmt):
        yield (r.device_id, unit, r.seq, r.t, r.name, r.unit, _value(r), r.time_source, cose.hex())


def to_csv(rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def to_parquet(rows) -> bytes:
    """The same columns as to_csv, typed (t a float64, v kept as text where a
    reading is not a number); needs pyarrow (`pip install 'kapok[platform]'`)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ServiceUnavailable(
            "Parquet export needs pyarrow on the server", retry_after=3600
        ) from None
    cols = list(zip(*rows, strict=True)) or [()] * len(EXPORT_COLUMNS)
    data = dict(zip(EXPORT_COLUMNS, cols, strict=True))
    values = data.pop("v")
    table = pa.table(
        {
            "device": pa.array(data["device"], pa.string()),
            "unit": pa.array(data["unit"], pa.int64()),
            "seq": pa.array(data["seq"], pa.int64()),
            "t": pa.array(data["t"], pa.float64()),
            "n": pa.array(data["n"], pa.string()),
            "u": pa.array(data["u"], pa.string()),
            "v": pa.array([v if _is_number(v) else None for v in values], pa.float64()),
            "v_text": pa.array(
                [None if _is_number(v) or v is None else str(v).lower() for v in values],
                pa.string(),
            ),
            "time_source": pa.array(data["time_source"], pa.string()),
            "cose": pa.array(data["cose"], pa.string()),
        }
    )
    out = pa.BufferOutputStream()
    pq.write_table(table, out)
    return out.getvalue().to_pybytes()


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
