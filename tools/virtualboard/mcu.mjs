// The virtual board's microcontroller: one MicroPython WebAssembly
// interpreter in a worker thread, booting the board's flash like a real
// board does (boot.py, then main.py). host.mjs starts a fresh one for every
// power-on, reset, wake from deep sleep and watchdog reset, and terminates
// it (a real reset: nothing more runs) when it asks to reset or sleep.
//
// Flash: the port's Emscripten file system is memory only (MEMFS, no
// NODEFS), so the host folder holding the board's flash is copied in at
// boot, and board.flash_sync() writes the files under /data and /slots that
// changed since the last sync back to it, each by write-then-rename (new
// and changed files first, then removals). A write that was not synced is
// lost when the board stops without syncing (power cut, watchdog, reset
// button, kill -9 of the host), as a write that had not reached the flash
// chip would be.
//
// MicroPython reaches the host through the JS module `vboard_host`
// (mp.registerJsModule). Its functions never throw into Python (the port
// does not turn a JS exception into a Python one): failures come back as
// {error: text} and board.py raises OSError.
//
// asyncio in this port: the `pyscript` variant runs asyncio on the JS event
// loop. A task step is a JS callback; `await` of a JS Promise suspends the
// coroutine until the Promise settles; top-level code run by
// runPythonAsync may itself `await`. There is no asyncio.run (nothing may
// block the JS event loop), so main.py's `asyncio.run(coro)` is emulated:
// it unwinds main.py at that call (a BaseException, so `except Exception`
// in main.py does not catch it) and the host awaits the coroutine at top
// level. Code after asyncio.run() therefore does not run while the
// coroutine does, as on a board; a `finally:` around it would run early.
//
// REPL mode (workerData.mode "repl"): what a board does when a tool such
// as mpremote interrupts it and soft-resets it into its raw REPL: boot.py
// runs, main.py does not, and the interpreter then runs the code it is
// sent ({type: "exec"} messages), one piece after another in the same
// globals, answering each with exactly what it printed ({type:
// "exec_done", stdout, stderr}: stderr holds the traceback when it
// raised). asyncio.run() works in it as in main.py.

import { parentPort, workerData } from "node:worker_threads";
import crypto from "node:crypto";
import dgram from "node:dgram";
import dns from "node:dns";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { World } from "./world.mjs";

const { flashDir, sab, cause, boot, setup, portModule, mode } = workerData;
const world = new World(sab);
const SYNC_ROOTS = ["/data", "/slots"];
// At the REPL a tool (mpremote, kapok fw flash) writes anywhere, and what
// it wrote is on the flash once written, as on a board: everything is
// synced after each piece of code, except the port's own folders.
const REPL_ROOTS = ["/"];
const NOT_FLASH = new Set(["/dev", "/proc", "/tmp", "/home"]);
const HALT = new Int32Array(new SharedArrayBuffer(4));

function post(msg) {
  parentPort.postMessage(msg);
}

function errorText(e) {
  return e && e.message ? e.message : String(e);
}

// Every function Python can call: never throw (see above).
function guard(fn) {
  return (...args) => {
    try {
      return fn(...args);
    } catch (e) {
      return { error: errorText(e) };
    }
  };
}

// -- flash ---------------------------------------------------------------

function isHostPrivate(name) {
  return name.startsWith(".vboard");
}

function loadFlash(mp) {
  const FS = mp.FS;
  const copy = (hostDir, boardDir) => {
    for (const entry of fs.readdirSync(hostDir, { withFileTypes: true })) {
      if (isHostPrivate(entry.name)) continue;
      const src = path.join(hostDir, entry.name);
      const dst = boardDir === "/" ? "/" + entry.name : boardDir + "/" + entry.name;
      if (entry.isDirectory()) {
        try {
          FS.mkdir(dst);
        } catch {
          // the port's own folders (/tmp, /home) may exist already
        }
        copy(src, dst);
      } else if (entry.isFile()) {
        FS.writeFile(dst, fs.readFileSync(src));
      }
    }
  };
  copy(flashDir, "/");
}

