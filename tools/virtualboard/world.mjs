// The physical world around a virtual board: gas in the pipe, water in the
// tank, a door, a valve, a button a person presses. Both threads of the host
// see it: the control thread (host.mjs: tests and `kapok sim` set it) and the
// board's thread (mcu.mjs: the emulated peripherals read it and the board's
// output pins drive it). It lives in a SharedArrayBuffer, so the board reads
// the world as it is at that instant, even while the control thread is busy,
// and the world outlives the board's interpreter across resets.
//
// Quantities that change with time are stored as a base value and the time
// it was taken, and computed when read:
//   meter register  vol + flow x (time the gas could flow): a closed valve
//                   stops the flow, so the register stands still
//   energy          energy + power x time
//   valve position  0 (closed) .. 1 (open), moving at 1 / travel_ms while its
//                   motor turns; a jammed valve does not move
//   button          held until a given time
// Every change rebases the quantities it affects, so a formula only ever
// spans a stretch where nothing changed.

// name: [default, unit / meaning]. Names with a "_" prefix are internal.
export const FIELDS = {
  "meter.vol": [0, "m3, register of the gas or water meter"],
  "meter.flow": [0, "m3/h drawn while the valve is open (negative: reverse)"],
  "meter.rev": [0, "m3, reverse volume"],
  "_meter.t": [0, "ms, when meter.vol and meter.rev were taken"],
  "meter.energy": [0, "kWh, electricity register"],
  "meter.power": [0, "kW, load on the electricity meter"],
  "_energy.t": [0, "ms"],
  methane: [0, "%LEL at the methane sensor"],
  "water.ph": [7.2, "pH"],
  "water.turb": [0.4, "NTU"],
  "water.cl": [0.3, "mg/l free chlorine"],
  "water.cond": [0.05, "S/m"],
  "water.temp": [18, "Cel, water at the probes"],
  temp: [22, "Cel at the DS18B20"],
  hum: [55, "%RH at the humidity sensor"],
  battery: [3.6, "V, battery or supply"],
  door: [0, "1: open"],
  leak: [0, "1: water on the leak probe"],
  smoke: [0, "1: smoke detector alarming"],
  tamper: [0, "1: a magnet held to the meter"],
  "_button.until": [0, "ms, the button is held until then"],
  "valve.pos": [1, "0 closed .. 1 open"],
  "_valve.dir": [0, "-1 closing, 0 still, +1 opening"],
  "_valve.t": [0, "ms, when valve.pos was taken"],
  "valve.travel_ms": [3000, "ms from one end stop to the other"],
  "valve.jam": [0, "1: the motor turns but the valve does not move"],
  "motor.open": [0, "output: valve motor IN1 (open) level"],
  "motor.close": [0, "output: valve motor IN2 (close) level"],
  siren: [0, "output: siren level"],
  "cjt188.online": [1, "0: the CJ/T 188 meter does not answer"],
  "dlt645.online": [1, "0: the DL/T 645 meter does not answer"],
  "modbus.online": [1, "0: the Modbus probes do not answer"],
  "onewire.online": [1, "0: the DS18B20 is unplugged"],
  "bus.corrupt": [0, "the next n meter-bus answers arrive with a bad checksum"],
  "_rtc.unix": [NaN, "s, RTC time when set (NaN: never set since power-on)"],
  "_rtc.at": [0, "ms, when _rtc.unix was set"],
  "_wdt.timeout": [0, "ms, 0: watchdog not started"],
  "_wdt.fed": [0, "ms, last feed"],
};
const NAMES = Object.keys(FIELDS);
const INDEX = Object.fromEntries(NAMES.map((n, i) => [n, i]));
// Quantities a test may set directly; the rest follow from them or belong
// to the board.
const OUTPUTS = ["motor.open", "motor.close", "siren"];
const SETTABLE = NAMES.filter((n) => !n.startsWith("_") && !OUTPUTS.includes(n));
const MS_PER_HOUR = 3600000;

export function nowMs() {
  // absolute, and the same in every thread of the process
  return performance.timeOrigin + performance.now();
}

