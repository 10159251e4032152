"""Monthly consumption per unit and utility, and its CSV / XLSX export.

For each meter of a unit the readings either side of the month's two
boundaries are found in one query per utility (correlated index seeks, not a
scan of the month), then `kapok.cloud.billing` decides the values and flags.
Every exported row names the meter, the seqs and times of the readings its
boundaries rest on, and their original COSE bytes (hex), so anyone holding
the meter's public key can check the row against what the meter signed
(`kapok verify`).
"""

import csv
import io
import re
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, literal, or_, select
from sqlalchemy.orm import Session

from .. import billing
from ..errors import Invalid
from ..models import Building, Community, Device, Message, Reading, Unit

# utility -> (device kind, reading name, unit of measure)
UTILITIES = {
    "gas": ("gas-meter", "vol", "m3"),
    "water": ("water-meter", "vol", "m3"),
    "electricity": ("electricity-meter", "energy", "kWh"),
}
# register roll-over points when a device does not set its own
DEFAULT_CAPACITY = {"gas-meter": 100000.0, "water-meter": 100000.0, "electricity-meter": 1e6}

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_bounds(month: str, timezone: str) -> tuple[float, float]:
    """Unix times of the first instant of `month` (YYYY-MM) and of the next."""
    m = MONTH.match(month)
    if not m:
        raise Invalid("month must be YYYY-MM")
    year, mon = int(m.group(1)), int(m.group(2))
    tz = ZoneInfo(timezone)
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
    return start.timestamp(), end.timestamp()


class _Meter(NamedTuple):
    id: str
    kind: str
    unit_id: int
    register_capacity: float | None
    removed_at: float | None


def _neighbours(session: Session, *, kind: str, name: str, unit_ids, start: float, end: float):
    """Per meter of `kind` on the units, active during [start, end): its
    part's start and end instants and the ids of the readings either side."""
    ps = case((Device.installed_at > start, Device.installed_at), else_=literal(start))
    pe = case(
        (and_(Device.removed_at.is_not(None), Device.removed_at < end), Device.removed_at),
        else_=literal(end),
    )
    own = (
        Reading.device_id == Device.id,
        Reading.name == name,
        Reading.t >= Device.installed_at,
        or_(Device.removed_at.is_(None), Reading.t <= Device.removed_at),
    )

    def seek(at, side):
        if side == "before":
            cond, order = Reading.t <= at, (Reading.t.desc(), Reading.id.desc())
        else:
            cond, order = Reading.t >= at, (Reading.t, Reading.id)
        return (
            select(Reading.id)
            .where(*own, cond)
            .order_by(*order)
            .limit(1)
            .correlate(Device)
            .scalar_subquery()
        )

    stmt = (
        select(
            Device.id,
            Device.kind,
            Device.unit_id,
            Device.register_capacity,
            Device.removed_at,
            ps.label("ps"),
            pe.label("pe"),
            seek(ps, "before"),
            seek(ps, "after"),
            seek(pe, "before"),
            seek(pe, "after"),
        )
        .where(
            Device.kind == kind,
            Device.unit_id.in_(unit_ids),
            Device.installed_at < end,
            or_(Device.removed_at.is_(None), Device.removed_at > start),
        )
        .order_by(Device.unit_id, Device.installed_at, Device.id)
    )
    return session.execute(stmt).all()


def monthly(
    session: Session,
    *,
    community: Community,
    month: str,
    window: float,
    utilities: list[str] | None = None,
    building_id: int | None = None,
    with_cose: bool = True,
) -> list[dict]:
    """One entry per unit and utility that has a meter in the month.
    `with_cose`: give each boundary reading's original COSE bytes (hex)."""
    start, end = month_bounds(month, community.timezone)
    units_stmt = (
        select(Unit.id, Unit.name, Building.name)
        .join(Building, Building.id == Unit.building_id)
        .where(Building.community_id == community.id)
        .order_by(Building.name, Unit.name)
    )
    if building_id is not None:
        units_stmt = units_stmt.where(Building.id == building_id)
    units = {unit_id: (unit, building) for unit_id, unit, building in session.execute(units_stmt)}
    if not units:
        return []
    rows = []
    for utility in utilities or list(UTILITIES):
        kind, name, uom = UTILITIES[utility]
        found = _neighbours(
            session, kind=kind, name=name, unit_ids=list(units), start=start, end=end
        )
        ids = {i for row in found for i in row[7:] if i is not None}
        readings = {}
        if ids:
            # plain rows, not ORM objects: a bill reads thousands of them
            cose = Message.cose if with_cose else literal(None)
            stmt = select(Reading.id, Reading.t, Reading.value, Reading.seq, cose)
            if with_cose:
                stmt = stmt.join(Message, Message.id == Reading.message_id)
            for reading_id, t, value, seq, raw in session.execute(stmt.where(Reading.id.in_(ids))):
                readings[reading_id] = billing.Point(t, value, (seq, t, raw))

        by_unit: dict[int, list] = {}
        for row in found:
            device, (ps, pe, bs, as_, be, ae) = _Meter(*row[:5]), row[5:]
            cap = device.register_capacity or DEFAULT_CAPACITY[device.kind]
            s = billing.boundary(
                ps, readings.get(bs), readings.get(as_), capacity=cap, window=window
            )
            removed = device.removed_at is not None and device.removed_at <= end
            e = billing.boundary(
                pe,
                readings.get(be),
                readings.get(ae),
                capacity=cap,
                window=window,
                final=removed and pe == device.removed_at,
            )
            by_unit.setdefault(device.unit_id, []).append(
                (device, billing.part(s, e, capacity=cap))
            )
        for unit_id, parts in by_unit.items():
            unit_name, building_name = units[unit_id]
            amount, flag = billing.total([p for _, p in parts])
            notes = []
            if len(parts) > 1:
                notes.append("replaced")
            if any(p.rollover for _, p in parts):
                notes.append("rollover")
            rows.append(
                {
                    "month": month,
                    "building": building_name,
                    "unit": unit_name,
                    "unit_id": unit_id,
                    "utility": utility,
                    "uom": uom,
                    "consumption": amount,
                    "status": flag,
                    "notes": notes,
                    "parts": [_part_json(device, p) for device, p in parts],
                }
            )
    rows.sort(key=lambda r: (r["building"], r["unit"], list(UTILITIES).index(r["utility"])))
    return rows