// {board path: Buffer} of the files under the synced roots
function boardFiles(mp, roots = mode === "repl" ? REPL_ROOTS : SYNC_ROOTS) {
  const FS = mp.FS;
  const files = new Map();
  const dirs = new Set();
  const walk = (dir) => {
    if (NOT_FLASH.has(dir)) return;
    let names;
    try {
      names = FS.readdir(dir);
    } catch {
      return;
    }
    dirs.add(dir);
    for (const name of names) {
      if (name === "." || name === ".." || isHostPrivate(name)) continue;
      const p = dir === "/" ? "/" + name : dir + "/" + name;
      const st = FS.stat(p);
      if (FS.isDir(st.mode)) walk(p);
      else files.set(p, Buffer.from(FS.readFile(p)));
    }
  };
  for (const root of roots) walk(root);
  return { files, dirs };
}

let synced = null; // what the host folder holds of the synced roots

function flashSync(mp) {
  const now = boardFiles(mp);
  const written = [];
  const removed = [];
  for (const dir of now.dirs) fs.mkdirSync(path.join(flashDir, dir), { recursive: true });
  for (const [p, data] of now.files) {
    const old = synced.files.get(p);
    if (old && old.equals(data)) continue;
    const dst = path.join(flashDir, p);
    const tmp = path.join(path.dirname(dst), ".vboard-" + path.basename(dst));
    try {
      fs.writeFileSync(tmp, data);
      fs.renameSync(tmp, dst);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e; // not synced: the next flash_sync() tries again
    }
    written.push(p);
  }
  for (const p of synced.files.keys()) {
    if (!now.files.has(p)) {
      fs.rmSync(path.join(flashDir, p), { force: true });
      removed.push(p);
    }
  }
  const goneDirs = [...synced.dirs].filter((d) => !now.dirs.has(d));
  goneDirs.sort((a, b) => b.length - a.length); // deepest first
  for (const d of goneDirs) fs.rmSync(path.join(flashDir, d), { recursive: true, force: true });
  synced = now;
  if (written.length || removed.length) post({ type: "sync", written, removed });
  return written.length + removed.length;
}

// -- stopping: the board never runs another instruction --------------------

// A reset happens even when the host cannot write its flash folder (disk
// full): what could not be synced is lost, and the console says so.
function syncBeforeStop(mp) {
  try {
    flashSync(mp);
  } catch (e) {
    post({ type: "console", stream: "stderr", text: `flash sync failed: ${errorText(e)}` });
  }
}

function stop(msg) {
  flushConsole();
  post(msg);
  Atomics.wait(HALT, 0, 0); // host.mjs terminates this thread
}

// -- UDP -----------------------------------------------------------------

const sockets = new Map();
let nextSocket = 1;
const MAX_QUEUED = 16; // a small board's network buffers: more are dropped

class Endpoint {
  constructor(port) {
    this.port = port;
    this.queue = [];
    this.waiter = null;
    this.byFamily = {};
    this.bound = [];
  }

  async socket(family) {
    if (this.byFamily[family]) return this.byFamily[family];
    const bindHost = family === 6 ? setup.bind6 || "::1" : setup.bind4 || "127.0.0.1";
    const s = dgram.createSocket({ type: family === 6 ? "udp6" : "udp4", ipv6Only: family === 6 });
    s.on("message", (data, rinfo) => this.deliver(data, rinfo));
    s.on("error", () => {});
    await new Promise((resolve, reject) => {
      s.once("error", reject);
      s.bind(this.port, bindHost, () => {
        s.off("error", reject);
        resolve();
      });
    });
    this.byFamily[family] = s;
    return s;
  }

  deliver(data, rinfo) {
    const d = { data: new Uint8Array(data), host: rinfo.address, port: rinfo.port, error: null };
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(d);
    } else if (this.queue.length < MAX_QUEUED) {
      this.queue.push(d);
    }
  }

  close() {
    for (const s of Object.values(this.byFamily)) s.close();
    this.byFamily = {};
    if (this.waiter) this.waiter(null);
    this.waiter = null;
  }
}

async function familyOf(host) {
  const f = net.isIP(host);
  if (f) return [f, host];
  const r = await dns.promises.lookup(host);
  return [r.family, r.address];
}