export class World {
  constructor(sab) {
    this.sab = sab;
    this.f = new Float64Array(sab, 8, NAMES.length);
    this.lockWord = new Int32Array(sab, 0, 1);
  }

  static create() {
    const sab = new SharedArrayBuffer(8 + 8 * NAMES.length);
    const w = new World(sab);
    const t = nowMs();
    for (const n of NAMES) w.f[INDEX[n]] = FIELDS[n][0];
    for (const n of ["_meter.t", "_energy.t", "_valve.t"]) w.f[INDEX[n]] = t;
    return w;
  }

  static names() {
    return SETTABLE.slice();
  }

  // A spin lock: changes touch several fields and both threads change the
  // world. Held only for a few arithmetic steps.
  _lock() {
    while (Atomics.compareExchange(this.lockWord, 0, 0, 1) !== 0) {
      // spin
    }
  }

  _unlock() {
    Atomics.store(this.lockWord, 0, 0);
  }

  // The board's thread was terminated, maybe while holding the lock.
  forceUnlock() {
    Atomics.store(this.lockWord, 0, 0);
  }

  _r(name) {
    return this.f[INDEX[name]];
  }

  _w(name, v) {
    this.f[INDEX[name]] = v;
  }

  // -- physics (call with the lock held) ------------------------------------

  _valveDir() {
    return this._r("valve.jam") ? 0 : this._r("_valve.dir");
  }

  _valvePos(t) {
    const moved = (this._valveDir() * (t - this._r("_valve.t"))) / this._r("valve.travel_ms");
    const p = this._r("valve.pos") + moved;
    return p < 0 ? 0 : p > 1 ? 1 : p;
  }

  // How long gas could flow in [t0, t1]: while the valve is not shut.
  _flowingMs(t0, t1) {
    const d = this._valveDir();
    const p = this._r("valve.pos");
    if (d < 0) {
      const shut = this._r("_valve.t") + p * this._r("valve.travel_ms");
      return Math.max(0, Math.min(t1, shut) - t0);
    }
    if (d > 0 || p > 0) return t1 - t0;
    return 0;
  }

  _register(t) {
    const flow = this._r("meter.flow");
    const ms = this._flowingMs(this._r("_meter.t"), t);
    const vol = this._r("meter.vol") + (flow * ms) / MS_PER_HOUR;
    const rev = this._r("meter.rev") + (flow < 0 ? (-flow * ms) / MS_PER_HOUR : 0);
    return [vol, rev];
  }

  _rebaseMeter(t) {
    const [vol, rev] = this._register(t);
    this._w("meter.vol", vol);
    this._w("meter.rev", rev);
    this._w("_meter.t", t);
  }

  _energy(t) {
    const hours = (t - this._r("_energy.t")) / MS_PER_HOUR;
    return this._r("meter.energy") + this._r("meter.power") * hours;
  }

  _rebaseEnergy(t) {
    this._w("meter.energy", this._energy(t));
    this._w("_energy.t", t);
  }

  _rebaseValve(t) {
    this._rebaseMeter(t); // the flow so far depended on the old valve motion
    this._w("valve.pos", this._valvePos(t));
    this._w("_valve.t", t);
  }

  _motorFromPins(t) {
    const o = this._r("motor.open");
    const c = this._r("motor.close");
    this._rebaseValve(t);
    this._w("_valve.dir", o && !c ? 1 : c && !o ? -1 : 0);
  }

  // -- public ---------------------------------------------------------------

  get(name, t = nowMs()) {
    this._lock();
    try {
      return this._get(name, t);
    } finally {
      this._unlock();
    }
  }

  _get(name, t) {
    switch (name) {
      case "meter.vol":
        return this._register(t)[0];
      case "meter.rev":
        return this._register(t)[1];
      case "meter.energy":
        return this._energy(t);
      case "valve.pos":
        return this._valvePos(t);
      case "valve.open_stop":
        return this._valvePos(t) >= 1 ? 1 : 0;
      case "valve.closed_stop":
        return this._valvePos(t) <= 0 ? 1 : 0;
      case "button":
        return t < this._r("_button.until") ? 1 : 0;
      case "rtc": {
        const u = this._r("_rtc.unix");
        return Number.isNaN(u) ? NaN : u + (t - this._r("_rtc.at")) / 1000;
      }
      default:
        if (!(name in INDEX)) throw new RangeError(`no quantity ${name}`);
        return this._r(name);
    }
  }

