"""Home Assistant MQTT discovery for Kapok nodes, as data; and the topics and
JSON payloads the bridge publishes. Pure: no I/O, no clock.

Topics (docs/mqtt.md), `<gw>` the gateway id from the registry:

    kapok/<gw>/availability              online | offline, retained (the MQTT will)
    kapok/<gw>/<device>/availability     online | offline, retained: the node's last uplink
    kapok/<gw>/<device>/state            one reading time of one uplink, JSON, retained
    kapok/<gw>/<device>/event            one event, JSON, not retained
    kapok/<gw>/<device>/valve/set        Home Assistant -> gateway: CLOSE (OPEN is refused)
    kapok/<gw>/<device>/siren/set        Home Assistant -> gateway: ON (OFF is refused)
    kapok/<gw>/<device>/siren/state      ON | OFF: what the gateway last asked of the siren
    <prefix>/<component>/kapok_<gw>_<device>/<object_id>/config   discovery, retained

State and event payloads keep Kapok's own units (DESIGN's reading table);
the discovery `value_template`s convert where Home Assistant's device class
wants another unit (m3/s -> m³/h, S/m -> mS/cm, dBW -> dBm).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from kapok import __version__

TOPIC_ROOT = "kapok"
ONLINE, OFFLINE = "online", "offline"
# An alarm event switches its binary_sensor on; nodes send no "clear" (a
# contact or a threshold raises its event once per excursion), so Home
# Assistant turns it off again after this many seconds (`off_delay`).
ALARM_HOLD = 300
# The hub turns its siren off by itself after `siren_s` (firmware default).
SIREN_SECONDS = 180
VALVE_CLOSE = "CLOSE"
SIREN_ON, SIREN_OFF = "ON", "OFF"


@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity of a node. `device_class` "{medium}" is the
    medium of the node's kind (gas or water). Home Assistant's value is
    Kapok's value * scale + offset."""

    component: str  # sensor | binary_sensor | valve | siren
    name: str
    device_class: str | None = None
    unit: str | None = None
    state_class: str | None = None
    scale: float | None = None
    offset: float | None = None
    category: str | None = None  # entity_category


# Readings (DESIGN "Reading names"). Units and device classes are those of
# homeassistant/components/sensor/const.py (DEVICE_CLASS_UNITS and
# DEVICE_CLASS_STATE_CLASSES); registers are total_increasing.
READINGS = {
    "vol": Entity("sensor", "Volume", "{medium}", "m³", "total_increasing"),
    "rev": Entity("sensor", "Reverse volume", "{medium}", "m³", "total_increasing"),
    "flow": Entity("sensor", "Flow", "volume_flow_rate", "m³/h", "measurement", scale=3600),
    "energy": Entity("sensor", "Energy", "energy", "kWh", "total_increasing"),
    "ph": Entity("sensor", "pH", "ph", None, "measurement"),
    "turb": Entity("sensor", "Turbidity", None, "NTU", "measurement"),
    "cl": Entity("sensor", "Free chlorine", None, "mg/L", "measurement"),
    "cond": Entity("sensor", "Conductivity", "conductivity", "mS/cm", "measurement", scale=10),
    "temp": Entity("sensor", "Temperature", "temperature", "°C", "measurement"),
    "hum": Entity("sensor", "Humidity", "humidity", "%", "measurement"),
    "ch4": Entity("sensor", "Methane", None, "%LEL", "measurement"),
    "bat": Entity("sensor", "Battery", "voltage", "V", "measurement", category="diagnostic"),
    "rssi": Entity(
        "sensor",
        "Signal",
        "signal_strength",
        "dBm",
        "measurement",
        offset=30,  # dBW -> dBm
        category="diagnostic",
    ),
    # a meter's valve: its state is the `valve` reading (true = open)
    "valve": Entity("valve", "Valve", "{medium}"),
}
# "fw" is not an entity: it is the device's sw_version.

