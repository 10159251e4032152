"""Home Assistant discovery payloads against Home Assistant's own schemas,
encoded here as tables; and the value templates rendered with Jinja2 the
way Home Assistant renders them. No broker needed.

Sources (home-assistant/core, the MQTT integration and the entity platforms;
home-assistant/home-assistant.io for the docs of the same keys):
- homeassistant/components/mqtt/config.py    MQTT_BASE_SCHEMA, MQTT_RO_SCHEMA, MQTT_RW_SCHEMA
- homeassistant/components/mqtt/schemas.py   MQTT_ENTITY_COMMON_SCHEMA, MQTT_AVAILABILITY_*,
                                             MQTT_ENTITY_DEVICE_INFO_SCHEMA, MQTT_ORIGIN_INFO_SCHEMA
- homeassistant/components/mqtt/sensor.py    _PLATFORM_SCHEMA_BASE (+ last_reset/options rules)
- homeassistant/components/mqtt/binary_sensor.py, valve.py, siren.py, switch.py  the same
- homeassistant/components/mqtt/discovery.py TOPIC_MATCHER
- homeassistant/components/sensor/const.py   SensorDeviceClass, DEVICE_CLASS_UNITS,
                                             DEVICE_CLASS_STATE_CLASSES
- homeassistant/components/binary_sensor/__init__.py  BinarySensorDeviceClass
- homeassistant/components/valve/__init__.py ValveDeviceClass (water, gas)
- source/_integrations/{sensor,binary_sensor,valve,siren,switch}.mqtt.markdown
"""

import json
import re

import jinja2
import pytest

from kapok.edge_agent.config import MqttTarget
from kapok.edge_agent.mqtt import discovery as d
from kapok.protocols import messages, senml

# -- the tables ---------------------------------------------------------------

BASE = {"qos", "encoding", "group"}  # MQTT_BASE_SCHEMA
AVAILABILITY = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "payload_available",
    "payload_not_available",
}
COMMON = AVAILABILITY | {  # MQTT_ENTITY_COMMON_SCHEMA
    "device",
    "origin",
    "enabled_by_default",
    "entity_category",
    "entity_picture",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "object_id",
    "default_entity_id",
    "unique_id",
}
RO = {"state_topic", "value_template"}  # MQTT_RO_SCHEMA: state_topic required
RW = {"command_topic", "optimistic", "retain", "state_topic"}  # MQTT_RW_SCHEMA: command_topic

