"""Scripted incidents: what happens to which node, when.

The grammar is one line per incident:

    KIND@TARGET+TIME[~LASTS]

    KIND    gas-leak    methane at a gas meter (its valve shuts, gas.leak)
            water-leak  water on a water meter's leak probe (valve shuts)
            smoke       smoke at a hub (siren, smoke alarm)
            quality     turbidity at a water-quality station (quality.turb)
            silent      a node stops sending (flat battery, radio gone)
    TARGET  a device id (gm-0007, wq-1), or unit-N for the N-th unit of the
            simulated community (the device of that unit the kind is about)
    TIME    when, from the start of the simulation: 90, 90s, 2m, 1h
    LASTS   how long it lasts (default: gas-leak 5m, water-leak 5m, smoke
            2m, quality 10m, silent for good); the hazard then clears
            (a shut valve stays shut until someone opens it)

e.g. `gas-leak@unit-3+60s`, `quality@wq-1+2m~5m`, `silent@wm-0005+30s`.
A script file holds such lines (`#` starts a comment), or a JSON list of
them or of objects {"kind", "target", "at", "lasts"} (seconds).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

KINDS = ("gas-leak", "water-leak", "smoke", "quality", "silent")
# the kind of device each incident happens to
DEVICE_KIND = {
    "gas-leak": "gas-meter",
    "water-leak": "water-meter",
    "smoke": "hub",
    "quality": "water-quality",
    "silent": None,  # any
}
DEFAULT_LASTS = {"gas-leak": 300, "water-leak": 300, "smoke": 120, "quality": 600, "silent": None}
_LINE = re.compile(
    r"^(?P<kind>[a-z-]+)@(?P<target>[a-z0-9-]+)\+(?P<at>\d+(?:\.\d+)?[smh]?)"
    r"(?:~(?P<lasts>\d+(?:\.\d+)?[smh]?))?$"
)
_UNIT = {"s": 1, "m": 60, "h": 3600, "": 1}


class IncidentError(ValueError):
    pass


def seconds(text: str) -> float:
    """ "90", "90s", "2m", "1.5h" -> seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text.strip())
    if not m:
        raise IncidentError(f"bad time {text!r}: write 90, 90s, 2m or 1h")
    return float(m.group(1)) * _UNIT[m.group(2)]


@dataclass(frozen=True)
class Incident:
    kind: str
    target: str
    at: float  # seconds from the start
    lasts: float | None  # None: for good

    def __post_init__(self):
        if self.kind not in KINDS:
            raise IncidentError(f"unknown incident {self.kind!r}: one of {', '.join(KINDS)}")
        if self.at < 0 or (self.lasts is not None and self.lasts <= 0):
            raise IncidentError(f"{self}: times must be positive")

    def __str__(self) -> str:
        lasts = "" if self.lasts is None else f"~{self.lasts:g}s"
        return f"{self.kind}@{self.target}+{self.at:g}s{lasts}"

    def describe(self) -> str:
        """In words, e.g. "a gas leak at unit 3 after 10 s (for 3 min)"."""
        where = f"unit {self.unit_index}" if self.unit_index is not None else self.target
        what = {
            "gas-leak": f"a gas leak at {where}",
            "water-leak": f"a water leak at {where}",
            "smoke": f"smoke at {where}",
            "quality": f"a water-quality excursion at {where}",
            "silent": f"{where} goes silent",
        }[self.kind]
        lasts = "" if self.lasts is None else f" (for {_span(self.lasts)})"
        return f"{what} after {_span(self.at)}{lasts}"

    @property
    def unit_index(self) -> int | None:
        """N for a target unit-N."""
        m = re.fullmatch(r"unit-(\d+)", self.target)
        return int(m.group(1)) if m else None


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def parse(text: str) -> Incident:
    m = _LINE.match(text.strip())
    if not m:
        raise IncidentError(
            f"bad incident {text!r}: write KIND@TARGET+TIME, e.g. gas-leak@unit-3+60s"
        )
    kind = m.group("kind")
    if kind not in KINDS:
        raise IncidentError(f"unknown incident {kind!r}: one of {', '.join(KINDS)}")
    lasts = seconds(m.group("lasts")) if m.group("lasts") else DEFAULT_LASTS[kind]
    return Incident(kind, m.group("target"), seconds(m.group("at")), lasts)


def _from_json(item) -> Incident:
    if isinstance(item, str):
        return parse(item)
    if not isinstance(item, dict) or not {"kind", "target", "at"} <= set(item):
        raise IncidentError(f"bad incident {item!r}: an object needs kind, target and at")
    kind = item["kind"]
    if kind not in KINDS:
        raise IncidentError(f"unknown incident {kind!r}: one of {', '.join(KINDS)}")
    try:
        lasts = item.get("lasts", DEFAULT_LASTS[kind])
        return Incident(
            kind,
            str(item["target"]),
            float(item["at"]),
            None if lasts is None else float(lasts),
        )
    except (TypeError, ValueError) as e:
        raise IncidentError(f"bad incident {item!r}: {e}") from None


def load(path: Path) -> list[Incident]:
    """The incidents of a script file (lines, or a JSON list)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise IncidentError(f"cannot read {path}: {e.strerror}") from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as e:
            raise IncidentError(f"{path}: not valid JSON ({e})") from None
        return [_from_json(item) for item in items]
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                out.append(parse(line))
            except IncidentError as e:
                raise IncidentError(f"{path}:{number}: {e}") from None
    return out


def gather(given: list[str]) -> list[Incident]:
    """--incident values: each an incident or a script file (@FILE or a
    path that exists)."""
    out = []
    for text in given:
        path = Path(text[1:] if text.startswith("@") and "+" not in text else text)
        if "+" not in text and path.is_file():
            out.extend(load(path))
        else:
            out.append(parse(text))
    return sorted(out, key=lambda i: i.at)