  set(name, value, t = nowMs()) {
    if (value === null || value === undefined) value = NaN;
    if (typeof value === "boolean") value = value ? 1 : 0;
    if (typeof value !== "number") throw new TypeError(`${name}: a number, true/false or null`);
    this._lock();
    try {
      this._set(name, value, t);
    } finally {
      this._unlock();
    }
  }

  _set(name, v, t) {
    switch (name) {
      case "meter.vol":
      case "meter.rev":
      case "meter.flow":
        this._rebaseMeter(t);
        this._w(name, v);
        return;
      case "meter.energy":
      case "meter.power":
        this._rebaseEnergy(t);
        this._w(name, v);
        return;
      case "valve.pos":
        this._rebaseValve(t);
        this._w("valve.pos", Math.max(0, Math.min(1, v)));
        return;
      case "valve.jam":
      case "valve.travel_ms":
        this._rebaseValve(t);
        this._w(name, v);
        return;
      case "valve.drive": // a meter's own valve controller: run to an end
        this._rebaseValve(t);
        this._w("_valve.dir", Math.sign(v));
        return;
      case "motor.open":
      case "motor.close":
        this._w(name, v ? 1 : 0);
        this._motorFromPins(t);
        return;
      case "button.hold_ms":
        this._w("_button.until", t + v);
        return;
      case "rtc":
        this._w("_rtc.unix", v);
        this._w("_rtc.at", t);
        return;
      case "wdt.start":
        this._w("_wdt.timeout", v);
        this._w("_wdt.fed", t);
        return;
      case "wdt.feed":
        this._w("_wdt.fed", t);
        return;
      default:
        if (!(name in INDEX)) throw new RangeError(`no quantity ${name}`);
        this._w(name, v);
    }
  }

  // Take one from a counter (bus.corrupt); true when there was one.
  take(name) {
    this._lock();
    try {
      const n = this._r(name);
      if (n > 0) this._w(name, n - 1);
      return n > 0;
    } finally {
      this._unlock();
    }
  }

  // The watchdog ran out: the time it should have been fed by, or 0.
  watchdogExpired(t = nowMs()) {
    const timeout = this._r("_wdt.timeout");
    return timeout > 0 && t - this._r("_wdt.fed") > timeout;
  }

  // What a board's reset does to the world: its pins float, so the motor
  // and the siren stop and the watchdog is off. A power cut also clears the
  // RTC (no backup battery on these boards).
  boardStopped(powerLost, t = nowMs()) {
    this._lock();
    try {
      this._w("motor.open", 0);
      this._w("motor.close", 0);
      this._motorFromPins(t);
      this._w("siren", 0);
      this._w("_wdt.timeout", 0);
      if (powerLost) this._w("_rtc.unix", NaN);
    } finally {
      this._unlock();
    }
  }

  // Everything a test may want to look at, as JSON-friendly values.
  snapshot(t = nowMs()) {
    this._lock();
    try {
      const out = {};
      for (const n of NAMES) {
        if (n.startsWith("_")) continue;
        out[n] = this._get(n, t);
      }
      for (const n of ["valve.open_stop", "valve.closed_stop", "button", "rtc"]) {
        out[n] = this._get(n, t);
      }
      const d = this._valveDir();
      const p = out["valve.pos"];
      let state = "stopped"; // part-way, motor off
      if (d > 0 && p < 1) state = "opening";
      else if (d < 0 && p > 0) state = "closing";
      else if (p >= 1) state = "open";
      else if (p <= 0) state = "closed";
      out["valve.state"] = state;
      out["wdt.timeout"] = this._r("_wdt.timeout");
      for (const k of Object.keys(out)) if (Number.isNaN(out[k])) out[k] = null;
      return out;
    } finally {
      this._unlock();
    }
  }
}
