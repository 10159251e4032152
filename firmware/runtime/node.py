# The node: board + config + app, scheduled with asyncio.
#
# main.py calls `main()`, which builds a Node from the `board` module and
# the stored config, loads `apps.<config "app">` and runs it:
#
#   always-on nodes (mains powered: electricity meters, water-quality
#   stations, hubs) run these tasks until reset:
#     - sample loop: app.sample(now) every config "sample_s" seconds, the
#       readings queued in the outbox with their time;
#     - uplink loop: every "send_s" seconds (and AT ONCE when an alarm event
#       is queued) send what the outbox holds, in as many uplinks as it
#       takes; a failed send backs off (10 s doubling to 15 min, 5.03 waits
#       its Max-Age); commands in the gateway's reply run right away;
#     - the app's own `run()` if it has one, and for apps with
#       SERVES_COMMANDS the `POST /c` command server;
#   sleepy nodes (app.SLEEPY, battery meters) do one cycle per wake: sample,
#   send everything (waiting for the gateway's reply and its commands),
#   then board.deepsleep() for the rest of "send_s";
#   both feed the board's watchdog (board.WDT, 30 s or the chip's limit)
#   from a task of their own, so a blocked event loop resets the node.
#
# The app interface (apps/<name>.py defines `App`):
#
#   class App:
#       SLEEPY = False           # True: one cycle per wake, then deep sleep
#       SERVES_COMMANDS = False  # True: always-on, also takes POST /c
#
#       def __init__(self, node, peripherals, config):
#           # peripherals: board.peripherals(config), a dict of buses/pins;
#           # config: the node's config map (read-only; change it with
#           # node.set_config). Register command handlers here:
#           node.commands.register("valve.close", self.close_valve)
#
#       def sample(self, now):
#           # now: Unix seconds, or None before the clock was ever set.
#           # Return the readings of this sample, [(name, value), ...] with
#           # names and value kinds of protocols.senml.READINGS (may be
#           # empty or None); raise events with node.event(code, value).
#           return [("vol", 12.5), ("bat", 3.3)]
#
#       def self_test(self):     # optional; after an OTA update, before the
#           return True          # new firmware is confirmed
#
#       async def run(self):     # optional, always-on nodes: background
#           ...                  # work (contacts, buttons, leak detection)
#
#   A command handler takes the args map and returns None or a detail text
#   (it may be a coroutine); it raises commands.CommandError(code, detail)
#   to refuse or fail with a given result code; any other exception is
#   reported as E_FAILED. The node registers interval.set, reboot and
#   fw.update itself; an app may register its own in their place.
#
#   What an app may use of the node: node.event(code, value=None),
#   node.commands.register(op, handler), node.config, node.set_config(
#   changes), node.clock.now(), node.board, node.version, node.wake()
#   (send soon), node.request_reset() (reboot once results are sent).

import asyncio
import sys

from micropython import const

from protocols.coap_numbers import POST

from . import config, uplink
from .clock import Clock
from .coap_client import Client, CoapError
from .commands import Commands, CommandServer
from .ota import Ota
from .outbox import Outbox, is_alarm, stored_inflight_seq
from .seq import CommandIds, SeqCounter
from .slots import ROOT, FileSlots
from .store import Store

WDT_MS = const(30000)
MAX_PER_ROUND = const(8)  # uplinks per round before others get a turn
CONFIRM_TIMEOUT_MS = const(600000)  # a new firmware must reach the gateway
COMMAND_PORT = const(5683)


class NotProvisioned(Exception):
    pass


def log(*args):
    print("kapok:", *args)


def _print_exception(e):
    pe = getattr(sys, "print_exception", None)
    if pe is not None:
        pe(e)
    else:  # CPython
        import traceback

        traceback.print_exception(e)


def load_app(name):
    """The App class of apps/<name>.py."""
    package = __import__("apps." + name)
    return getattr(package, name).App


