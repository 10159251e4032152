"""One simulated node on CPython: the same messages, COSE and command rules
as the firmware, over a small model of the thing it measures. Sans-IO: the
runner (runner.py) owns the sockets and the clock and passes `now` (Unix
seconds) in.

    node = SimNode(spec, seed, authorities, seq=1)
    cose_bytes = node.uplink(now)          # a signed uplink, seq advancing
    node.on_reply(reply_payload, now)      # acked seq, clock, commands run

What each kind models (values rounded to float32, as a board holds them):
  gas / water meter  a register advancing with a household's usage (peaks in
                     the morning and evening), a motor valve that stops the
                     flow while shut, a methane head (gas) or leak probe
                     (water): a leak shuts the valve ON THE NODE at once and
                     raises gas.leak / water.leak; profile 3 (vol, valve,
                     bat, rssi)
  electricity meter  an energy register; profile 2 (energy, rssi)
  water quality      pH, turbidity, free chlorine, conductivity and
                     temperature around normal tap values; an excursion
                     raises quality.* once (GB 5749 limits, as the firmware);
                     profile 5
  hub                temperature and humidity, a siren (siren.on from the
                     gateway's key is fail-safe), smoke raises `smoke`;
                     profile 6
Commands are verified as the firmware does (docs/protocol.md §5): the
authority's signature, the device id, cmd_id above the last one of that
authority, not expired, the op allowed for that authority.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass, field

from kapok.protocols import cbor, cose, messages, senml

# The limits the firmware's water-quality app watches (apps/rules.py GB5749).
QUALITY_LIMITS = {"ph": (6.5, 8.5), "turb": (None, 1.0), "cl": (0.05, 2.0)}
QUALITY_EVENTS = {"ph": "quality.ph", "turb": "quality.turb", "cl": "quality.cl"}
# Events that are not alarms ride with the next routine uplink (the
# firmware's outbox.ROUTINE); every other event is sent at once.
ROUTINE_EVENTS = ("boot", "fw.progress", "fw.ok", "fw.fail", "fw.rollback", "outbox.dropped")
METHANE_ALARM_LEL = 10.0  # drivers/sensor/methane.py's default alarm level
DAY = 86400
# The registers count from here (2025-01-01 UTC): a meter installed then
# with its starting reading, so registers stay in a believable range.
EPOCH = 1735689600
# A gas meter's valve only opens after a person at the meter presses its
# button (docs: valve.open arms it); the simulated resident takes this long.
RESIDENT_PRESS_S = 8.0


def f32(x: float) -> float:
    """`x` as a board's single-precision float holds it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def usage(t: float, per_day: float, phase: float) -> float:
    """Cumulative usage at Unix time t of a household using `per_day` on
    average, with peaks twice a day: the integral of per_day/DAY × (1 −
    cos(4π(t − phase)/DAY)), which is never negative, so the register never
    runs back."""
    x = t - phase
    return per_day * (x - DAY / (4 * math.pi) * math.sin(4 * math.pi * x / DAY)) / DAY


@dataclass(frozen=True)
class NodeSpec:
    """Who a node is in the community: id, kind, and (for the incident
    grammar and the registration) the index of its unit (0: none)."""

    id: str
    kind: str
    unit: int = 0

    @property
    def profile(self) -> int:
        return PROFILE_OF_KIND[self.kind]


PROFILE_OF_KIND = {
    "gas-meter": 3,
    "water-meter": 3,
    "electricity-meter": 2,
    "water-quality": 5,
    "hub": 6,
}
KINDS = tuple(PROFILE_OF_KIND)
# average daily use and a believable starting register, per kind
_USE = {"gas-meter": (0.25, 1.6), "water-meter": (0.15, 0.7), "electricity-meter": (4.0, 16.0)}
_START = {"gas-meter": (80, 3000), "water-meter": (40, 1500), "electricity-meter": (1000, 20000)}


