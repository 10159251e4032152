"""The water-quality app under the real node runtime, reading the virtual
board's emulated Modbus probes: the profile-5 sample, GB 5749-2022 limits
with debounce and hysteresis, thresholds.set kept in the config, and probes
that stop answering."""

import asyncio

import pytest
from runtime.store import Store

from kapok.protocols import cbor, coap, cose, messages

WORLD = {"water.ph": 7.2, "water.turb": 0.4, "water.cl": 0.3, "water.cond": 0.05, "water.temp": 18}


@pytest.fixture
def station(rig):
    rig.world.values.update(WORLD)
    rig.provision("water-quality", "water_quality")
    rig.boot()
    return rig


def checks(rig, n, **values):
    for k, v in values.items():
        rig.world.values["water." + k] = v
    for _ in range(n):
        rig.app.check()


def test_sample_is_profile_5_from_the_probes(station):
    node = station.node
    got = dict(node.app.sample(node.clock.now()))
    assert got == {
        "ph": pytest.approx(7.2),
        "turb": pytest.approx(0.4),
        "cl": pytest.approx(0.3),
        "cond": pytest.approx(0.05),
        "temp": pytest.approx(18.0),
    }
    assert not node.app.SLEEPY
    station.uplink()  # the boot event
    node.sample_once()
    station.uplink()
    datagram = station.board.net.sent[-1][0]
    body = cbor.loads(cose.verify1(coap.Message.decode(datagram).payload, station.keys["node"]))
    assert body[5][0] == 5 and body[5][6:] == [None, None]  # mains: no bat; rssi unknown


def test_out_of_range_raises_once_per_excursion(station):
    checks(station, 2, ph=9.1)
    checks(station, 1, ph=7.0)  # a spike: no event
    checks(station, 5, ph=9.1)  # three in a row: one event
    checks(station, 3, ph=8.45)  # back inside, but within the band: same excursion
    checks(station, 3, ph=9.2)
    checks(station, 3, ph=7.5)  # really back
    checks(station, 3, ph=5.9)  # a new excursion, the other side
    checks(station, 3, turb=1.8)
    checks(station, 3, cl=0.01)  # no residual chlorine at the tap
    station.uplink()
    got = [(e[0], round(e[2], 2)) for e in station.events() if e[0].startswith("quality.")]
    assert sorted(got) == [
        ("quality.cl", 0.01),
        ("quality.ph", 5.9),
        ("quality.ph", 9.1),
        ("quality.turb", 1.8),
    ]


def test_conductivity_and_temperature_are_reported_not_watched(station):
    checks(station, 5, cond=2.0, temp=35)
    station.uplink()
    assert [e[0] for e in station.events()] == ["boot"]


def test_thresholds_set_is_applied_and_kept_across_reboots(station):
    assert station.command("thresholds.set", {"turb": 3, "cl": [0.3, 2]}) == (messages.OK, None)
    assert Store(station.board.DATA_DIR).read("config.cbor")["thresholds"] == {
        "turb": [None, 3],
        "cl": [0.3, 2],
    }
    station.boot(cause="soft")
    checks(station, 3, turb=2.5)  # a small supply's 3 NTU: fine now
    checks(station, 3, cl=0.2)  # under the works outlet's 0.3 mg/l
    station.uplink()
    assert [e[0] for e in station.events() if e[0].startswith("quality.")] == ["quality.cl"]


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ({"cond": [0, 0.1]}, "no threshold for cond"),
        ({"ph": [9, 6]}, "above high"),
        ({"ph": 7}, "give [low, high]"),
    ],
)
def test_thresholds_set_with_bad_args_changes_nothing(station, args, why):
    code, detail = station.command("thresholds.set", args)
    assert code == messages.E_ARGS and why in detail
    assert Store(station.board.DATA_DIR).read("config.cbor")["thresholds"] == {}


def test_a_probe_that_stops_answering_is_a_missing_value(station):
    node = station.node
    station.world.values["water.cl"] = None  # the chlorine probe: no measurement
    got = dict(node.app.sample(node.clock.now()))
    assert set(got) == {"ph", "turb", "cond", "temp"}
    assert node.app.errors == {"cl": "exception:4"}
    station.world.values["modbus.online"] = 0  # the whole line is dead
    assert node.app.sample(node.clock.now()) == []
    assert node.app.self_test() is False
    checks(station, 5)  # nothing to check, nothing raised, no crash
    station.world.values["modbus.online"] = 1
    assert node.app.self_test() is True


def test_checks_run_on_their_own_schedule(station):
    station.world.values["water.ph"] = 4.0
    station.app.check_s = 0.01

    async def run_for(seconds):
        task = asyncio.create_task(station.app.run())
        await asyncio.sleep(seconds)
        task.cancel()

    asyncio.run(run_for(0.2))
    station.uplink()
    assert [e[0] for e in station.events("quality.ph")] == ["quality.ph"]


def test_adc_probes_and_a_ds18b20(rig):
    # a pH electrode's amplifier on the board's "hum" input, read as raw ADC
    # counts through two calibration points; temperature from the DS18B20
    rig.world.values.update({"hum": 50.0, "temp": 21.5})
    rig.provision(
        "water-quality",
        "water_quality",
        {"probes": "adc", "adc": {"ph": ["hum", [[9928, 0.0], [51609, 14.0]]]}},
    )
    node = rig.boot()
    rig.clock.advance(1000)  # the first conversion is done
    got = dict(node.app.sample(node.clock.now()))
    assert got["ph"] == pytest.approx(7.0, abs=0.05)
    assert got["temp"] == 21.5