const udp = {
  // IPv4 is bound at once, as on a board; a fixed local port (a server:
  // the hub's POST /c) also on IPv6, else IPv6 is bound on its first use.
  open: async (port) => {
    try {
      const ep = new Endpoint(port | 0);
      await ep.socket(4);
      if (ep.port) {
        try {
          await ep.socket(6);
        } catch {
          // no IPv6 on this machine: IPv4 only
        }
      }
      const id = nextSocket++;
      sockets.set(id, ep);
      return id;
    } catch (e) {
      return { error: errorText(e) };
    }
  },
  send: async (id, hex, host, port) => {
    try {
      const ep = sockets.get(id);
      if (!ep) return { error: "socket closed" };
      const [family, address] = await familyOf(host);
      const s = await ep.socket(family);
      const data = Buffer.from(hex, "hex");
      await new Promise((resolve, reject) => {
        s.send(data, port, address, (e) => (e ? reject(e) : resolve()));
      });
      return null;
    } catch (e) {
      return { error: errorText(e) };
    }
  },
  recv: (id, timeoutMs) => {
    const ep = sockets.get(id);
    if (!ep) return Promise.resolve({ error: "socket closed" });
    if (ep.queue.length) return Promise.resolve(ep.queue.shift());
    if (ep.waiter) return Promise.resolve({ error: "another recv is waiting on this socket" });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        ep.waiter = null;
        resolve(null);
      }, Math.max(0, timeoutMs));
      ep.waiter = (d) => {
        clearTimeout(timer);
        resolve(d);
      };
    });
  },
  close: (id) => {
    const ep = sockets.get(id);
    if (ep) ep.close();
    sockets.delete(id);
    return null;
  },
};

// -- interrupts ----------------------------------------------------------

// The emulated pins' IRQs: Python hands over one service function and the
// board calls it every `periodMs`, as a pin interrupt would fire between
// instructions. An exception in it is printed and the board runs on, as
// MicroPython does with an IRQ handler that raises.
let irqTimer = null;

function irqTicker(fn, periodMs) {
  if (irqTimer) clearInterval(irqTimer);
  irqTimer = null;
  if (!fn) return null;
  irqTimer = setInterval(() => {
    try {
      fn();
    } catch (e) {
      const text = "Unhandled exception in IRQ callback handler";
      post({ type: "console", stream: "stderr", text });
      post({ type: "console", stream: "stderr", text: errorText(e) });
    }
  }, Math.max(1, periodMs | 0));
  return null;
}

// -- boot ----------------------------------------------------------------

const PRELUDE = `
import asyncio as _vb_asyncio


class _VBoardAsyncioRun(BaseException):
    pass


def _vb_run(coro):
    raise _VBoardAsyncioRun(coro)


_vb_asyncio.run = _vb_run
del _vb_asyncio
`;

// -- console ---------------------------------------------------------------

// The port hands over every byte printed; the console carries whole lines
// (a partial one when the board stops or an exec ends), and an exec also
// gets its own output byte for byte.
const decoder = new TextDecoder();
const pending = { stdout: [], stderr: [] };
let capture = null; // {stdout: [], stderr: []} while an exec runs

function printed(stream, bytes) {
  for (const c of bytes) {
    if (capture) capture[stream].push(c);
    if (c === 10) {
      post({ type: "console", stream, text: decoder.decode(new Uint8Array(pending[stream])) });
      pending[stream] = [];
    } else {
      pending[stream].push(c);
    }
  }
}

function flushConsole() {
  for (const stream of ["stdout", "stderr"]) {
    if (pending[stream].length) printed(stream, [10]);
  }
}

// Run one of the board's top-level files as MicroPython does: in __main__,
// with asyncio.run emulated as described above.
function runFileCode(file) {
  return `
try:
    _vb_f = open(${JSON.stringify(file)})
except OSError:
    _vb_f = None
if _vb_f is not None:
    _vb_src = _vb_f.read()
    _vb_f.close()
    _vb_code = compile(_vb_src, ${JSON.stringify(file)}, "exec")
    del _vb_f, _vb_src
    try:
        exec(_vb_code, globals())
    except _VBoardAsyncioRun as _vb_r:
        del _vb_code
        await _vb_r.args[0]
`;
}

// A piece of code sent to the REPL, run in __main__ like a raw REPL does.
function execCode(code) {
  return `
_vb_code = compile(${JSON.stringify(code)}, "<stdin>", "exec")
try:
    exec(_vb_code, globals())
except _VBoardAsyncioRun as _vb_r:
    await _vb_r.args[0]
finally:
    del _vb_code
`;
}

