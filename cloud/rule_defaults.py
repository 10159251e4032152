"""A community's rules and thresholds, as data: the defaults every community
starts from, and where each value comes from. A community's own rules are
versioned rows (models.RuleVersion, crud/rules.py) holding a document of
exactly this shape; a document names every key, so an old version reads the
same whatever the defaults become later.

Sources of the defaults:

- Water quality: GB 5749-2022 "Standards for drinking water quality"
  (生活饮用水卫生标准), in force since 2023-04-01.
  * Table 1 (water quality routine indicators), pH: not below 6.5 and not
    above 8.5.
  * Table 1, turbidity (浑浊度, scattering turbidity units): 1 NTU. Its
    footnote allows 3 NTU for small centralised and dispersed supplies
    where the source or the treatment technique limits it. Kapok ships
    1 NTU (a community network is fed by a city works); a community on a
    small or dispersed supply sets `quality.turb` to [null, 3].
  * Table 2 (disinfectant routine indicators), free chlorine (游离氯):
    at most 2 mg/L in works-outlet and tap water; at least 0.3 mg/L left
    at the works outlet and at least 0.05 mg/L at the tap. Kapok's
    stations sample the community's network, i.e. tap water: [0.05, 2].
    A station at a works outlet uses [0.3, 2].
  These are the limits the water-quality node itself watches
  (firmware/apps/rules.py GB5749): the same numbers on both sides.
- Battery low, 3.3 V: the knee of a lithium thionyl chloride (Li-SOCl2)
  primary cell under load, the battery of utility meters; the firmware's
  default (firmware/apps/meter.py BATTERY_LOW_V).
- Continuous flow: 6 h for gas (a burner left on or a leak), 24 h for water
  (a household's water stops some time every day, a running toilet does
  not); the meter firmware's defaults ("continuous_h"); 0 turns it off.
- Silent period: none per kind by default, i.e. the cloud's
  KAPOK_SILENT_FACTOR times each device's expected interval.
- Fail-safe rules: the rules every gateway has run since the first release
  (docs/gateway-api.md "Registry"); the agent keeps exactly these when it
  has never reached the cloud.
- Escalation: a critical alarm reaches the person on duty at once, the
  managers after 5 min and the emergency contacts after 15 min without
  acknowledgement (the issue's gas-leak example); major alarms the managers
  after 30 min; minor ones only the person on duty. No quiet hours.
- Auto-resolve: a silent device heard again resolves its alarm at once (as
  before rules existed); every other kind waits for a person. Life-safety
  alarms (gas.leak, smoke, sos) never resolve by themselves.
"""

import copy

SOURCE_GB5749 = "GB 5749-2022"

# reading name -> (event it raises, [low, high]); null = no bound
QUALITY_EVENTS = {"ph": "quality.ph", "turb": "quality.turb", "cl": "quality.cl"}
QUALITY_UNITS = {"ph": "pH", "turb": "NTU", "cl": "mg/L"}
# how far back inside the limits a reading must come to count as cleared
# (the firmware's hysteresis band, firmware/apps/rules.py BAND)
QUALITY_BAND = {"ph": 0.1, "turb": 0.1, "cl": 0.02}
BATTERY_BAND = 0.1

# device kinds that can be silent, and the meters with a continuous-flow watch
SILENT_KINDS = ("gas-meter", "water-meter", "electricity-meter", "water-quality", "hub")
FLOW_KINDS = ("gas-meter", "water-meter")

# alarms that a person must always resolve
LIFE_SAFETY = ("gas.leak", "smoke", "sos")

DEFAULTS = {
    "quality": {"ph": [6.5, 8.5], "turb": [None, 1.0], "cl": [0.05, 2.0]},
    "battery_low_v": 3.3,
    "continuous_flow_h": {"gas-meter": 6, "water-meter": 24},
    "silent_minutes": {},
    "failsafe": [
        {"event": "gas.leak", "op": "valve.close", "target": "self"},
        {"event": "gas.leak", "op": "siren.on", "target": "unit:hub"},
        {"event": "smoke", "op": "siren.on", "target": "unit:hub"},
        {"event": "smoke", "op": "valve.close", "target": "unit:gas-meter"},
        {"event": "water.leak", "op": "valve.close", "target": "unit:water-meter"},
    ],
    "auto_resolve_minutes": {"silent": 0},
    # who is told, and when, while an alarm stays unacknowledged: steps by
    # alarm kind (e.g. "gas.leak") or else by severity; `notify` names an
    # audience of the community's channels ("duty": whoever the roster has
    # on duty at that moment, else the managers)
    "escalation": {
        "critical": [
            {"after_minutes": 0, "notify": "duty"},
            {"after_minutes": 5, "notify": "manager"},
            {"after_minutes": 15, "notify": "emergency"},
        ],
        "major": [
            {"after_minutes": 0, "notify": "duty"},
            {"after_minutes": 30, "notify": "manager"},
        ],
        "minor": [{"after_minutes": 0, "notify": "duty"}],
    },
    # ["22:00", "07:00"]: people's messages of other alarms wait until the
    # end; never life-safety alarms (LIFE_SAFETY), never webhooks
    "quiet_hours": None,
}

# which default came from where (shown beside the value on the rules page)
SOURCES = {
    "quality.ph": SOURCE_GB5749 + " Table 1",
    "quality.turb": SOURCE_GB5749 + " Table 1",
    "quality.cl": SOURCE_GB5749 + " Table 2 (tap)",
}


def defaults() -> dict:
    """A fresh copy of the default document."""
    return copy.deepcopy(DEFAULTS)