SCHEMA = {
    # component: (required keys, allowed keys)
    "sensor": (
        {"state_topic"},
        BASE
        | COMMON
        | RO
        | {
            "device_class",
            "expire_after",
            "force_update",
            "last_reset_value_template",
            "name",
            "options",
            "suggested_display_precision",
            "state_class",
            "unit_of_measurement",
        },
    ),
    "binary_sensor": (
        {"state_topic"},
        BASE
        | COMMON
        | RO
        | {"device_class", "expire_after", "force_update", "name", "off_delay"}
        | {"payload_on", "payload_off"},
    ),
    "valve": (
        set(),
        BASE
        | COMMON
        | {
            "command_topic",
            "command_template",
            "device_class",
            "name",
            "optimistic",
            "payload_close",
            "payload_open",
            "payload_stop",
            "position_closed",
            "position_open",
            "reports_position",
            "retain",
            "state_closed",
            "state_closing",
            "state_open",
            "state_opening",
            "state_topic",
            "value_template",
        },
    ),
    "siren": (
        {"command_topic"},
        BASE
        | COMMON
        | RW
        | {
            "available_tones",
            "command_template",
            "command_off_template",
            "name",
            "payload_off",
            "payload_on",
            "state_off",
            "state_on",
            "state_value_template",
            "support_duration",
            "support_volume_set",
        },
    ),
    "switch": (  # not emitted: valves and sirens have components of their own
        {"command_topic"},
        BASE
        | COMMON
        | RW
        | {"command_template", "device_class", "name", "payload_off", "payload_on"}
        | {"state_off", "state_on", "value_template"},
    ),
}
SENSOR_DEVICE_CLASSES = {
    *("date", "enum", "timestamp", "apparent_power", "aqi", "area", "atmospheric_pressure"),
    *("battery", "blood_glucose_concentration", "carbon_monoxide", "carbon_dioxide"),
    *("conductivity", "current", "data_rate", "data_size", "distance", "duration", "energy"),
    *("energy_distance", "energy_storage", "frequency", "gas", "humidity", "illuminance"),
    *("irradiance", "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide"),
    *("nitrous_oxide", "ozone", "ph", "pm1", "pm10", "pm25", "power_factor", "power"),
    *("precipitation", "precipitation_intensity", "pressure", "reactive_power"),
    *("signal_strength", "sound_pressure", "speed", "sulphur_dioxide", "temperature"),
    *("temperature_delta", "volatile_organic_compounds", "volatile_organic_compounds_parts"),
    *("voltage", "volume", "volume_storage", "volume_flow_rate", "water", "weight"),
    *("wind_direction", "wind_speed"),
}
# DEVICE_CLASS_UNITS and DEVICE_CLASS_STATE_CLASSES, for the classes Kapok uses
SENSOR_UNITS = {
    "gas": {"m³", "ft³", "CCF"},
    "water": {"m³", "L", "ft³", "CCF", "gal"},
    "volume": {"mL", "L", "m³", "ft³", "CCF", "fl. oz.", "gal"},
    "volume_flow_rate": {"m³/h", "ft³/min", "L/min", "gal/min", "mL/s"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh"},
    "ph": {None},
    "conductivity": {"S/cm", "mS/cm", "µS/cm"},
    "temperature": {"°C", "°F", "K"},
    "humidity": {"%"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "signal_strength": {"dB", "dBm"},
}
SENSOR_STATE_CLASSES = {
    "gas": {"total", "total_increasing"},
    "water": {"total", "total_increasing"},
    "volume": {"total", "total_increasing"},
    "energy": {"total", "total_increasing"},
    "volume_flow_rate": {"measurement"},
    "ph": {"measurement"},
    "conductivity": {"measurement"},
    "temperature": {"measurement"},
    "humidity": {"measurement"},
    "voltage": {"measurement"},
    "signal_strength": {"measurement"},
    None: {"measurement", "total", "total_increasing"},
}
BINARY_SENSOR_DEVICE_CLASSES = {
    *("battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door"),
    *("garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving"),
    *("occupancy", "opening", "plug", "power", "presence", "problem", "running", "safety"),
    *("smoke", "sound", "tamper", "update", "vibration", "window"),
}
DEVICE_CLASSES = {
    "sensor": SENSOR_DEVICE_CLASSES,
    "binary_sensor": BINARY_SENSOR_DEVICE_CLASSES,
    "valve": {"water", "gas"},
    "siren": set(),  # sirens have none
    "switch": {"outlet", "switch"},
}
DEVICE_KEYS = {
    *("identifiers", "connections", "manufacturer", "model", "model_id", "name"),
    *("hw_version", "serial_number", "sw_version", "via_device", "suggested_area"),
    "configuration_url",
}
TOPIC_MATCHER = re.compile(  # discovery.py, with the prefix in front
    r"(?P<prefix>\w+)/(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)"
    r"?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)
# valid_subscribe_topic / valid_publish_topic: no wildcards in what we name
VALID_TOPIC = re.compile(r"^[^#+\x00]+$")

# -- every payload the bridge can emit ------------------------------------------

TOPICS = d.Topics("gw-3")
KINDS = [*d.KINDS, None]
ALL_KEYS = [*d.READINGS, *d.EVENTS, *d.ACTUATORS]
CASES = [(kind, key) for kind in KINDS for key in d.keys_for(kind, ALL_KEYS)]


def check_config(topic: str, payload: dict) -> None:
    m = TOPIC_MATCHER.fullmatch(topic)
    assert m and m["prefix"] == "homeassistant", topic
    component = m["component"]
    assert component in SCHEMA and component != "switch", topic
    required, allowed = SCHEMA[component]
    keys = set(payload)
    assert required <= keys, f"{topic}: missing {required - keys}"
    assert keys <= allowed, f"{topic}: not in Home Assistant's schema: {keys - allowed}"
    for key in keys & {"state_topic", "command_topic"}:
        assert VALID_TOPIC.match(payload[key]), payload[key]
    # device: at least one identifier (validate_device_has_at_least_one_identifier)
    assert set(payload["device"]) <= DEVICE_KEYS
    assert payload["device"]["identifiers"]
    assert payload["origin"]["name"]  # MQTT_ORIGIN_INFO_SCHEMA: name required
    assert payload["availability_mode"] in {"all", "any", "latest"}
    assert all(set(a) <= {"topic", "payload_available", "payload_not_available", "value_template"}
               and a["topic"] for a in payload["availability"])  # fmt: skip
    assert "availability_topic" not in payload  # exclusive with `availability`
    assert payload.get("entity_category") in (None, "config", "diagnostic")
    assert payload["qos"] in (0, 1, 2)
    device_class = payload.get("device_class")
    if device_class is not None:
        assert device_class in DEVICE_CLASSES[component], (topic, device_class)
    if component == "sensor":
        unit = payload.get("unit_of_measurement")
        state_class = payload["state_class"]
        if device_class in SENSOR_UNITS:
            assert unit in SENSOR_UNITS[device_class], (topic, unit)
        assert state_class in SENSOR_STATE_CLASSES[device_class], (topic, state_class)
        assert "last_reset_value_template" not in payload or state_class == "total"
        assert "options" not in payload
    if component == "valve":
        # reports_position: payload_open/payload_close/state_* are not allowed
        assert payload["reports_position"] is False
        assert payload["payload_open"] is None  # Home Assistant offers no "open"
        assert payload["payload_close"] == d.VALVE_CLOSE
    if component == "binary_sensor":
        assert isinstance(payload["off_delay"], int) and payload["off_delay"] > 0


@pytest.mark.parametrize(("kind", "key"), CASES, ids=[f"{k}:{e}" for k, e in CASES])
def test_discovery_payload_fits_home_assistants_schema(kind, key):
    payload = d.config_payload(TOPICS, "gm-0001a3", kind, key, fw="1.2.0")
    check_config(TOPICS.config("gm-0001a3", key), json.loads(d.dumps(payload)))


def test_registers_are_total_increasing_with_the_right_device_class():
    want = {
        ("gas-meter", "vol"): ("gas", "m³"),
        ("water-meter", "vol"): ("water", "m³"),
        ("water-meter", "rev"): ("water", "m³"),
        ("electricity-meter", "energy"): ("energy", "kWh"),
    }
    for (kind, key), (device_class, unit) in want.items():
        p = d.config_payload(TOPICS, "m-1", kind, key)
        assert (p["device_class"], p["unit_of_measurement"], p["state_class"]) == (
            device_class,
            unit,
            "total_increasing",
        )
    assert d.config_payload(TOPICS, "gm-1", "gas-meter", "valve")["device_class"] == "gas"
    assert d.config_payload(TOPICS, "hub-1", "hub", "door.open")["device_class"] == "door"
    assert d.config_payload(TOPICS, "hub-1", "hub", "smoke")["device_class"] == "smoke"


def test_every_kind_has_its_actuators_and_alarms():
    assert "siren" in d.keys_for("hub")
    assert "gas.leak" in d.keys_for("gas-meter")
    assert "valve" not in d.keys_for("gas-meter")  # only once a valve reading arrives
    assert "valve" in d.keys_for("gas-meter", ["valve", "fw", "boot"])
    assert "fw" not in d.keys_for("gas-meter", ["fw"])  # it is sw_version, not an entity


# -- the templates, rendered as Home Assistant renders them ------------------

ENV = jinja2.Environment()


def render(template: str, payload: dict) -> str:
    return ENV.from_string(template).render(value_json=payload, value=json.dumps(payload))


def state(**values) -> dict:
    readings = [senml.record(n, v) for n, v in values.items()]
    uplink = messages.parse_uplink(messages.build_uplink(7, 1767225600, records=readings), "x-1")
    (one,) = d.state_payloads(uplink, 1767225601)
    return json.loads(d.dumps(one))


def template(kind, key):
    return d.config_payload(TOPICS, "x-1", kind, key)["value_template"]


def test_value_templates_convert_units_and_ignore_missing_readings():
    s = state(vol=12.5, flow=0.0002, cond=0.05, rssi=-100.0, valve=False)
    assert s["seq"] == 7 and s["t"] == 1767225600 and s["vol"] == 12.5
    assert float(render(template("gas-meter", "vol"), s)) == 12.5
    assert float(render(template("water-meter", "flow"), s)) == pytest.approx(0.72)  # m³/h
    assert float(render(template("water-quality", "cond"), s)) == pytest.approx(0.5)  # mS/cm
    assert float(render(template("gas-meter", "rssi"), s)) == pytest.approx(-70)  # dBm
    assert render(template("gas-meter", "valve"), s) == "closed"
    assert render(template("gas-meter", "valve"), state(valve=True)) == "open"
    # a reading this uplink does not carry: "" (Home Assistant ignores it)
    assert render(template("gas-meter", "bat"), s) == ""
    assert render(template("gas-meter", "valve"), state(vol=1.0)) == ""


def test_an_event_switches_its_binary_sensor_only():
    uplink = messages.parse_uplink(
        messages.build_uplink(9, events=[("gas.leak", 1767225600, 23.5)]), "gm-1"
    )
    (event,) = d.event_payloads(uplink, 1767225601)
    assert event == {"seq": 9, "code": "gas.leak", "t": 1767225600, "rx": 1767225601, "value": 23.5}
    assert render(template("gas-meter", "gas.leak"), event) == "ON"
    assert render(template("hub", "smoke"), event) == ""


def test_buffered_readings_become_one_state_per_reading_time():
    records = senml.pack([senml.record("vol", 1.0, t=-7200), senml.record("vol", 2.0, t=-3600)])
    records += [senml.record("vol", 3.0), senml.record("bat", 3.3)]
    uplink = messages.parse_uplink(messages.build_uplink(5, 1767225600, records=records), "wm-1")
    states = d.state_payloads(uplink, 1767225605)
    assert [(s["t"], s["vol"]) for s in states] == [
        (1767218400, 1.0),
        (1767222000, 2.0),
        (1767225600, 3.0),
    ]
    assert states[-1]["bat"] == pytest.approx(3.3)


def test_topics_and_command_topics():
    t = d.Topics("gw 3/x")  # whatever the registry says, topic levels stay safe
    assert t.gateway == "gw_3_x"
    assert t.device("gm-1", "state") == "kapok/gw_3_x/gm-1/state"
    assert t.parse_command("kapok/gw_3_x/gm-1/valve/set") == ("gm-1", "valve")
    assert t.parse_command("kapok/gw_3_x/hub-1/siren/set") == ("hub-1", "siren")
    assert t.parse_command("kapok/other/gm-1/valve/set") is None
    assert t.parse_command("kapok/gw_3_x/gm-1/state") is None
    assert (
        t.config("gm-1", "gas.leak")
        == "homeassistant/binary_sensor/kapok_gw_3_x_gm-1/gas_leak/config"
    )


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("mqtt://127.0.0.1", MqttTarget("127.0.0.1", 1883)),
        ("mqtt://broker.local:1884", MqttTarget("broker.local", 1884)),
        ("mqtts://ha:s%40cret@[::1]", MqttTarget("::1", 8883, True, "ha", "s@cret")),
    ],
)
def test_broker_urls(url, want):
    target = MqttTarget.parse(url)
    assert target == want
    assert "cret" not in str(target)


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "mqtt://x:99999", "mqtt://x/topic", "x"])
def test_bad_broker_urls(url):
    with pytest.raises(ValueError):
        MqttTarget.parse(url)