async function runExec(mp, msg) {
  flushConsole();
  capture = { stdout: [], stderr: [] };
  let error = null;
  try {
    await mp.runPythonAsync(execCode(msg.code));
  } catch (e) {
    error = errorText(e).replace(/\n?$/, "\n");
  }
  try {
    flashSync(mp);
  } catch (e) {
    error = (error || "") + `OSError: the flash could not be written: ${errorText(e)}\n`;
  }
  const out = capture;
  capture = null;
  flushConsole();
  let stderr = decoder.decode(new Uint8Array(out.stderr));
  if (error !== null) {
    for (const line of error.replace(/\n$/, "").split("\n")) {
      post({ type: "console", stream: "stderr", text: line });
    }
    stderr += error;
  }
  const stdout = decoder.decode(new Uint8Array(out.stdout));
  post({ type: "exec_done", id: msg.id, stdout, stderr });
}

async function main() {
  const { loadMicroPython } = await import(pathToFileURL(portModule).href);
  const mp = await loadMicroPython({
    heapsize: setup.heap || 1024 * 1024,
    stdout: (bytes) => printed("stdout", bytes),
    stderr: (bytes) => printed("stderr", bytes),
    linebuffer: false,
  });
  loadFlash(mp);
  synced = boardFiles(mp);

  const host = {
    reset_cause: () => cause,
    setup: () => JSON.stringify(setup),
    flash_sync: guard(() => flashSync(mp)),
    reset: () => {
      syncBeforeStop(mp);
      stop({ type: "reset", cause: "soft" });
    },
    deepsleep: (ms) => {
      syncBeforeStop(mp);
      stop({ type: "deepsleep", ms: Math.max(0, Number(ms) || 0) });
    },
    // the RTC in whole seconds, as text: the port passes JS integers as
    // 32-bit ones, and Unix time passes 2**31 in 2038
    unix_time: guard(() => {
      const t = world.get("rtc");
      return Number.isNaN(t) ? null : String(Math.floor(t));
    }),
    set_unix_time: guard((t) => {
      world.set("rtc", Number(t));
      return null;
    }),
    random_bytes: guard((n) => new Uint8Array(crypto.randomBytes(n | 0))),
    wdt_start: guard((ms) => {
      world.set("wdt.start", Number(ms));
      return null;
    }),
    wdt_feed: guard(() => {
      world.set("wdt.feed", 1);
      return null;
    }),
    // the physical world (see world.mjs); NaN (unplugged) -> None
    world_get: guard((name) => {
      const v = world.get(name);
      return Number.isNaN(v) ? null : v;
    }),
    world_put: guard((name, value) => {
      const output = name === "siren" || name.startsWith("motor.");
      const before = output ? world.get(name) : null;
      world.set(name, value);
      if (output && world.get(name) !== before) post({ type: "output", name, value });
      return null;
    }),
    world_take: guard((name) => world.take(name)),
    irq_ticker: guard(irqTicker),
    udp_open: udp.open,
    udp_send: udp.send,
    udp_recv: udp.recv,
    udp_close: guard(udp.close),
  };
  mp.registerJsModule("vboard_host", host);

  post({ type: "booted", cause, boot });
  try {
    await mp.runPythonAsync(PRELUDE);
    await mp.runPythonAsync(runFileCode("/boot.py"));
    if (mode === "repl") {
      flushConsole();
      let running = Promise.resolve();
      parentPort.on("message", (msg) => {
        if (msg.type === "exec") running = running.then(() => runExec(mp, msg));
      });
      post({ type: "repl" });
      return;
    }
    await mp.runPythonAsync(runFileCode("/main.py"));
    flushConsole();
    post({ type: "halted", reason: "returned" });
  } catch (e) {
    flushConsole();
    if (e && e.type === "SystemExit") {
      // sys.exit() in main.py: MicroPython soft-resets the board
      flashSync(mp);
      post({ type: "reset", cause: "soft" });
      return;
    }
    const text = errorText(e);
    for (const line of text.replace(/\n$/, "").split("\n")) {
      post({ type: "console", stream: "stderr", text: line });
    }
    post({ type: "halted", reason: "exception", error: text, exception: e && e.type });
  }
}

main().catch((e) => {
  post({ type: "halted", reason: "host-error", error: errorText(e) });
});
