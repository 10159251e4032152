// A virtual Kapok board: the board's firmware, unchanged, in real
// MicroPython (the WebAssembly port, npm @micropython/micropython-
// webassembly-pyscript), with emulated peripherals and real UDP.
//
//   node host.mjs --flash DIR [--node-modules DIR] [--setup JSON] [--off] [--echo]
//
// DIR is the board's flash as laid out by kapok.tools.virtualboard.build_image:
// boot.py, main.py, lib/..., data/, slots/. The board runs in a worker thread
// (mcu.mjs), one fresh interpreter per boot; this thread is the world around
// it: power, reset button, watchdog, deep-sleep timer and the physical
// quantities the peripherals read (world.mjs).
//
// Control: JSON lines on stdin, each answered by {"reply": <id>, "ok": ...}
// on stdout (with "error" when not ok):
//   {"id": 1, "cmd": "set", "values": {"methane": 30, "door": 1}}
//   {"cmd": "get"}                 -> "values": every quantity now, "power"
//   {"cmd": "press", "ms": 300}    the button, held for ms (3000: a long press)
//   {"cmd": "power_cut"}           the board stops; unsynced flash and RTC lost
//   {"cmd": "power_on"}
//   {"cmd": "reset"}               the reset button: unsynced flash lost, RTC
//                                  kept; boots with cause "power"
//   {"cmd": "wake"}                end a deep sleep now (a wake-up pin)
//   {"cmd": "soft_reset", "repl": true|false}
//                                  what Ctrl-C then Ctrl-D on its USB console do:
//                                  the board stops (unsynced flash lost, RTC
//                                  kept) and boots with cause "soft"; with repl
//                                  it runs boot.py only and waits at its REPL
//                                  (answered once it is there), as tools such as
//                                  mpremote leave a board
//   {"cmd": "exec", "code": text}  run code at that REPL, in the same globals as
//                                  the code before; -> "stdout", "stderr" (the
//                                  traceback when it raised), like a raw REPL
//   {"cmd": "quit"}                stop the host (like unplugging the board)
// Events, JSON lines on stdout, each with "t" (ms since the host started):
//   {"event": "ready", "names": [settable quantities]}
//   {"event": "boot", "cause": "power"|"soft"|"deepsleep"|"watchdog", "boot": n}
//   {"event": "console", "stream": "stdout"|"stderr", "text": line}
//   {"event": "flash_sync", "written": [paths], "removed": [paths]}
//   {"event": "output", "name": "siren"|"motor.open"|"motor.close", "value": 0|1}
//   {"event": "reset", "cause": ...}   the board stopped and boots again
//   {"event": "sleep", "ms": n}        deep sleep: it boots again after ms
//   {"event": "repl"}                  the board waits at its REPL (soft_reset)
//   {"event": "halted", "reason": "returned"|"exception", "error": text}
//                                      main.py ended: the board sits at its REPL
//   {"event": "power", "state": "off"}
// The board's console is carried in "console" events, in order with the
// rest, so a reader sees what the board printed before it reset; --echo
// copies it to stderr as well.

import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

import { World } from "./world.mjs";

const PORT_PACKAGE = "@micropython/micropython-webassembly-pyscript";
const HERE = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const args = { setup: {}, off: false, echo: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--flash") args.flash = argv[++i];
    else if (a === "--node-modules") args.nodeModules = argv[++i];
    else if (a === "--setup") args.setup = JSON.parse(argv[++i]);
    else if (a === "--off") args.off = true;
    else if (a === "--echo") args.echo = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!args.flash) throw new Error("--flash DIR is required");
  return args;
}

function findPort(explicit) {
  const candidates = [];
  if (explicit) candidates.push(explicit);
  if (process.env.KAPOK_NODE_MODULES) candidates.push(process.env.KAPOK_NODE_MODULES);
  for (let dir = HERE; ; dir = path.dirname(dir)) {
    candidates.push(path.join(dir, "node_modules"));
    if (path.dirname(dir) === dir) break;
  }
  for (const nm of candidates) {
    const file = path.join(nm, PORT_PACKAGE, "micropython.mjs");
    if (fs.existsSync(file)) return file;
  }
  throw new Error(
    `the MicroPython WebAssembly port (${PORT_PACKAGE}) is not installed: ` +
      "run `npm ci` at the project root",
  );
}