class Node:
    def __init__(self, board, app_class=None):
        self.board = board
        store = Store(board.DATA_DIR, board.flash_sync)
        cfg = config.load(store)
        if cfg is None:
            raise NotProvisioned(f"no valid config in {store.dir}: provision this node first")
        self.store = store
        self.config = cfg
        self.identity = config.identity(cfg)
        self.clock = Clock(
            board.time_ms,
            getattr(board, "unix_time", None),
            getattr(board, "set_unix_time", None),
        )
        self.seq = SeqCounter(store, at_least=stored_inflight_seq(store) + 1)
        self.outbox = Outbox(store, self.identity.seal, self.seq, self.clock, board.time_ms)
        self.commands = Commands(
            cfg["id"], cfg["authorities"], CommandIds(store), self.clock, self.outbox
        )
        slots = getattr(board, "SLOTS", None)
        if slots is None or isinstance(slots, str):
            slots = FileSlots(store, slots or ROOT)
        self.slots = slots
        self.ota = Ota(slots, cfg["authorities"], board.NAME, cfg["app"], self.outbox)
        self.version = slots.version()
        self.reset_cause = board.reset_cause()
        self.backoff = uplink.Backoff()
        self.client = None
        self.transport = None
        self.wdt = None
        self.tasks = []
        self.acked = 0  # uplinks acknowledged this boot
        self._wake = asyncio.Event()
        self._timer_gen = 0
        self._timed_out = False
        self._reset_requested = False
        self._due = 0  # monotonic ms of the next uplink round
        self._hold_until = 0  # ms: the gateway asked us to wait (5.03)
        self._start_ms = board.time_ms()
        self.commands.register("interval.set", self._interval_set)
        self.commands.register("reboot", self._reboot)
        self.commands.register("fw.update", self._fw_update)
        self._report_boot()
        if app_class is None:
            app_class = load_app(cfg["app"])
        self.app = app_class(self, board.peripherals(cfg), cfg)

    # ------------------------------------------------------ for the app

    def event(self, code, value=None):
        """Queue an event; an alarm wakes the uplink at once."""
        self.outbox.add_event(code, value)
        if is_alarm(code):
            self._wake.set()

    def wake(self):
        self._wake.set()

    def request_reset(self):
        """Reboot once the pending results have had their uplink."""
        self._reset_requested = True
        self._wake.set()

    def set_config(self, changes):
        self.config = config.update(self.store, self.config, changes)
        return self.config

    def sample_once(self):
        try:
            readings = self.app.sample(self.clock.now())
            if readings:
                self.outbox.add_sample(readings)
        except Exception as e:  # a bad sensor must not stop the node
            log("sample failed:", e)

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    # --------------------------------------------------------- built-ins

    def _report_boot(self):
        if self.reset_cause != "deepsleep":
            # S tells the cloud which seq gap is a reboot, not a loss
            self.outbox.add_event("boot", self.seq.boot_start)
        report = self.slots.take_report()
        if report is not None:
            self.outbox.add_event(report[0], report[1])
            self.slots.clear_report()

    def _interval_set(self, args):
        s = args["s"]
        changes = {"send_s": s}
        if self.config["sample_s"] > s:
            changes["sample_s"] = s
        self.set_config(changes)
        return None

    def _reboot(self, args):
        self.request_reset()
        return "rebooting"

    async def _fw_update(self, args):
        detail = await self.ota.update(await self.connect(), args["m"])
        if self.slots.staged():
            self.request_reset()
        return detail

    def _confirm(self):
        test = getattr(self.app, "self_test", None)
        ok = True
        why = "self-test failed"
        if test is not None:
            try:
                ok = test()
            except Exception as e:
                ok = False
                why = f"self-test: {e}"
        if ok:
            version = self.slots.confirm()
            self.version = version
            self.outbox.add_event("fw.ok", version)
            log("firmware", version, "confirmed")
        else:
            # this boot counts as failed; boot.py rolls back after three
            self.outbox.add_event("fw.fail", why)
            log(why, "- rebooting")
            self.board.reset()

    # ------------------------------------------------------------ uplink

    def _rand(self):
        return self.board.random_bytes(1)[0] / 255

    def _retry_later(self, hold_s):
        now = self.board.time_ms()
        if hold_s is not None:
            self._hold_until = now + hold_s * 1000
            self._due = self._hold_until
        else:
            self._due = now + self.backoff.next_s(self._rand()) * 1000

    async def connect(self):
        """Open the Transport and the CoAP client to the gateway (once)."""
        if self.client is None:
            t = self.board.Transport()
            await t.open(0)
            self.transport = t
            gw = self.config["gateway"]
            self.client = Client(t, (gw[0], gw[1]), self.board.time_ms, self.board.random_bytes)
        return self.client

    async def uplink(self):
        """Send what the outbox holds; True when all of it was acked."""
        await self.connect()
        sent = 0
        while self.outbox.busy() and sent < MAX_PER_ROUND:
            self.feed()
            got = self.outbox.message()
            if got is None:
                return True  # nothing that can go in an uplink
            seq, msg = got
            sent += 1
            try:
                resp = await self.client.request(POST, "u", msg, self.identity.content_format)
            except (CoapError, OSError) as e:
                log("uplink", seq, "failed:", e)
                self._retry_later(None)
                return False
            kind, reply, hold, why = uplink.outcome(resp, seq)
            if reply is not None:
                # the clock first: the reply's commands are judged by it
                self.clock.sync(reply["gateway_time"])
            if kind == uplink.ACKED:
                self.outbox.acked(seq)
                self.acked += 1
                self.backoff.reset()
                if self.slots.confirming():
                    self._confirm()
            elif kind == uplink.REJECTED:
                log("uplink", seq, "refused for good:", why)
                self.outbox.discard()
            if reply is not None and reply["commands"]:
                await self.commands.run_all(reply["commands"])
            if kind != uplink.ACKED:
                if kind == uplink.RETRY:
                    log("uplink", seq, "not taken:", why)
                self._retry_later(hold)
                return False
        return not self.outbox.busy()

    async def _timer(self, ms, gen):
        await asyncio.sleep(ms / 1000)
        if gen == self._timer_gen:
            self._timed_out = True
            self._wake.set()

    async def _sleep_or_wake(self, ms):
        # True when woken by wake()/an alarm, False when `ms` passed. (Not
        # asyncio.wait_for: in the WebAssembly port it never returns when
        # the awaited thing finishes before the timeout.)
        self._timer_gen += 1
        self._timed_out = False
        timer = asyncio.create_task(self._timer(ms, self._timer_gen))
        await self._wake.wait()
        if self._timed_out:
            self._wake.clear()
            return False
        self._timer_gen += 1  # a late timer must not wake the next wait
        timer.cancel()
        return True

    async def _uplink_loop(self):
        ms = self.board.time_ms
        while True:
            wait = self._due - ms()
            if wait > 0:
                woken = await self._sleep_or_wake(wait)
                if woken and ms() < self._hold_until and not self._reset_requested:
                    self._wake.clear()  # the gateway asked for quiet: wait
                    continue
                if not woken:
                    continue
            self._wake.clear()
            ok = True
            if self.outbox.busy():
                ok = await self.uplink()
            if ok:
                self._due = ms() + self.config["send_s"] * 1000
            if self._reset_requested:
                log("rebooting")
                self.board.reset()
                return
            if self.slots.confirming() and ms() - self._start_ms > CONFIRM_TIMEOUT_MS:
                log("new firmware never reached the gateway - rebooting")
                self.board.reset()
                return

    async def _sample_loop(self):
        # the first sample was taken by run(), so the first uplink has it
        while True:
            await asyncio.sleep(self.config["sample_s"])
            self.sample_once()

    async def _watchdog_loop(self):
        # a board may cut the timeout to its chip's limit (RP2040: 8.4 s)
        period = getattr(self.wdt, "timeout_ms", WDT_MS) / 4000
        while True:
            self.feed()
            await asyncio.sleep(period)

    async def _guard(self, name, make):
        # keep an app task alive: log its crash, start it again
        while True:
            try:
                await make()
                return
            except Exception as e:
                log(name, "crashed:", e)
            await asyncio.sleep(5)

    async def _serve_loop(self):
        port = self.config["options"].get("listen_port", COMMAND_PORT)
        t = self.board.Transport()
        await t.open(port)
        server = CommandServer(self.commands)
        while True:
            got = await t.recv(60000)
            if got is None:
                continue
            out = await server.handle(got[0], got[1], self.board.time_ms())
            if out is not None:
                await t.send(out, got[1])

    async def _cycle(self):
        # one wake of a sleepy node
        self.sample_once()
        await self.uplink()
        if self._reset_requested:
            log("rebooting")
            self.board.reset()
            return
        elapsed = self.board.time_ms() - self._start_ms
        rest = self.config["send_s"] * 1000 - elapsed
        self.transport.close()
        self.board.deepsleep(rest if rest > 1000 else 1000)

    async def run(self):
        board = self.board
        self.wdt = board.WDT(WDT_MS)
        # fed while the event loop runs: a request may wait 93 s for its
        # answer, a blocked loop (a hung driver call) is what it catches
        tasks = self.tasks
        tasks.append(asyncio.create_task(self._watchdog_loop()))
        await self.connect()
        if getattr(self.app, "SLEEPY", False):
            await self._cycle()
            return
        self.sample_once()
        tasks.append(asyncio.create_task(self._sample_loop()))
        if hasattr(self.app, "run"):
            tasks.append(asyncio.create_task(self._guard("app", self.app.run)))
        if getattr(self.app, "SERVES_COMMANDS", False):
            tasks.append(asyncio.create_task(self._guard("command server", self._serve_loop)))
        await self._uplink_loop()


async def _run_or_reset(node):
    try:
        await node.run()
    except Exception as e:
        # an unattended node must not stop at a traceback: reset (and, in
        # a new firmware, count a failed boot)
        _print_exception(e)
        await asyncio.sleep(2)
        node.board.reset()


def start(coro):
    """Run the node's coroutine: asyncio.run() on boards; the WebAssembly
    port has none and runs tasks on the JavaScript event loop instead."""
    run = getattr(asyncio, "run", None)
    if run is not None:
        return run(coro)
    return asyncio.create_task(coro)


def main(board=None):
    """Entry point of main.py. Returns without running when the node is not
    provisioned, so the installer's REPL is free."""
    if board is None:
        import board
    try:
        node = Node(board)
    except NotProvisioned as e:
        log(e)
        return None
    except Exception as e:
        _print_exception(e)
        import time

        time.sleep(2)
        board.reset()
        return None
    log("node", node.config["id"], "firmware", node.version, "app", node.config["app"])
    return start(_run_or_reset(node))
