"""The dashboard's languages: message catalogues and how numbers, units and
times are written.

Catalogues are flat JSON files in `locales/` (`zh-CN.json` is the default,
`en.json` the English switch), one key per visible string, `{name}`
placeholders filled with `str.format`. A feature may keep its strings in a
file of its own, `locales/<lang>/<feature>.json`, merged into the language's
catalogue (a key defined twice is an error). The tests check both files have the
same keys and placeholders, and that every key the templates use exists.
"""

import json
import math
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

LOCALES = Path(__file__).resolve().parent / "locales"
LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"

# SenML units as people write them
UNIT_LABELS = {
    "m3": "m³",
    "m3/s": "m³/s",
    "kWh": "kWh",
    "pH": "pH",
    "NTU": "NTU",
    "mg/l": "mg/L",
    "S/m": "S/m",
    "Cel": "°C",
    "%RH": "%RH",
    "V": "V",
    "dBW": "dBW",
    "%LEL": "%LEL",
}
# decimals shown per reading name (registers to the litre / watt-hour)
DECIMALS = {
    "vol": 3,
    "rev": 3,
    "energy": 2,
    "flow": 6,
    "ph": 2,
    "turb": 2,
    "cl": 2,
    "cond": 3,
    "temp": 1,
    "hum": 0,
    "bat": 2,
    "rssi": 0,
    "ch4": 1,
}


@cache
def catalogue(lang: str) -> dict[str, str]:
    with open(LOCALES / f"{lang}.json", encoding="utf-8") as f:
        messages = json.load(f)
    for part in sorted((LOCALES / lang).glob("*.json")):
        with open(part, encoding="utf-8") as f:
            extra = json.load(f)
        twice = sorted(set(extra) & set(messages))
        if twice:
            raise ValueError(f"{part.name} redefines {', '.join(twice)}")
        messages.update(extra)
    return messages


def pick_language(*candidates: str | None) -> str:
    """The first candidate that is a language we speak, else the default."""
    for lang in candidates:
        if lang in LANGUAGES:
            return lang
    return DEFAULT_LANGUAGE


class Translator:
    """`_("key", name=value)` in templates; formatting helpers for one
    language and one display time zone."""

    def __init__(self, lang: str, timezone: str):
        self.lang = lang
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.messages = catalogue(lang)

    def __call__(self, key: str, **values) -> str:
        text = self.messages.get(key)
        if text is None:
            # a missing key shows itself rather than breaking the page; the
            # catalogue tests keep this from reaching users
            return key
        return text.format(**values) if values else text

    def maybe(self, prefix: str, code: str | None) -> str:
        """The translation of `prefix.code` when the catalogue has it, else
        the code itself (event codes, states and kinds added later)."""
        if code is None:
            return ""
        return self.messages.get(f"{prefix}.{code}", code)

    def alarm_detail(self, code: str, value) -> str:
        """An alarm's value as a sentence ("silent for 3 min, last seen 21:25")."""
        from .alarm_text import detail

        return detail(self, code, value)

    # ------------------------------------------------------------ times

    def when(self, t: float | None, *, seconds: bool = False) -> str:
        if t is None:
            return "—"
        fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
        return datetime.fromtimestamp(t, self.tz).strftime(fmt)

    def iso(self, t: float | None) -> str:
        if t is None:
            return ""
        return datetime.fromtimestamp(t, self.tz).isoformat(timespec="seconds")

    def ago(self, t: float | None, now: float) -> str:
        if t is None:
            return self("time.never")
        s = now - t
        if s < 0:
            return self("time.future")
        if s < 60:
            return self("time.just_now")
        if s < 3600:
            return self("time.minutes_ago", n=int(s // 60))
        if s < 86400:
            return self("time.hours_ago", n=int(s // 3600))
        return self("time.days_ago", n=int(s // 86400))

    # ------------------------------------------------------------ numbers

    def number(self, value, decimals: int = 2) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return self("valve.open") if value else self("valve.closed")
        if isinstance(value, str):
            return value
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.{decimals}f}"

    def reading(self, name: str, value, unit: str | None = None) -> str:
        """A reading's value with its unit, as shown in tables."""
        if name == "valve" and value is not None:
            return self("valve.open") if value else self("valve.closed")
        text = self.number(value, DECIMALS.get(name, 2))
        if value is None or isinstance(value, str):
            return text
        label = unit_label(unit)
        if label == "pH":
            return text  # pH is a scale, not a unit one writes after the number
        return f"{text} {label}" if label else text

    def percent(self, ratio: float | None) -> str:
        if ratio is None:
            return "—"
        return f"{ratio * 100:.1f}%"

    def reading_name(self, name: str) -> str:
        return self.maybe("reading", name)


def unit_label(unit: str | None) -> str:
    if not unit:
        return ""
    return UNIT_LABELS.get(unit, unit)
