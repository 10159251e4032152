# The meter app: gas, water and electricity meters (config "kind").
#
# Register source, options "source":
#   "cjt188"  the meter's own register over CJ/T 188 (default for gas and
#             water meters); "address" (default: the wildcard, one meter on
#             the line), "meter_type" (default 30H gas / 10H cold water),
#             "big_endian_di" for meters that want DI 901FH high byte first
#   "pulse"   the meter's reed-switch pulse output, counted here: "lpp"
#             litres per pulse (default 10), "direction" (a second reed B:
#             reverse flow), "start_l" the register in litres when counting
#             began; the counts are saved at every sample
#   "dlt645"  DL/T 645-2007 (electricity meters: the default and only one)
# Registers stay exact integers (pulse litres, the meters' BCD hundredths);
# a board's single-precision float only ever holds the reported value.
#
# Power. The runtime does a battery meter's cycle (wake, sample, send,
# sleep: SLEEPY); it applies to gas and water meters that read a CJ/T 188
# register and have no safety input. A meter stays awake when it has:
#   - a methane head (gas meters, options "methane", on by default): a
#     catalytic or NDIR head draws tens of mA and needs minutes to warm up
#     (drivers/sensor/methane.py), so no battery feeds it and no wake cycle
#     could read it; as household gas detectors are, it runs from the
#     mains, and so does the node that shuts the valve for it;
#   - a leak contact (water meters, options "leak"): it must close the
#     valve the moment water appears, not at the next wake;
#   - a pulse source: every reed edge has to be seen by the CPU (a deep-
#     sleeping board counts none; meters that count in their own low-power
#     chip are read over CJ/T 188 instead).
# options "power": "mains" keeps any meter awake; electricity meters always
# are. "battery" (default: on for battery meters) reads the battery ADC.
#
# Valve, options "valve": "motor" (default for gas and water meters: a ball
# valve with end stops on the board's H-bridge, "valve_travel_ms"), "bus"
# (the meter's own valve over CJ/T 188, DI A017H) or "none" (electricity
# meters). The reading `valve` goes in every sample of a meter with one.
#   - valve.close runs at once (also from the gateway's fail-safe key).
#   - A gas leak (methane at the alarm level, drivers/sensor/methane.py) or
#     water on the leak contact closes the valve at once, on the node, and
#     then raises gas.leak (with %LEL) / water.leak: no network in the way.
#   - valve.open on a gas meter only arms the reopening: the valve opens when
#     someone presses the meter's button within "reopen_s" (default 24 h),
#     as gas meters require: the person at the meter checks that no burner
#     is open before gas flows again. A battery meter reads the button when
#     it wakes (hold it until the valve turns; the board wakes on it).
#     A water meter opens at once, as prepaid water meters do, unless the
#     valve was shut by its leak contact: then someone must have seen the
#     leak and press the button too. options "reopen_press" overrides.
#   - A valve that stalls, overruns or shows both end stops raises
#     valve.fault (value: "stall", "timeout", "stops", "position").
#
# Watched (events once per occurrence; battery meters remember them across
# sleeps in app.cbor):
#   flow.continuous  the register moved in every sample for "continuous_h"
#                    hours (default 6 for gas: a burner left on or a leak;
#                    24 for water: a household's water stops some time every
#                    day, a running toilet does not); 0 turns it off.
#                    thresholds.set {"continuous_h": hours} changes it
#                    (kept in the config's thresholds, over the option). The
#                    resolution is one sample interval and one register step.
#   flow.reverse     the pulse counter's direction reed, or a CJ/T 188
#                    register that ran back (value: m3)
#   tamper           the Hall switch by the reeds (a magnet on the meter)
#   battery.low      the battery below the "bat" threshold (default 3.3 V:
#                    the knee of a lithium thionyl chloride cell); a node
#                    without a battery input passes on a CJ/T 188 meter's
#                    own battery flag
#
# Samples are exactly a compact profile (protocols/senml.py): electricity
# energy, rssi (2); with a valve vol, valve, bat, rssi (3); with a direction
# reed and no valve vol, rev, flow, bat, rssi (4; flow is the mean since the
# last sample, m3/s); else vol, bat, rssi (1). A value the node could not
# read is left out (null in the compact form).