def _boundary_json(b: billing.Boundary) -> dict:
    readings = []
    for p in b.used:
        seq, t, raw = p.ref
        reading = {"seq": seq, "t": t, "value": p.v}
        if raw is not None:
            reading["cose"] = raw.hex()
        readings.append(reading)
    return {"at": b.at, "value": b.value, "flag": b.flag, "readings": readings}


def _part_json(device: "_Meter", p: billing.Part) -> dict:
    return {
        "device": device.id,
        "start": _boundary_json(p.start),
        "end": _boundary_json(p.end),
        "consumption": p.consumption,
        "status": p.flag,
        "rollover": p.rollover,
    }


# ------------------------------------------------------------ export

COLUMNS = (
    "month",
    "building",
    "unit",
    "utility",
    "uom",
    "device",
    "start_time",
    "start_value",
    "start_flag",
    "start_seq",
    "start_reading_time",
    "start_cose",
    "end_time",
    "end_value",
    "end_flag",
    "end_seq",
    "end_reading_time",
    "end_cose",
    "consumption",
    "unit_total",
    "status",
    "notes",
)

HEADERS = {
    "en": {
        "month": "Month",
        "building": "Building",
        "unit": "Unit",
        "utility": "Utility",
        "uom": "Unit of measure",
        "device": "Meter",
        "start_time": "Start",
        "start_value": "Start register",
        "start_flag": "Start flag",
        "start_seq": "Start reading seq",
        "start_reading_time": "Start reading time",
        "start_cose": "Start reading COSE (hex)",
        "end_time": "End",
        "end_value": "End register",
        "end_flag": "End flag",
        "end_seq": "End reading seq",
        "end_reading_time": "End reading time",
        "end_cose": "End reading COSE (hex)",
        "consumption": "Consumption",
        "unit_total": "Unit total",
        "status": "Status",
        "notes": "Notes",
    },
    "zh-CN": {
        "month": "月份",
        "building": "楼栋",
        "unit": "房号",
        "utility": "类别",
        "uom": "计量单位",
        "device": "表号",
        "start_time": "起始时间",
        "start_value": "起始读数",
        "start_flag": "起始读数标记",
        "start_seq": "起始读数序号",
        "start_reading_time": "起始读数抄表时间",
        "start_cose": "起始读数签名原文（十六进制）",
        "end_time": "截止时间",
        "end_value": "截止读数",
        "end_flag": "截止读数标记",
        "end_seq": "截止读数序号",
        "end_reading_time": "截止读数抄表时间",
        "end_cose": "截止读数签名原文（十六进制）",
        "consumption": "用量",
        "unit_total": "本户合计",
        "status": "状态",
        "notes": "备注",
    },
}

WORDS = {
    "en": {},
    "zh-CN": {
        "gas": "燃气",
        "water": "水",
        "electricity": "电",
        billing.ACTUAL: "实抄",
        billing.ESTIMATED: "估算",
        billing.MISSING: "缺失",
        "replaced": "换表",
        "rollover": "表码翻转",
        "m3": "立方米",
        "kWh": "千瓦时",
    },
}
LANGUAGES = tuple(HEADERS)


def _iso(t: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def export_rows(rows: list[dict], *, lang: str, timezone: str) -> list[list]:
    """Header and one row per meter part, in `lang`."""
    if lang not in HEADERS:
        raise Invalid(f"lang must be one of {', '.join(LANGUAGES)}")
    tz = ZoneInfo(timezone)
    words = WORDS[lang]

    def w(x):
        return words.get(x, x)

    out = [[HEADERS[lang][c] for c in COLUMNS]]
    for row in rows:
        for p in row["parts"]:
            cells = {
                "month": row["month"],
                "building": row["building"],
                "unit": row["unit"],
                "utility": w(row["utility"]),
                "uom": w(row["uom"]),
                "device": p["device"],
                "consumption": _round(p["consumption"]),
                "unit_total": _round(row["consumption"]),
                "status": w(p["status"]),
                "notes": " ".join(w(n) for n in row["notes"]),
            }
            for side in ("start", "end"):
                b = p[side]
                used = b["readings"]
                cells[f"{side}_time"] = _iso(b["at"], tz)
                cells[f"{side}_value"] = _round(b["value"])
                cells[f"{side}_flag"] = w(b["flag"])
                cells[f"{side}_seq"] = " ".join(str(r["seq"]) for r in used)
                cells[f"{side}_reading_time"] = " ".join(_iso(r["t"], tz) for r in used)
                cells[f"{side}_cose"] = " ".join(r["cose"] for r in used)
            out.append(["" if cells[c] is None else cells[c] for c in COLUMNS])
    return out


def to_csv(table: list[list]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(table)
    # BOM: spreadsheet programs then read the Chinese text as UTF-8
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(table: list[list], *, title: str) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    for row in table:
        ws.append(row)
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