# Events (messages.EVENTS) that are alarms or faults; the others (boot, fw.*,
# outbox.dropped) are published on the event topic without an entity.
EVENTS = {
    "gas.leak": Entity("binary_sensor", "Gas leak", "gas"),
    "water.leak": Entity("binary_sensor", "Water leak", "moisture"),
    "smoke": Entity("binary_sensor", "Smoke", "smoke"),
    "door.open": Entity("binary_sensor", "Door", "door"),
    "sos": Entity("binary_sensor", "SOS", "safety"),
    "tamper": Entity("binary_sensor", "Tamper", "tamper"),
    "flow.continuous": Entity("binary_sensor", "Continuous flow", "problem"),
    "flow.reverse": Entity("binary_sensor", "Reverse flow", "problem"),
    "quality.ph": Entity("binary_sensor", "pH out of range", "problem"),
    "quality.turb": Entity("binary_sensor", "Turbidity out of range", "problem"),
    "quality.cl": Entity("binary_sensor", "Chlorine out of range", "problem"),
    "battery.low": Entity("binary_sensor", "Battery low", "battery", category="diagnostic"),
    "valve.fault": Entity("binary_sensor", "Valve fault", "problem", category="diagnostic"),
}

ACTUATORS = {"siren": Entity("siren", "Siren")}

# What every node of a kind shows from its first uplink on (what its
# firmware always reports, its alarms, the hub's siren); anything else (a
# flow or valve reading, a tamper event, ...) is announced when it first
# arrives.
KINDS = {
    "gas-meter": ("vol", "bat", "rssi", "gas.leak"),
    "water-meter": ("vol", "bat", "rssi", "water.leak"),
    "electricity-meter": ("energy", "rssi"),
    "water-quality": (
        *("ph", "turb", "cl", "cond", "temp", "bat", "rssi"),
        *("quality.ph", "quality.turb", "quality.cl"),
    ),
    "hub": ("temp", "hum", "rssi", "door.open", "water.leak", "smoke", "sos", "siren"),
}
MEDIUM = {"gas-meter": "gas", "water-meter": "water"}
VALVE_KINDS = ("gas-meter", "water-meter")
SIREN_KINDS = ("hub",)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe(name: str) -> str:
    """A topic level / discovery id: [A-Za-z0-9_-] only (no + # /)."""
    return _UNSAFE.sub("_", name) or "_"


def entity_for(key: str) -> Entity | None:
    return READINGS.get(key) or EVENTS.get(key) or ACTUATORS.get(key)


class Topics:
    def __init__(self, gateway: str, prefix: str = "homeassistant"):
        self.gateway = safe(gateway)
        self.prefix = prefix.strip("/")
        self.base = f"{TOPIC_ROOT}/{self.gateway}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    def device(self, device: str, leaf: str) -> str:
        return f"{self.base}/{safe(device)}/{leaf}"

    def commands(self) -> list[str]:
        return [f"{self.base}/+/valve/set", f"{self.base}/+/siren/set"]

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """(device, "valve" | "siren") for a command topic, else None."""
        parts = topic.split("/")
        ours = len(parts) == 5 and parts[:2] == [TOPIC_ROOT, self.gateway]
        if ours and parts[4] == "set" and parts[3] in ("valve", "siren"):
            return parts[2], parts[3]
        return None

    def node_id(self, device: str) -> str:
        return f"kapok_{self.gateway}_{safe(device)}"

    def config(self, device: str, key: str) -> str:
        entity = entity_for(key)
        return f"{self.prefix}/{entity.component}/{self.node_id(device)}/{safe(key)}/config"


def keys_for(kind: str | None, learned=()) -> list[str]:
    """The entity keys of a node: its kind's, then those seen since."""
    keys = list(KINDS.get(kind, ()))
    keys += [k for k in learned if k not in keys and entity_for(k) is not None]
    return keys