const STARTED = performance.now();

// Events carry "t": ms since the host started, when the host saw them.
function emit(obj) {
  if (obj.event) obj.t = Math.round(performance.now() - STARTED);
  process.stdout.write(JSON.stringify(obj) + "\n");
}

let args;
let portModule;
try {
  args = parseArgs(process.argv.slice(2));
  portModule = findPort(args.nodeModules);
  if (!fs.statSync(args.flash).isDirectory()) throw new Error(`${args.flash} is not a folder`);
} catch (e) {
  emit({ event: "error", error: e.message });
  process.stderr.write(e.message + "\n");
  process.exit(2);
}

const world = World.create();
for (const [name, value] of Object.entries(args.setup.world || {})) world.set(name, value);

let power = "off"; // off | on | sleeping
let worker = null;
let generation = 0;
let boots = 0;
let sleepTimer = null;
let mode = "run"; // "run": boot.py then main.py; "repl": boot.py, then exec
let replWaiter = null; // {resolve, reject} of a soft_reset into the REPL
let atRepl = false;
const execs = new Map(); // exec id -> {resolve, reject}
let nextExec = 1;

// Transitions (boot, stop) run one at a time, in order.
let chain = Promise.resolve();
function serial(fn) {
  chain = chain.then(fn).catch((e) => emit({ event: "error", error: e.message }));
  return chain;
}

function boot(cause, bootMode = "run") {
  boots += 1;
  generation += 1;
  const gen = generation;
  power = "on";
  mode = bootMode;
  atRepl = false;
  worker = new Worker(path.join(HERE, "mcu.mjs"), {
    workerData: {
      flashDir: path.resolve(args.flash),
      sab: world.sab,
      cause,
      boot: boots,
      setup: args.setup,
      portModule,
      mode: bootMode,
    },
    stdout: true, // anything the port prints itself must not mix with the JSON lines
    stderr: true,
  });
  worker.stdout.pipe(process.stderr);
  worker.stderr.pipe(process.stderr);
  worker.on("message", (msg) => {
    if (gen === generation) onBoardMessage(msg);
  });
  worker.on("error", (e) => {
    if (gen === generation) {
      emit({ event: "halted", reason: "host-error", error: e.message });
      endRepl(`the board's interpreter failed: ${e.message}`);
    }
  });
  worker.on("exit", (code) => {
    // the host ends a board by terminating it after bumping `generation`;
    // anything else is the interpreter dying under the board (out of memory)
    if (gen === generation) {
      emit({ event: "halted", reason: "host-error", error: `board thread exited (${code})` });
      endRepl(`the board's interpreter exited (${code})`);
    }
  });
}

// Whatever waited on the board's REPL learns that it is gone.
function endRepl(why) {
  atRepl = false;
  if (replWaiter) replWaiter.reject(new Error(why));
  replWaiter = null;
  for (const waiter of execs.values()) waiter.reject(new Error(why));
  execs.clear();
}

async function stopBoard(powerLost) {
  const w = worker;
  worker = null;
  generation += 1;
  endRepl(w ? "the board stopped (reset, sleep or power cut) before it answered" : "no board");
  if (w) await w.terminate();
  world.forceUnlock(); // it may have died holding the world's lock
  const before = world.snapshot();
  world.boardStopped(powerLost);
  for (const name of ["siren", "motor.open", "motor.close"]) {
    if (before[name]) emit({ event: "output", name, value: 0 });
  }
}

function onBoardMessage(msg) {
  switch (msg.type) {
    case "console":
      emit({ event: "console", stream: msg.stream, text: msg.text });
      if (args.echo) process.stderr.write(msg.text + "\n");
      break;
    case "booted":
      emit({ event: "boot", cause: msg.cause, boot: msg.boot });
      break;
    case "sync":
      emit({ event: "flash_sync", written: msg.written, removed: msg.removed });
      break;
    case "output":
      emit({ event: "output", name: msg.name, value: msg.value ? 1 : 0 });
      break;
    case "halted":
      emit({ event: "halted", reason: msg.reason, error: msg.error || null });
      endRepl(`the board halted: ${msg.error || msg.reason}`);
      break;
    case "repl":
      atRepl = true;
      emit({ event: "repl" });
      if (replWaiter) replWaiter.resolve();
      replWaiter = null;
      break;
    case "exec_done": {
      const waiter = execs.get(msg.id);
      execs.delete(msg.id);
      if (waiter) waiter.resolve(msg);
      break;
    }
    case "reset":
      serial(async () => {
        await stopBoard(false);
        emit({ event: "reset", cause: msg.cause });
        boot(msg.cause);
      });
      break;
    case "deepsleep":
      serial(async () => {
        await stopBoard(false);
        power = "sleeping";
        emit({ event: "sleep", ms: msg.ms });
        sleepTimer = setTimeout(() => serial(() => wake()), msg.ms);
      });
      break;
    default:
      emit({ event: "error", error: `unknown board message ${msg.type}` });
  }
}