from micropython import const
from runtime.commands import CommandError

from protocols import messages

from . import base, rules

POLL_MS = const(100)
DEFAULT_REOPEN_S = const(86400)
BATTERY_LOW_V = 3.3
_STEP_MS = const(20)  # valve polling while a command waits for it


class App:
    SLEEPY = False
    SERVES_COMMANDS = False

    def __init__(self, node, peripherals, config):
        kind = config["kind"]
        if kind not in ("gas-meter", "water-meter", "electricity-meter"):
            raise ValueError(f"the meter app runs meters, not {kind}")
        opts = config["options"]
        p = peripherals
        self.node = node
        self.board = node.board
        self.opts = opts
        self.kind = kind
        self.gas = kind == "gas-meter"
        self.electric = kind == "electricity-meter"
        self.state = base.State(node.store)
        self.latches = base.Latches(node, self.state)
        self.poll_ms = opts.get("poll_ms", POLL_MS)
        self.meter = None
        self.counter = None
        self.methane = None
        self.leak = None
        self.tamper = None
        self.valve = None
        self.button = None
        self._setup_source(p, opts)
        if self.gas and opts.get("methane", True):
            self._setup_methane(p, opts.get("methane"))
        if kind == "water-meter" and opts.get("leak", False):
            from drivers.input.contact import Contact

            # water already on the floor at power-on is reported too
            self.leak = Contact(p["leak"], "water.leak", report_initial=True)
        if not self.electric and opts.get("tamper", True):
            from drivers.input.contact import Contact

            self.tamper = Contact(p["tamper"], "tamper", debounce_ms=500)
        self._setup_valve(p, opts)
        awake = (
            self.electric
            or self.counter is not None
            or self.methane is not None
            or self.leak is not None
        )
        power = opts.get("power", "mains" if awake else "battery")
        self.SLEEPY = power == "battery" and not awake
        self.bat_adc = p["battery"] if base.has_battery(opts, power == "battery") else None
        self.rules = rules.Rules(
            {"bat": (BATTERY_LOW_V, None)},
            config["thresholds"],
            count=2,
            state=self.state.get("rules"),
        )
        hours = opts.get("continuous_h", 6 if self.gas else 24)
        hours = config["thresholds"].get("continuous_h", hours)
        self.continuous_s = hours * 3600
        if not self.electric:
            node.commands.register("thresholds.set", self._thresholds)
        # the readings of the routine sample: exactly a compact profile's
        if self.electric:
            self.profile = ("energy", "rssi")
        elif self.valve is not None:
            self.profile = ("vol", "valve", "bat", "rssi")
        elif self.counter is not None and self.counter.direction:
            self.profile = ("vol", "rev", "flow", "bat", "rssi")
        else:
            self.profile = ("vol", "bat", "rssi")
        if self.valve is not None:
            node.commands.register("valve.close", self._close_command)
            node.commands.register("valve.open", self._open_command)

    def _thresholds(self, args):
        """thresholds.set: {"bat": volts} (a node that reads its battery)
        and {"continuous_h": hours, 0 = off}; all checked before any is
        applied (E_ARGS), then kept in the config."""
        args = dict(args)
        hours = args.pop("continuous_h", None)
        if hours is not None and (
            isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 <= hours <= 168
        ):
            raise CommandError(messages.E_ARGS, "continuous_h: hours from 0 (off) to 168")
        if args and self.bat_adc is None:
            raise CommandError(messages.E_ARGS, "no battery input here: only continuous_h")
        try:
            new = self.rules.parse(args)
        except ValueError as e:
            raise CommandError(messages.E_ARGS, str(e)) from None
        stored = self.rules.update(new)
        if hours is None:
            hours = self.node.config["thresholds"].get("continuous_h")
        if hours is not None:
            stored["continuous_h"] = hours
            self.continuous_s = hours * 3600
        self.node.set_config({"thresholds": stored})

    # ------------------------------------------------------------ set-up

    def _setup_source(self, p, opts):
        source = opts.get("source", "dlt645" if self.electric else "cjt188")
        if self.electric != (source == "dlt645"):
            raise ValueError(f"a {self.kind} cannot read its register with {source}")
        self.source = source
        de = p.get("de")
        if source == "dlt645":
            from drivers.meterbus import dlt645

            self.meter = dlt645.DLT645(p["uart"], opts.get("address", dlt645.ANY), de)
            self.steps = 100  # register steps per kWh (BCD hundredths)
        elif source == "cjt188":
            from drivers.meterbus import cjt188

            mtype = opts.get("meter_type", cjt188.TYPE_GAS if self.gas else cjt188.TYPE_COLD_WATER)
            self.meter = cjt188.CJT188(
                p["uart"],
                opts.get("address", cjt188.ANY),
                mtype,
                de,
                big_endian_di=opts.get("big_endian_di", False),
            )
            self.steps = 100  # per m3 (a litre-register meter: see _register)
        elif source == "pulse":
            from drivers.counter.pulse import PulseCounter

            reed = p["reed_a"]
            c = PulseCounter(
                opts.get("lpp", 10), direction=bool(opts.get("direction")), level=reed.value()
            )
            c.restore(self.state.get("fwd", 0), self.state.get("rev", 0))
            self.counter = c
            self.reed_a = reed
            self.reed_b = p["reed_b"] if c.direction else None
            self.steps = 1000  # the register is counted in litres
            self._irqs()
        else:
            raise ValueError(f"unknown register source {source!r}")

    def _irqs(self):
        # Pin IRQs count the reed edges while the main loop is busy; the
        # poll loop catches any edge an IRQ missed. Soft IRQs: the handler
        # may allocate (the board clock), and reeds give a few Hz at most.
        reed = self.reed_a
        if not hasattr(reed, "irq") or not hasattr(reed, "IRQ_RISING"):
            return
        c = self.counter
        board = self.board
        both = reed.IRQ_RISING | reed.IRQ_FALLING
        reed.irq(lambda pin: c.edge(pin.value(), board.time_ms() & base.TICKS_MASK), both)
        if self.reed_b is not None:
            self.reed_b.irq(lambda pin: c.edge_b(pin.value()), both)

    def _setup_methane(self, p, m):
        from drivers.sensor.methane import Methane

        m = m if isinstance(m, dict) else {}
        kw = {}
        if "cal" in m:
            kw["cal"] = m["cal"]
        self.methane = Methane(
            p["methane"],
            alarm_on=m.get("alarm", 10.0),
            alarm_off=m.get("clear", 5.0),
            warmup_ms=int(m.get("warmup_s", 180) * 1000),
            **kw,
        )

    def _setup_valve(self, p, opts):
        mode = opts.get("valve", "none" if self.electric else "motor")
        if mode == "motor":
            from drivers.actuator.valve import Valve

            self.valve = Valve(
                (p["valve_open"], p["valve_close"]),
                p["stop_open"],
                p["stop_closed"],
                travel_ms=opts.get("valve_travel_ms", 15000),
            )
        elif mode == "bus":
            if self.source != "cjt188":
                raise ValueError("a bus valve is the CJ/T 188 meter's own")
            self.valve = "bus"
        elif mode != "none":
            raise ValueError(f"unknown valve {mode!r}")
        if self.valve is not None:
            from drivers.input.button import Button

            self.button = Button(p["button"])

    # ------------------------------------------------------------- sample

    def sample(self, now):
        if self.SLEEPY:
            self._wake_checks()
        out = []
        reg = self._register()
        if reg is not None:
            # a division by an int: the reading is the register, correctly rounded
            out.append(("energy" if self.electric else "vol", reg / self.steps))
            if not self.electric:
                flow = self._flow_checks(reg, now)
                if "flow" in self.profile and flow is not None:
                    out.append(("flow", flow))
        if "rev" in self.profile:
            out.append(("rev", self.counter.reverse * self.counter.litres_per_pulse / 1000))
        if self.valve is not None:
            v = self._valve_open()
            if v is not None:
                out.append(("valve", v))
        base.common_readings(out, self.board, self.bat_adc, self.opts)
        for name, v in out:
            if name == "bat":
                code = self.rules.check("bat", v)
                if code is not None:
                    self.node.event(code, v)
        changes = {"rules": self.rules.state()}
        if self.counter is not None:
            changes["fwd"] = self.counter.forward
            changes["rev"] = self.counter.reverse
        self.state.update(changes)
        return out

    def _register(self):
        """The register as an int in 1/self.steps m3 (kWh), or None."""
        c = self.counter
        if c is not None:
            return self.opts.get("start_l", 0) + (c.forward - c.reverse) * c.litres_per_pulse
        m = self.meter
        if not m.read():
            print("kapok: meter read failed:", m.error)
            return None
        r = m.last
        if self.electric:
            return r["energy_raw"]
        self.steps = 100 if r["vol_unit"] == 0x2C else 100000  # m3 or litre hundredths
        if "valve_fault" in r and self.valve == "bus":
            self.latches.report("valve.fault", r["valve_fault"], "meter")
        if "battery_low" in r and self.bat_adc is None:
            # the meter's own flag, for a node that does not measure a battery
            self.latches.report("battery.low", r["battery_low"], None, "meter.battery")
        return r["vol_raw"]

    def _flow_checks(self, reg, now):
        """Continuous and reverse flow from the register's steps; returns
        the mean flow since the last sample (m3/s) when it is known."""
        st = self.state
        last = st.get("reg")
        last_t = st.get("reg_t")
        since = st.get("flow_since")
        flow = None
        if last is not None:
            d = reg - last
            timed = now is not None and last_t is not None and now > last_t
            if timed:
                flow = d / self.steps / (now - last_t)
            if d > 0:
                if self.source != "pulse":
                    self.latches.report("flow.reverse", False)
                if timed:
                    if since is None:
                        since = last_t
                    hours = (now - since) / 3600
                    if self.continuous_s and now - since >= self.continuous_s:
                        self.latches.report("flow.continuous", True, round(hours, 1))
            else:
                since = None
                self.latches.report("flow.continuous", False)
                if d < 0 and self.source != "pulse":
                    # a register that runs back: water pushed back into the main
                    self.latches.report("flow.reverse", True, round(-d / self.steps, 3))
                elif d == 0 and self.source != "pulse":
                    self.latches.report("flow.reverse", False)
        st.update({"reg": reg, "reg_t": now, "flow_since": since})
        return flow

    # ------------------------------------------------------- always-on loop

    async def run(self):
        while True:
            self.poll(base.ticks(self.board))
            await base.pause(self.poll_ms)

    def poll(self, now_ms):
        """One look at every input: safety first."""
        m = self.methane
        if m is not None:
            e = m.poll(now_ms)
            if e is not None and e[1]:
                self.shut(now_ms)
                self.node.event("gas.leak", round(e[2], 1))
        if self.leak is not None:
            e = self.leak.poll(now_ms)
            if e is not None and e[1]:
                self.shut(now_ms, leak=True)
                self.node.event("water.leak")
        c = self.counter
        if c is not None:
            if self.reed_b is not None:
                c.edge_b(self.reed_b.value())
            e = c.poll(now_ms, self.reed_a.value())
            if e is not None and e[0] == "flow.reverse":
                self.node.event("flow.reverse", round(e[2], 3))
        if self.tamper is not None:
            e = self.tamper.poll(now_ms)
            if e is not None:
                self.latches.report("tamper", e[1])
        self._poll_valve(now_ms)
        if self.button is not None and self.button.poll(now_ms) is not None:
            self._pressed(now_ms)

    def _wake_checks(self):
        # A battery meter sees its inputs only while awake: their levels now.
        now_ms = base.ticks(self.board)
        if self.tamper is not None:
            self.latches.report("tamper", self.tamper.pin.value() == self.tamper.level_active)
        self._poll_valve(now_ms)
        b = self.button
        if b is not None and b.pin.value() == b.level_active and self._pressed(now_ms):
            self._wait_valve_blocking()

    # ------------------------------------------------------------- valve

    def _valve_open(self):
        v = self.valve
        if v == "bus":
            r = self.meter.last
            return None if r is None else r.get("valve")
        return v.read().get("valve")

    def _poll_valve(self, now_ms):
        v = self.valve
        if v is None or v == "bus":
            return
        v.poll(now_ms)
        self.latches.report("valve.fault", v.state == "fault", v.fault)

    def _moving(self):
        v = self.valve
        return v is not None and v != "bus" and v.state in ("opening", "closing")

    def _drive(self, open_it, now_ms):
        """Start the valve; False when it cannot move."""
        v = self.valve
        if v == "bus":
            return self.meter.set_valve(open_it)
        ok = v.open(now_ms) if open_it else v.close(now_ms)
        self._poll_valve(now_ms)
        return ok

    def shut(self, now_ms, leak=False):
        """Close the valve now (a leak): the motor starts before anything
        else happens; a pending reopening is cancelled."""
        if self.valve is not None:
            self._drive(False, now_ms)
        self.state.update({"reopen_until": None, "leak_closed": leak})

    def _hazard(self):
        if self.methane is not None and self.methane.alarm:
            return f"gas at the meter ({self.methane.lel or 0:.0f} %LEL)"
        if self.leak is not None and self.leak.active:
            return "water on the leak probe"
        return None

    def _press_needed(self):
        p = self.opts.get("reopen_press")
        if p is not None:
            return bool(p)
        return self.gas or bool(self.state.get("leak_closed"))

    def _pressed(self, now_ms):
        """The button was pressed: open the valve if a valve.open armed it
        and its window is still open. True when the valve started."""
        until = self.state.get("reopen_until")
        if until is None:
            return False
        t = self.node.clock.now()
        if t is None or t > until:
            self.state.update({"reopen_until": None})
            return False
        if self._hazard() is not None:
            return False  # stays armed: press again once it is safe
        self.state.update({"reopen_until": None, "leak_closed": False})
        return self._drive(True, now_ms)

    def _wait_valve_blocking(self):
        # a battery meter has nothing else to do while its valve turns, and
        # deep sleep would stop the motor half way
        import time

        sleep_ms = getattr(time, "sleep_ms", None)
        for _ in range(self._max_steps()):
            if not self._moving():
                return
            self.node.feed()
            if sleep_ms is not None:
                sleep_ms(_STEP_MS)
            else:
                time.sleep(_STEP_MS / 1000)
            self._poll_valve(base.ticks(self.board))

    def _max_steps(self):
        v = self.valve
        return (v.travel_ms + v.dead_ms) // _STEP_MS + 50

    async def _settle(self):
        for _ in range(self._max_steps() if self._moving() else 0):
            if not self._moving():
                return
            await base.pause(_STEP_MS)
            self._poll_valve(base.ticks(self.board))

    def _outcome(self, want):
        v = self.valve
        if v == "bus":
            return
        if v.state != want:
            raise CommandError(messages.E_FAILED, f"valve fault: {v.fault or v.state}")

    async def _close_command(self, args):
        self.state.update({"reopen_until": None})
        if not self._drive(False, base.ticks(self.board)):
            raise CommandError(messages.E_FAILED, self._drive_failure())
        await self._settle()
        self._outcome("closed")

    async def _open_command(self, args):
        why = self._hazard()
        if why is not None:
            raise CommandError(messages.E_FAILED, why)
        if self._press_needed():
            now = self.node.clock.now()
            if now is None:  # (a command only runs once the clock is set)
                raise CommandError(messages.E_FAILED, "clock not set")
            window = self.opts.get("reopen_s", DEFAULT_REOPEN_S)
            self.state.update({"reopen_until": now + window})
            return f"armed: press the meter's button within {window} s"
        self.state.update({"leak_closed": False})
        if not self._drive(True, base.ticks(self.board)):
            raise CommandError(messages.E_FAILED, self._drive_failure())
        await self._settle()
        self._outcome("open")
        return None

    def _drive_failure(self):
        if self.valve == "bus":
            return f"meter did not take the valve command: {self.meter.error}"
        return "valve cannot move: both end stops pressed"

    # --------------------------------------------------------- self-test

    def self_test(self):
        """For an OTA update's confirmation: the register answers, the valve
        is not blind, the methane head is not dead."""
        if self.meter is not None and not self.meter.read():
            return False
        v = self.valve
        if v is not None and v != "bus" and v.fault == "stops":
            return False
        m = self.methane
        if m is not None:
            m.read()
            if m.error in (m.low_fault, m.high_fault):
                return False
        return True