def _number(key: str, e: Entity) -> str:
    value = f"value_json['{key}']"
    if e.scale is not None:
        value = f"({value} * {e.scale:g}) | round(6)"
    if e.offset is not None:
        value = f"{value} + {e.offset:g}"
    # an uplink without this reading renders "", which Home Assistant ignores
    return f"{{% if '{key}' in value_json %}}{{{{ {value} }}}}{{% endif %}}"


def config_payload(
    topics: Topics, device: str, kind: str | None, key: str, *, fw: str | None = None
) -> dict:
    """The discovery config of one entity (Home Assistant's full key names)."""
    e = entity_for(key)
    if e is None:
        raise ValueError(f"no Home Assistant entity for {key!r}")
    medium = MEDIUM.get(kind)
    device_class = e.device_class
    if device_class == "{medium}":
        device_class = medium or ("volume" if e.component == "sensor" else None)
    info = {
        "identifiers": [f"kapok_{safe(device)}"],
        "name": device,
        "manufacturer": "Kapok",
        "model": kind or "node",
    }
    if fw:
        info["sw_version"] = fw
    out = {
        "name": e.name,
        "unique_id": f"{topics.node_id(device)}_{safe(key)}",
        "availability": [
            {"topic": topics.availability},
            {"topic": topics.device(device, "availability")},
        ],
        "availability_mode": "all",
        "device": info,
        "origin": {"name": "Kapok gateway agent", "sw_version": __version__},
        "qos": 1,
    }
    if device_class:
        out["device_class"] = device_class
    if e.category:
        out["entity_category"] = e.category
    if e.component == "sensor":
        out["state_topic"] = topics.device(device, "state")
        out["value_template"] = _number(key, e)
        if e.unit:
            out["unit_of_measurement"] = e.unit
        out["state_class"] = e.state_class
    elif e.component == "binary_sensor":
        out["state_topic"] = topics.device(device, "event")
        out["value_template"] = f"{{{{ 'ON' if value_json.code == '{key}' else '' }}}}"
        out["off_delay"] = ALARM_HOLD
    elif e.component == "valve":
        out["state_topic"] = topics.device(device, "state")
        out["value_template"] = (
            "{% if 'valve' in value_json %}"
            "{{ 'open' if value_json.valve else 'closed' }}{% endif %}"
        )
        out["command_topic"] = topics.device(device, "valve/set")
        out["payload_close"] = VALVE_CLOSE
        out["payload_open"] = None  # no "open" in Home Assistant: the gateway cannot sign it
        out["reports_position"] = False
    elif e.component == "siren":
        out["state_topic"] = topics.device(device, "siren/state")
        out["command_topic"] = topics.device(device, "siren/set")
        out["command_template"] = "{{ value }}"
        out["payload_on"] = SIREN_ON
        out["payload_off"] = SIREN_OFF
        out["support_duration"] = False
        out["support_volume_set"] = False
    return out


def dumps(payload) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def state_payloads(uplink: dict, rx: int) -> list[dict]:
    """The state messages of one parsed uplink: one per reading time (a
    message may carry hours of buffered readings), oldest first. Each is
    {"seq", "t" (reading time), "rx" (gateway receive time), name: value...}."""
    groups: dict[float, dict] = {}
    for r in uplink["readings"]:
        t = r["t"] if r.get("t") is not None else rx + r.get("dt", 0)
        value = r["v"] if "v" in r else r["vb"] if "vb" in r else r.get("vs")
        groups.setdefault(t, {"seq": uplink["seq"], "t": t, "rx": rx})[r["n"]] = value
    return [groups[t] for t in sorted(groups)]


def event_payloads(uplink: dict, rx: int) -> list[dict]:
    """{"seq", "code", "t", "rx", ? "value"} for each event of the uplink."""
    out = []
    for code, t, value in uplink["events"]:
        e = {"seq": uplink["seq"], "code": code, "t": t, "rx": rx}
        if value is not None:
            e["value"] = value
        out.append(e)
    return out