function wake() {
  if (power !== "sleeping") return;
  clearTimeout(sleepTimer);
  sleepTimer = null;
  boot("deepsleep");
}

// A watchdog is hardware: it fires even when the board's thread is stuck in
// a loop that never yields, which is why the board runs in its own thread.
setInterval(() => {
  if (power === "on" && worker && world.watchdogExpired()) {
    const w = worker;
    serial(async () => {
      if (worker !== w) return; // already reset by something else
      await stopBoard(false);
      emit({ event: "reset", cause: "watchdog" });
      boot("watchdog");
    });
  }
}, 10).unref();

const SETTABLE = new Set([...World.names(), "valve.drive", "button.hold_ms"]);

async function command(req) {
  switch (req.cmd) {
    case "set": {
      const values = req.values || {};
      for (const name of Object.keys(values)) {
        if (!SETTABLE.has(name)) {
          throw new Error(`${name} cannot be set (settable: ${[...SETTABLE].join(", ")})`);
        }
      }
      for (const [name, value] of Object.entries(values)) world.set(name, value);
      return {};
    }
    case "get":
      return { values: world.snapshot(), power, boots };
    case "press":
      world.set("button.hold_ms", Number(req.ms ?? 200));
      return {};
    case "power_cut":
      await serial(async () => {
        if (sleepTimer) clearTimeout(sleepTimer);
        sleepTimer = null;
        await stopBoard(true);
        power = "off";
        emit({ event: "power", state: "off" });
      });
      return {};
    case "power_on":
      await serial(() => {
        if (power === "off") boot("power");
      });
      return {};
    case "reset":
      await serial(async () => {
        if (sleepTimer) clearTimeout(sleepTimer);
        sleepTimer = null;
        await stopBoard(false);
        emit({ event: "reset", cause: "power" });
        boot("power");
      });
      return {};
    case "wake":
      await serial(() => wake());
      return {};
    case "soft_reset": {
      const repl = Boolean(req.repl);
      let ready = null;
      await serial(async () => {
        if (sleepTimer) clearTimeout(sleepTimer);
        sleepTimer = null;
        await stopBoard(false);
        emit({ event: "reset", cause: "soft" });
        if (repl) {
          ready = new Promise((resolve, reject) => {
            replWaiter = { resolve, reject };
          });
        }
        boot("soft", repl ? "repl" : "run");
      });
      if (ready) await ready;
      return {};
    }
    case "exec": {
      if (!worker || mode !== "repl" || !atRepl) {
        throw new Error("the board is not at its REPL: soft_reset with repl first");
      }
      const id = nextExec++;
      const done = new Promise((resolve, reject) => execs.set(id, { resolve, reject }));
      worker.postMessage({ type: "exec", id, code: String(req.code ?? "") });
      const result = await done;
      return { stdout: result.stdout, stderr: result.stderr };
    }
    case "quit":
      await serial(() => stopBoard(false));
      setImmediate(() => process.exit(0));
      return {};
    default:
      throw new Error(`unknown command ${JSON.stringify(req.cmd)}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  if (!line.trim()) return;
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    emit({ reply: null, ok: false, error: `not JSON: ${e.message}` });
    return;
  }
  try {
    const result = await command(req);
    emit({ reply: req.id ?? null, ok: true, ...result });
  } catch (e) {
    emit({ reply: req.id ?? null, ok: false, error: e.message });
  }
});
// The launcher went away: do not leave a board running on its own.
rl.on("close", () => {
  serial(() => stopBoard(false)).then(() => process.exit(0));
});

emit({ event: "ready", names: [...SETTABLE] });
if (!args.off) serial(() => boot("power"));