@dataclass
class Physics:
    """What a node measures; incidents change it (runner.py)."""

    methane: float = 0.0  # %LEL at a gas meter's head
    leak: bool = False  # water on a water meter's probe
    smoke: bool = False  # a hub's smoke detector
    turb: float | None = None  # a turbidity excursion at the station, NTU
    silent: bool = False  # the node stopped sending (battery out, radio gone)


@dataclass
class SimNode:
    spec: NodeSpec
    seed: bytes
    authorities: dict[str, tuple[bytes, str]]  # kid -> (public key, role)
    seq: int = 1  # the next seq to use
    last_cmd: dict[str, int] = field(default_factory=dict)  # per authority kid
    interval: float = 60.0  # seconds between routine uplinks (interval.set changes it)
    rand: random.Random = field(default_factory=random.Random)

    def __post_init__(self):
        kind = self.spec.kind
        if kind not in PROFILE_OF_KIND:
            raise ValueError(f"unknown kind {kind!r}")
        r = random.Random(self.spec.id)  # the same household every run
        lo, hi = _USE.get(kind, (0, 0))
        self.per_day = r.uniform(lo, hi)
        lo, hi = _START.get(kind, (0, 0))
        self.start_register = round(r.uniform(lo, hi), 2)
        self.phase = r.uniform(-3, 3) * 3600 + 7 * 3600  # peaks near 07:00 and 19:00 local
        self.battery = r.uniform(3.45, 3.65)
        self.rssi_base = r.randint(-105, -85)
        self.physics = Physics()
        self.valve_open = True
        self.closed_at: float | None = None  # while shut: when it shut
        self.frozen = 0.0  # usage that did not flow while the valve was shut
        self.reopen_at: float | None = None  # a resident will press the button
        self.siren = False
        self.clock_offset: float | None = None  # set by the gateway's time
        self.events: list[tuple] = []  # waiting to go up: (code, t, value)
        self.results: list[tuple] = []  # (cmd_id, code, detail)
        self.quality_out: dict[str, bool] = {}
        self.sent = 0
        self.stored = 0  # uplinks the gateway acknowledged
        self.commands_run: list[tuple[str, int, str]] = []  # (op, result code, kid)
        self.booted = False
        self._inflight: tuple[int, int, int] | None = None  # seq, events, results

    # -- identity

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def kid(self) -> bytes:
        return self.spec.id.encode()

    # -- the physical model

    def register(self, t: float) -> float:
        """The meter's register at t (valve shut: no flow)."""
        until = t if self.closed_at is None else min(t, self.closed_at)
        return (
            self.start_register
            + usage(until, self.per_day, self.phase)
            - usage(EPOCH, self.per_day, self.phase)
            - self.frozen
        )

    def shut(self, t: float) -> bool:
        """Close the valve; False when it was shut already."""
        self.reopen_at = None
        if not self.valve_open:
            return False
        self.valve_open = False
        self.closed_at = t
        return True

    def open_valve(self, t: float) -> None:
        if self.valve_open:
            return
        until = self.closed_at if self.closed_at is not None else t
        self.frozen += usage(t, self.per_day, self.phase) - usage(until, self.per_day, self.phase)
        self.valve_open = True
        self.closed_at = None

    def has_valve(self) -> bool:
        return self.spec.kind in ("gas-meter", "water-meter")

    def hazard(self) -> str | None:
        if self.spec.kind == "gas-meter" and self.physics.methane >= METHANE_ALARM_LEL:
            return f"gas at the meter ({self.physics.methane:.0f} %LEL)"
        if self.spec.kind == "water-meter" and self.physics.leak:
            return "water on the leak probe"
        return None

    def sample(self, t: float) -> list:
        """The routine sample: the compact form of the node's profile."""
        kind = self.spec.kind
        rssi = self.rssi_base + self.rand.randint(-3, 3)
        bat = f32(round(self.battery - (t % (365 * DAY)) / (365 * DAY) * 0.05, 3))
        if kind in ("gas-meter", "water-meter"):
            values = [f32(round(self.register(t), 3)), self.valve_open, bat, rssi]
        elif kind == "electricity-meter":
            values = [f32(round(self.register(t), 2)), rssi]
        elif kind == "water-quality":
            q = self.quality(t)
            values = [f32(q[n]) for n in ("ph", "turb", "cl", "cond", "temp")] + [bat, rssi]
        else:  # hub
            hour = (t % DAY) / 3600
            temp = 22 + 2 * math.sin((hour - 9) / 24 * 2 * math.pi)
            values = [f32(round(temp, 1)), f32(round(55 + self.rand.uniform(-3, 3), 1)), bat, rssi]
        return senml.compact(self.spec.profile, values)

    def quality(self, t: float) -> dict[str, float]:
        r = self.rand
        hour = (t % DAY) / 3600
        turb = self.physics.turb if self.physics.turb is not None else 0.3 + r.uniform(-0.05, 0.05)
        return {
            "ph": round(7.2 + r.uniform(-0.08, 0.08), 2),
            "turb": round(turb, 2),
            "cl": round(0.4 + r.uniform(-0.03, 0.03), 2),
            "cond": round(0.05 + r.uniform(-0.002, 0.002), 4),
            "temp": round(18 + 1.5 * math.sin((hour - 10) / 24 * 2 * math.pi), 1),
        }

    def check(self, t: float) -> bool:
        """What the node's own logic does between uplinks: a leak shuts the
        valve at once and raises its alarm; an excursion raises quality.*;
        a resident presses the button of an armed gas valve. True when an
        alarm waits to go up (send now)."""
        alarm = False
        kind = self.spec.kind
        p = self.physics
        armed = self.valve_open or self.reopen_at is not None
        if kind == "gas-meter" and p.methane >= METHANE_ALARM_LEL and armed:
            self.shut(t)  # the motor starts before anything else happens
            self.event("gas.leak", t, f32(round(p.methane, 1)))
            alarm = True
        if kind == "water-meter" and p.leak and armed:
            self.shut(t)
            self.event("water.leak", t)
            alarm = True
        if kind == "hub" and p.smoke and not self.siren:
            self.siren = True
            self.event("smoke", t)
            alarm = True
        if kind == "water-quality":
            q = self.quality(t)
            for name, (low, high) in QUALITY_LIMITS.items():
                v = q[name]
                outside = (low is not None and v < low) or (high is not None and v > high)
                if outside and not self.quality_out.get(name):
                    self.event(QUALITY_EVENTS[name], t, f32(v))
                    alarm = True
                self.quality_out[name] = outside
        if self.reopen_at is not None and t >= self.reopen_at and self.hazard() is None:
            self.reopen_at = None
            self.open_valve(t)
        return alarm

    def event(self, code: str, t: float, value=None) -> None:
        self.events.append((code, int(t), value))

    def alarm_waiting(self) -> bool:
        return any(e[0] not in ROUTINE_EVENTS for e in self.events)

    # -- messages

    def device_time(self, now: float) -> int | None:
        """The node's clock: set from the first reply's gateway time."""
        if self.clock_offset is None:
            return None
        return int(now + self.clock_offset)

    def uplink(self, now: float) -> tuple[int, bytes]:
        """(seq, COSE_Sign1) of an uplink with the routine sample, the events
        and results waiting; they stay waiting until the gateway acks `seq`."""
        if not self.booted:
            self.booted = True
            self.events.insert(0, ("boot", 0, self.seq))  # a new run: seq jumped
        t = self.device_time(now)
        events = [(c, et if et else (t or 0), v) for c, et, v in self.events]
        payload = messages.build_uplink(
            self.seq,
            t,
            compact=self.sample(now),
            events=events or None,
            results=list(self.results) or None,
        )
        seq = self.seq
        self.seq += 1
        self.sent += 1
        self._inflight = (seq, len(self.events), len(self.results))
        return seq, cose.sign1(payload, self.seed, self.kid)

    def on_ack(self, seq: int) -> None:
        """The gateway stored `seq`: what it carried is off the node."""
        inflight = self._inflight
        if inflight is None or inflight[0] != seq:
            return
        _, n_events, n_results = inflight
        del self.events[:n_events]
        del self.results[:n_results]
        self._inflight = None
        self.stored += 1

    def on_reply(self, payload: bytes, now: float) -> list[tuple]:
        """A 2.04's body: set the clock, drop what was acked, run the
        commands; returns their results."""
        reply = messages.parse_reply(payload)
        self.clock_offset = reply["gateway_time"] - now
        self.on_ack(reply["acked_seq"])
        return [r for r in (self.run_command(c, now) for c in reply["commands"]) if r]

    # -- commands

    def run_command(self, msg: bytes, now: float) -> tuple | None:
        """Verify and run one command as the firmware does; its result is
        queued for the next uplink and returned (None: a repeat of one
        already decided)."""
        result = self._decide(msg, now)
        if result is not None:
            self.results.append(result)
        return result

    def _decide(self, msg: bytes, now: float) -> tuple | None:
        try:
            kid = cose.kid(msg).decode()
            cmd_id = cbor.loads(cose.decode(msg)[3]).get(1, 0)
        except (ValueError, UnicodeError, AttributeError):
            return None  # not even a command: nothing to report against
        if not isinstance(cmd_id, int) or isinstance(cmd_id, bool) or cmd_id < 0:
            return None
        auth = self.authorities.get(kid)
        if auth is None:
            return (cmd_id, messages.E_SIGNATURE, f"unknown authority {kid}")
        try:
            cmd = messages.parse_command(cose.verify1(msg, auth[0]))
        except ValueError as e:
            code = messages.E_SIGNATURE if "signature" in str(e).lower() else messages.E_ARGS
            return (cmd_id, code, str(e)[:60])
        if cmd["device_id"] != self.id:
            return (cmd_id, messages.E_DEVICE, None)
        last = self.last_cmd.get(kid, 0)
        if cmd_id == last:
            return None
        if cmd_id < last:
            return (cmd_id, messages.E_REPLAY, None)
        self.last_cmd[kid] = cmd_id  # before it runs: it never runs twice
        t = self.device_time(now) or int(now)
        if cmd["not_after"] < t:
            return (cmd_id, messages.E_EXPIRED, None)
        op = cmd["op"]
        if op not in messages.OPS:
            return (cmd_id, messages.E_UNKNOWN_OP, None)
        role = auth[1]
        if role == "firmware" or (role == "failsafe" and op not in messages.FAILSAFE_OPS):
            return (cmd_id, messages.E_AUTHORITY, None)
        code, detail = self._run(op, cmd["args"], now)
        self.commands_run.append((op, code, kid))
        return (cmd_id, code, detail)

    def _run(self, op: str, args: dict, now: float) -> tuple[int, str | None]:
        kind = self.spec.kind
        if op == "valve.close" and self.has_valve():
            self.shut(now)
            return messages.OK, None
        if op == "valve.open" and self.has_valve():
            why = self.hazard()
            if why is not None:
                return messages.E_FAILED, why
            if kind == "gas-meter":
                self.reopen_at = now + RESIDENT_PRESS_S
                return messages.OK, "armed: press the meter's button within 86400 s"
            self.open_valve(now)
            return messages.OK, None
        if op in ("siren.on", "siren.off") and kind == "hub":
            self.siren = op == "siren.on"
            return messages.OK, None
        if op in ("arm", "disarm") and kind == "hub":
            return messages.OK, None
        if op == "interval.set":
            self.interval = args["s"]
            return messages.OK, None
        if op == "reboot":
            return messages.OK, "rebooting"
        return messages.E_UNSUPPORTED, f"a simulated {kind} has no {op}"
