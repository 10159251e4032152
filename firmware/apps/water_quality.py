# The water-quality station: pH, turbidity, free chlorine, conductivity and
# temperature of the community's drinking water, watched against GB 5749-2022
# (the limits and where they come from: rules.py).
#
# Probes, options "probes":
#   "modbus"  (default) Modbus RTU probes on the RS-485 line, described by
#             options "probe_map": rows [name, slave, function, register,
#             count, decode, scale(, offset)] (drivers/sensor/water_probe.py;
#             its EXAMPLE_MAP when not given: write the rows of the probes
#             actually installed, from their manuals)
#   "adc"     analog probes: options "adc" {name: [input, [[raw1, v1], [raw2,
#             v2]]]}, input the board function of the ADC it is wired to and
#             two calibration points (drivers/sensor/adc_probe.py)
# Temperature from a DS18B20 on the 1-Wire bus when the probes do not give
# it (options "ds18b20": true / false to force).
#
# The station is mains powered and always on (its probes need the supply;
# options "battery" for a backup battery's voltage). Every "check_s"
# seconds (default 60) it measures and checks the limits: a reading outside
# them for "debounce" checks in a row (default 3) raises quality.ph /
# quality.turb / quality.cl once, with the value; it is raised again only
# after the reading came back (by rules.BAND) for as many checks and left
# again. thresholds.set changes the limits ({name: [low, high]}, null for
# none; a number for turbidity is its upper limit) and the node's config
# keeps them across reboots.
# The routine sample is profile 5 (ph, turb, cl, cond, temp, bat, rssi). A
# probe that does not answer leaves its value out (null in the compact
# form) and is logged; it never stops the station.

from micropython import const

from . import base, rules

CHECK_S = const(60)
NAMES = ("ph", "turb", "cl", "cond", "temp")


class App:
    SLEEPY = False
    SERVES_COMMANDS = False

    def __init__(self, node, peripherals, config):
        opts = config["options"]
        p = peripherals
        self.node = node
        self.board = node.board
        self.opts = opts
        self.check_s = opts.get("check_s", CHECK_S)
        self.probes = []  # objects with read() -> {name: value} and .error
        kind = opts.get("probes", "modbus")
        given = ()
        if kind == "modbus":
            from drivers.modbus.rtu import Master
            from drivers.sensor import water_probe

            table = opts.get("probe_map")
            table = water_probe.EXAMPLE_MAP if table is None else tuple(tuple(r) for r in table)
            self.probes.append(water_probe.WaterProbe(Master(p["uart"], p.get("de")), table))
            given = [row[0] for row in table]
        elif kind == "adc":
            from drivers.sensor.adc_probe import AdcProbe

            adc = opts.get("adc") or {}
            for name in adc:
                if name not in NAMES:
                    raise ValueError(f"no water-quality reading {name!r}")
                wiring, cal = adc[name]
                self.probes.append(AdcProbe(p[wiring], name, cal))
            given = list(adc)
        else:
            raise ValueError(f"unknown probes {kind!r}")
        if opts.get("ds18b20", "temp" not in given):
            from drivers.sensor.ds18b20 import DS18B20

            ds = DS18B20(p["onewire"])
            ds.convert()  # so the first read has a conversion to return
            self.probes.append(ds)
        self.bat_adc = p["battery"] if base.has_battery(opts, False) else None
        limits = dict(rules.GB5749)
        if self.bat_adc is not None:
            limits["bat"] = (3.3, None)
        self.rules = rules.Rules(limits, config["thresholds"], count=opts.get("debounce", 3))
        node.commands.register("thresholds.set", rules.thresholds_handler(node, self.rules))
        self.errors = {}

    def measure(self):
        """{name: value} of every probe that answered (errors in .errors)."""
        values = {}
        errors = {}
        for probe in self.probes:
            try:
                got = probe.read()
            except Exception as e:  # a driver bug must not stop the station
                got = {}
                probe.error = str(e)
            for k in got:
                values[k] = got[k]
            if probe.error is not None:
                errs = getattr(probe, "errors", None)
                if errs:
                    for k in errs:
                        errors[k] = errs[k]
                else:
                    errors[getattr(probe, "name", "temp")] = probe.error
        if errors and errors != self.errors:
            print("kapok: probes not answering:", errors)
        self.errors = errors
        return values

    def check(self, values=None):
        """Measure (unless given `values`) and raise the events of readings
        that left their limits; returns the values."""
        if values is None:
            values = self.measure()
        for name in self.rules.watches:
            if name in values:
                code = self.rules.check(name, values[name])
                if code is not None:
                    self.node.event(code, values[name])
        return values

    async def run(self):
        while True:
            await base.pause(self.check_s * 1000)
            self.check()

    def sample(self, now):
        values = self.measure()
        out = []
        for name in NAMES:
            if name in values:
                out.append((name, values[name]))
        base.common_readings(out, self.board, self.bat_adc, self.opts)
        if self.bat_adc is not None:
            for name, v in out:
                if name == "bat":
                    code = self.rules.check("bat", v)
                    if code is not None:
                        self.node.event(code, v)
        return out

    def self_test(self):
        """At least one probe answers (a dead probe is the probe's fault,
        not the new firmware's: it must not roll an update back)."""
        return bool(self.measure())
