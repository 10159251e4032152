# The home hub: door, water-leak and smoke contacts, a siren, an SOS button,
# temperature and humidity. Always on (mains powered), and it also takes
# commands on `POST /c` from the gateway, so an alarm can be set off or
# silenced without waiting for an uplink.
#
# Contacts (options "inputs", default all three):
#   door   door.open, only while the hub is ARMED (the arm / disarm commands;
#          the state is kept in app.cbor across reboots). Arming with the
#          door open is refused: an alarm that goes off at once, or never,
#          helps nobody.
#   leak   water.leak, always
#   smoke  smoke, always
# A leak or smoke contact already active at power-on is reported; a door
# already open is not (it is no intrusion).
#
# Siren: siren.on / siren.off (siren.on is a fail-safe op: the gateway may
# sound it on its own key), smoke and an armed door sound it too. It stops
# by itself after "siren_s" seconds (default 180), so a lost siren.off
# cannot leave it howling all night. disarm silences an intrusion; a short
# press of the button silences smoke (the hush button of a smoke alarm),
# never an intrusion (an intruder could press it).
# SOS: holding the button for "sos_ms" (default 2000) raises sos. It is a
# silent alarm by default: it goes to the property manager, and a siren
# helps neither a person who fell nor one facing an intruder; options
# "sos_siren": true sounds it.
#
# Readings: profile 6, temp (DS18B20), hum (a ratiometric humidity sensor
# on an ADC, HIH-5030 transfer function unless options "hum_cal" gives two
# (raw, %RH) points), bat (with options "battery": a backup battery), rssi.

from micropython import const
from runtime.commands import CommandError

from protocols import messages

from . import base, rules

POLL_MS = const(50)
SIREN_S = const(180)
CODES = {"door": "door.open", "leak": "water.leak", "smoke": "smoke"}
# HIH-5030 at 3.3 V: Vout / Vsupply = 0.00636 x %RH + 0.1515, read_u16 of it
HUM_CAL = ((9928, 0.0), (51609, 100.0))
_SILENT = const(0)
_HUSH = const(1)  # smoke: the button may silence it
_LOCKED = const(2)  # intrusion, command: only a command or the timer


class App:
    SLEEPY = False
    SERVES_COMMANDS = True

    def __init__(self, node, peripherals, config):
        from drivers.input.contact import Contact

        opts = config["options"]
        p = peripherals
        self.node = node
        self.board = node.board
        self.opts = opts
        self.poll_ms = opts.get("poll_ms", POLL_MS)
        self.state = base.State(node.store)
        self.contacts = []
        for name in opts.get("inputs", ("door", "leak", "smoke")):
            if name not in CODES:
                raise ValueError(f"no hub input {name!r}")
            self.contacts.append(Contact(p[name], CODES[name], report_initial=name != "door"))
        self.siren = None
        self.siren_kind = _SILENT
        if opts.get("siren", True):
            from drivers.actuator.siren import Siren

            self.siren = Siren(p["siren"])
            node.commands.register("siren.on", self._siren_on)
            node.commands.register("siren.off", self._siren_off)
        self.button = None
        if opts.get("sos", True):
            from drivers.input.button import Button

            self.button = Button(p["button"], long_ms=opts.get("sos_ms", 2000))
        self.ds = None
        if opts.get("temp", True):
            from drivers.sensor.ds18b20 import DS18B20

            self.ds = DS18B20(p["onewire"])
            self.ds.convert()
        self.hum = None
        if opts.get("hum", True):
            from drivers.sensor.adc_probe import AdcProbe

            self.hum = AdcProbe(p["hum"], "hum", opts.get("hum_cal", HUM_CAL), digits=1)
        self.bat_adc = p["battery"] if base.has_battery(opts, False) else None
        self.rules = rules.Rules({"bat": (3.3, None)}, config["thresholds"], count=2)
        if self.bat_adc is not None:
            node.commands.register("thresholds.set", rules.thresholds_handler(node, self.rules))
        node.commands.register("arm", self._arm)
        node.commands.register("disarm", self._disarm)

    @property
    def armed(self):
        return bool(self.state.get("armed", False))

    # ------------------------------------------------------- always-on loop

    async def run(self):
        while True:
            self.poll(base.ticks(self.board))
            await base.pause(self.poll_ms)

    def poll(self, now_ms):
        for c in self.contacts:
            e = c.poll(now_ms)
            if e is not None and e[1]:
                self._alarm(e[0], now_ms)
        b = self.button
        if b is not None:
            e = b.poll(now_ms)
            if e is not None:
                if e[0] == b.long_code:
                    self.node.event("sos")
                    if self.opts.get("sos_siren", False):
                        self._sound(now_ms, _LOCKED)
                elif self.siren_kind == _HUSH:
                    self._silence()
        if self.siren is not None and self.siren.poll(now_ms):
            self.siren_kind = _SILENT

    def _alarm(self, code, now_ms):
        if code == "door.open":
            if not self.armed:
                return
            self._sound(now_ms, _LOCKED)
        elif code == "smoke":
            self._sound(now_ms, _HUSH)
        self.node.event(code)

    def _sound(self, now_ms, kind):
        s = self.siren
        if s is None:
            return
        if not s.is_on:
            self.siren_kind = _SILENT
        s.on(self.opts.get("siren_s", SIREN_S) * 1000, now_ms)
        if kind > self.siren_kind:
            self.siren_kind = kind  # a locked alarm cannot be hushed by a later smoke one

    def _silence(self):
        if self.siren is not None:
            self.siren.off()
        self.siren_kind = _SILENT

    # ----------------------------------------------------------- commands

    def _door_open(self):
        return any(c.code == "door.open" and c.pin.value() == c.level_active for c in self.contacts)

    def _arm(self, args):
        if self._door_open():
            raise CommandError(messages.E_FAILED, "door is open: close it before arming")
        self.state.update({"armed": True})
        return None

    def _disarm(self, args):
        self.state.update({"armed": False})
        if self.siren_kind == _LOCKED:
            self._silence()
        return None

    def _siren_on(self, args):
        self._sound(base.ticks(self.board), _LOCKED)
        return None

    def _siren_off(self, args):
        self._silence()
        return None

    # ------------------------------------------------------------- sample

    def sample(self, now):
        out = []
        for probe in (self.ds, self.hum):
            if probe is None:
                continue
            got = probe.read()
            for k in got:
                v = got[k]
                if k == "hum":
                    v = 0.0 if v < 0 else 100.0 if v > 100 else v
                out.append((k, v))
        base.common_readings(out, self.board, self.bat_adc, self.opts)
        for name, v in out:
            if name == "bat":
                code = self.rules.check("bat", v)
                if code is not None:
                    self.node.event(code, v)
        return out

    def self_test(self):
        """The thermometer or the humidity sensor answers (when fitted)."""
        if self.ds is None and self.hum is None:
            return True
        if self.ds is not None and self.ds.ow.reset():
            return True
        return self.hum is not None and bool(self.hum.read())
