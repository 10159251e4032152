"""What an alarm's value says, as a sentence in the viewer's language:
"silent for 3 h 5 min, last seen 21:25", "35 %LEL", "4.5 NTU".

One table: the event code -> (how its value reads, unit). A code not in the
table with a plain value shows the value; a value that is not a number, text
or a flag (a record from a newer node) shows nothing rather than raw data.
"""

import math

# code -> (catalogue key under "alarm.detail.", unit shown after the number)
DETAILS: dict[str, tuple[str, str]] = {
    "gas.leak": ("level", "%LEL"),
    "quality.turb": ("measured", "NTU"),
    "quality.cl": ("measured", "mg/L"),
    "quality.ph": ("measured", "pH"),
    "battery.low": ("measured", "V"),
    "flow.continuous": ("flowing_hours", ""),
    "outbox.dropped": ("dropped", ""),
    "fw.progress": ("percent", "%"),
    "fw.ok": ("version", ""),
    "fw.rollback": ("version", ""),
    "fw.fail": ("reason", ""),
}


def duration(t, seconds: float) -> str:
    """3 min, 2 h 5 min, 4 d 3 h in the catalogue's words."""
    s = max(0, int(seconds))
    if s < 60:
        return t("duration.seconds", n=s)
    minutes = s // 60
    if minutes < 60:
        return t("duration.minutes", n=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return t("duration.hours_minutes", h=hours, m=minutes)
    days, hours = divmod(hours, 24)
    return t("duration.days_hours", d=days, h=hours)


def _number(value) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}".rstrip("0").rstrip(".")


def detail(t, code: str, value) -> str:
    """The alarm's value as the viewer reads it ("" when it says nothing)."""
    if code == "silent" and isinstance(value, dict):
        silent = value.get("silent_seconds")
        seen = value.get("last_seen")
        if not isinstance(silent, int | float):
            return ""
        if isinstance(seen, int | float):
            return t("alarm.detail.silent", duration=duration(t, silent), when=t.when(seen))
        return t("alarm.detail.never_heard", duration=duration(t, silent))
    if value is None or isinstance(value, bool):
        return ""
    key, unit = DETAILS.get(code, ("value", ""))
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return ""
        return t(f"alarm.detail.{key}", value=_number(value), unit=unit).strip()
    if isinstance(value, str):
        return t(f"alarm.detail.{key}", value=value[:120], unit=unit).strip()
    return ""
