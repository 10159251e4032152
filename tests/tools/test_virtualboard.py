"""The virtual board: real MicroPython (the WebAssembly port under Node)
booting a board image, with emulated peripherals, real UDP, and a host that
does what power, a reset button, a watchdog and deep sleep do to a board.

The boards here run small test main.py files, not the node runtime (that
is tested on its own and in hardware_tests/)."""

import json
import socket
import threading
import time

import pytest

from kapok.protocols import cbor
from kapok.tools.virtualboard import (
    VirtualBoard,
    VirtualBoardError,
    board_modules,
    build_image,
    config_file_name,
)

EVENT_TIMEOUT = 30


def image(tmp_path, main, **kwargs):
    files = {"/main.py": main, "/boot.py": "print('boot.py ran')\n"}
    return build_image(tmp_path / "flash", files=files, **kwargs)


def started(img, **kwargs):
    return VirtualBoard(img, **kwargs).start()


def expect(vb, event=None, **fields):
    got = vb.wait_for(event, timeout=EVENT_TIMEOUT, **fields)
    assert got is not None, f"no {event} {fields}; console:\n" + "\n".join(vb.console)
    return got


def expect_console(vb, text):
    line = vb.wait_console(text, timeout=EVENT_TIMEOUT)
    assert line is not None, f"board never printed {text!r}; console:\n" + "\n".join(vb.console)
    return line


class UdpPeer:
    """A UDP socket on the test's side that answers each datagram."""

    def __init__(self, host, answer):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(EVENT_TIMEOUT)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.answer = answer
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            data, peer = self.sock.recvfrom(2048)
        except OSError:
            return
        self.received.append((data, peer))
        self.sock.sendto(self.answer, peer)

    def close(self):
        self.sock.close()


# -- a whole boot: console, flash, meter bus, ADC, pins, UDP, reset -------------------

IO_MAIN = """
import asyncio
import board
from drivers.meterbus import cjt188

cause = board.reset_cause()
print("cause", cause)
try:
    with open("/data/count") as f:
        n = int(f.read())
except OSError:
    n = 0
print("count", n)
with open("/data/count", "w") as f:
    f.write(str(n + 1))
board.flash_sync()

if cause == "soft":
    print("second boot done")
else:
    p = board.peripherals({"kind": "water-meter"})
    meter = cjt188.CJT188(p["uart"], cjt188.ANY)
    print("meter", meter.read(), meter.error)
    print("methane adc", p["methane"].read_u16())
    p["siren"].value(1)

    async def net():
        t = board.Transport()
        await t.open(0)
        await t.send(b"hello from the board", (HOST, PORT))
        got = await t.recv(10000)
        print("reply", got[0], got[1][1] == PORT)
        t.close()
        board.reset()
        print("never printed: reset() does not return")

    asyncio.run(net())
    print("never printed: asyncio.run() runs the board's main loop")
"""


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_board_boots_does_io_resets_and_keeps_what_it_synced(tmp_path, host):
    peer = UdpPeer(host, b"hello board")
    main = IO_MAIN.replace("HOST", repr(host)).replace("PORT", str(peer.port))
    img = image(tmp_path, main, compiled=True)  # /lib as the .mpy a board gets
    setup = {"world": {"meter.vol": 123.45, "methane": 0}}
    with started(img, setup=setup) as vb:
        expect(vb, "boot", cause="power", boot=1)
        expect_console(vb, "boot.py ran")
        expect_console(vb, "count 0")
        assert expect_console(vb, "meter") == "meter {'vol': 123.45, 'valve': True} None"
        methane_adc = int(expect_console(vb, "methane adc").split()[-1])
        assert abs(methane_adc - 0.1 * 65535) < 32  # clean air: 10 % of full scale
        expect(vb, "output", name="siren", value=1)
        assert expect_console(vb, "reply") == "reply b'hello board' True"
        expect(vb, "output", name="siren", value=0)  # the reset released the pin
        expect(vb, "reset", cause="soft")
        expect(vb, "boot", cause="soft", boot=2)
        expect_console(vb, "count 1")
        expect_console(vb, "second boot done")
        expect(vb, "halted", reason="returned")
        assert not any("never printed" in line for line in vb.console)
    peer.close()
    assert peer.received[0][0] == b"hello from the board"
    assert (img / "data" / "count").read_text() == "2"


def test_every_emulated_device_answers_the_drivers_inside_micropython(tmp_path):
    main = """
import asyncio
import time
import board
from drivers.counter.pulse import PulseCounter
from drivers.meterbus import cjt188, dlt645
from drivers.modbus import rtu
from drivers.sensor import ds18b20, water_probe

p = board.peripherals({"kind": "gas-meter"})
uart = p["uart"]
gas = cjt188.CJT188(uart, cjt188.ANY, meter_type=cjt188.TYPE_GAS)
print("gas", gas.read(), gas.error)
power = dlt645.DLT645(uart, dlt645.ANY)
print("energy", power.read(), power.error)
uart.init(baudrate=9600, parity=None)
probe = water_probe.WaterProbe(rtu.Master(uart))
q = probe.read()
print("water", sorted((k, round(v, 3)) for k, v in q.items()), probe.error)
thermo = ds18b20.DS18B20(p["onewire"])
thermo.read()
time.sleep_ms(760)
print("temp", thermo.read(), thermo.error)
pulses = PulseCounter(litres_per_pulse=10, level=p["reed_a"].value())
p["reed_a"].irq(lambda pin: pulses.edge(pin.value(), time.ticks_ms()))

async def count():
    print("flowing")
    for _ in range(200):
        pulses.poll(time.ticks_ms())
        if pulses.forward >= 3:
            break
        await asyncio.sleep_ms(20)
    print("pulses", pulses.forward)

asyncio.run(count())
"""
    setup = {
        "cjt188": {"type": 0x30},
        "world": {
            "meter.vol": 4321.09,
            "meter.energy": 77.7,
            "temp": -3.5,
            "water.ph": 8.1,
            "water.cond": 0.125,
        },
    }
    with started(image(tmp_path, main, compiled=True), setup=setup) as vb:
        assert expect_console(vb, "gas") == "gas {'vol': 4321.09, 'valve': True} None"
        assert expect_console(vb, "energy") == "energy {'energy': 77.7} None"
        water = expect_console(vb, "water")
        assert "('ph', 8.1)" in water and "('cond', 0.125)" in water and water.endswith("None")
        assert expect_console(vb, "temp") == "temp {'temp': -3.5} None"
        expect_console(vb, "flowing")
        vb.set({"meter.flow": 72})  # 20 l/s: two 10 l pulses a second
        assert expect_console(vb, "pulses") == "pulses 3"


# -- durability: only what was synced survives -----------------------------------

DURABILITY_MAIN = """
import asyncio
import os
import board

print("saw", sorted(os.listdir("/data")), "rtc", board.unix_time())
with open("/data/synced", "w") as f:
    f.write("kept")
board.flash_sync()
with open("/data/unsynced", "w") as f:
    f.write("lost")
board.set_unix_time(1750000000)
print("written")


async def idle():
    while True:
        await asyncio.sleep(1)


asyncio.run(idle())
"""


def test_power_cut_loses_exactly_the_unsynced_write_and_the_rtc(tmp_path):
    img = image(tmp_path, DURABILITY_MAIN)
    with started(img) as vb:
        assert expect_console(vb, "saw") == "saw [] rtc None"
        expect_console(vb, "written")
        vb.power_cut()
        expect(vb, "power", state="off")
        assert (img / "data" / "synced").read_text() == "kept"
        assert not (img / "data" / "unsynced").exists()
        assert vb.get()["rtc"] is None  # no backup battery
        vb.power_on()
        expect(vb, "boot", cause="power")
        assert expect_console(vb, "saw") == "saw ['synced'] rtc None"
        expect_console(vb, "written")
        assert vb.get()["rtc"] == pytest.approx(1750000000, abs=5)


def test_kill_9_of_the_host_is_a_power_cut(tmp_path):
    img = image(tmp_path, DURABILITY_MAIN)
    vb = started(img)
    try:
        expect_console(vb, "written")
        vb.kill()
    finally:
        vb.stop()
    assert (img / "data" / "synced").read_text() == "kept"
    assert not (img / "data" / "unsynced").exists()
    assert not [p.name for p in (img / "data").iterdir() if p.name.startswith(".vboard")]


def test_removed_files_are_removed_from_flash_at_sync(tmp_path):
    main = """
import os
import board
os.mkdir("/data/sub")
with open("/data/sub/a", "w") as f:
    f.write("a")
board.flash_sync()
print("one", sorted(os.listdir("/data")))
os.remove("/data/sub/a")
os.rmdir("/data/sub")
board.flash_sync()
print("two")
"""
    with started(image(tmp_path, main)) as vb:
        sync = expect(vb, "flash_sync")
        assert sync["written"] == ["/data/sub/a"]
        expect_console(vb, "one")
        assert expect(vb, "flash_sync")["removed"] == ["/data/sub/a"]
        expect(vb, "halted")
    assert list((tmp_path / "flash" / "data").iterdir()) == []


def test_flash_sync_raises_when_the_host_cannot_persist(tmp_path):
    # Something the host cannot replace sits where the file goes (as a full
    # or failing disk would refuse it): the board is told, not lied to.
    main = """
import asyncio
import board
p = board.peripherals({"kind": "hub"})

async def run():
    while p["door"].value():  # the test opens the door when it is ready
        await asyncio.sleep_ms(10)
    with open("/data/state", "w") as f:
        f.write("new")
    try:
        board.flash_sync()
        print("synced")
    except OSError as e:
        print("sync failed", "state" in str(e))

asyncio.run(run())
"""
    img = image(tmp_path, main)
    with started(img) as vb:
        expect(vb, "boot")
        (img / "data" / "state").mkdir()
        vb.set({"door": 1})
        assert expect_console(vb, "sync") == "sync failed True"
    assert sorted(p.name for p in (img / "data").iterdir()) == ["state"]  # no litter


# -- watchdog and deep sleep ----------------------------------------------------


def test_watchdog_resets_a_board_stuck_in_a_loop(tmp_path):
    main = """
import board
print("cause", board.reset_cause())
if board.reset_cause() != "watchdog":
    wdt = board.WDT(300)
    print("hanging")
    while True:  # never yields: only a hardware watchdog gets out of this
        pass
"""
    with started(image(tmp_path, main)) as vb:
        hung = expect(vb, "console", text="hanging")["t"]
        assert expect(vb, "reset", cause="watchdog")["t"] - hung >= 300 - 15
        expect(vb, "boot", cause="watchdog")
        expect_console(vb, "cause watchdog")


def test_fed_watchdog_lets_the_board_run(tmp_path):
    main = """
import asyncio
import board

async def run():
    wdt = board.WDT(1000)
    for _ in range(15):
        await asyncio.sleep_ms(100)
        wdt.feed()
    print("still running")

asyncio.run(run())
"""
    with started(image(tmp_path, main)) as vb:
        expect_console(vb, "still running")
        expect(vb, "halted", reason="returned")
        assert not [e for e in vb.events if e.get("event") == "reset"]


SLEEP_MAIN = """
import board
print("cause", board.reset_cause(), "rtc", board.unix_time())
if board.reset_cause() == "power":
    with open("/data/before", "w") as f:
        f.write("x")  # not synced by hand: deepsleep() syncs
    board.set_unix_time(1750000000)
    board.deepsleep(SLEEP_MS)
print("awake")
"""


def test_deep_sleep_restarts_after_its_time_with_rtc_and_flash_kept(tmp_path):
    img = image(tmp_path, SLEEP_MAIN.replace("SLEEP_MS", "600"))
    with started(img) as vb:
        expect_console(vb, "cause power rtc None")
        asleep = expect(vb, "sleep", ms=600)["t"]
        assert expect(vb, "boot", cause="deepsleep")["t"] - asleep >= 600
        rtc = expect_console(vb, "cause deepsleep").split()[-1]
        assert 1750000000 <= int(rtc) <= 1750000010
        expect_console(vb, "awake")
    assert (img / "data" / "before").read_text() == "x"


def test_wake_ends_a_long_sleep(tmp_path):
    with started(image(tmp_path, SLEEP_MAIN.replace("SLEEP_MS", "3600000"))) as vb:
        expect(vb, "sleep", ms=3600000)
        assert vb.get()["rtc"] is not None
        vb.wake()
        expect(vb, "boot", cause="deepsleep")
        expect_console(vb, "awake")


# -- the physical world from the control channel ----------------------------------------


def test_control_channel_changes_what_the_board_reads(tmp_path):
    main = """
import asyncio
import board

p = board.peripherals({"kind": "hub"})

async def watch():
    last = None
    while True:
        now = (p["door"].value(), p["methane"].read_u16() > 30000, p["button"].value())
        if now != last:
            print("door", now[0], "gas", now[1], "button", now[2])
            last = now
        await asyncio.sleep_ms(10)

asyncio.run(watch())
"""
    with started(image(tmp_path, main)) as vb:
        expect_console(vb, "door 1 gas False button 1")  # inputs idle high
        vb.set({"door": True, "methane": 40})
        expect_console(vb, "door 0 gas True button 1")
        vb.press(300)
        expect_console(vb, "door 0 gas True button 0")
        expect_console(vb, "door 0 gas True button 1")  # released after 300 ms


def test_valve_closes_against_its_end_stop_and_the_flow_stops(tmp_path):
    # A tiny gas-leak rule: the drivers, the emulated methane head and motor
    # valve, and the world's physics (travel time, no flow through a shut valve).
    main = """
import asyncio
import time
import board
from drivers.actuator.valve import Valve
from drivers.sensor.methane import Methane

p = board.peripherals({"kind": "gas-meter"})
valve = Valve((p["valve_open"], p["valve_close"]), p["stop_open"], p["stop_closed"])
gas = Methane(p["methane"], warmup_ms=0)
print("valve", valve.state)

async def run():
    while True:
        now = time.ticks_ms()
        e = gas.poll(now)
        if e and e[1]:
            print("gas leak", round(e[2]))
            valve.close(now)
        before = valve.state
        valve.poll(now)
        if valve.state != before:
            print("valve", valve.state)
        await asyncio.sleep_ms(20)

asyncio.run(run())
"""
    setup = {"world": {"valve.travel_ms": 800, "meter.flow": 36}}  # 10 l/s
    with started(image(tmp_path, main), setup=setup) as vb:
        expect_console(vb, "valve open")
        vb.set({"methane": 25})
        expect_console(vb, "gas leak 25")
        expect(vb, "output", name="motor.close", value=1)
        shut = expect(vb, "output", name="motor.close", value=0)  # stopped at the end stop
        assert shut is not None
        expect_console(vb, "valve closed")
        world = vb.get()
        assert world["valve.state"] == "closed" and world["valve.closed_stop"] == 1
        vol = world["meter.vol"]
        time.sleep(0.3)
        assert vb.get()["meter.vol"] == vol  # nothing flows through a shut valve
        vb.set({"valve.pos": 1})  # someone turns it open by hand
        time.sleep(0.3)
        assert vb.get()["meter.vol"] > vol


def until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_world_physics_of_registers_valve_and_button(tmp_path):
    # the host alone, board powered off: the world still runs
    with started(image(tmp_path, "pass\n"), power_on=False) as vb:
        vb.set({"meter.vol": 10, "meter.flow": -3600, "meter.power": 3600})
        time.sleep(0.2)  # -1 l/ms through the meter; 1 kWh/s
        w = vb.get()
        assert w["meter.rev"] >= 0.2 and w["meter.vol"] + w["meter.rev"] == pytest.approx(10)
        assert w["meter.energy"] >= 0.2
        vb.set({"meter.flow": 0, "valve.travel_ms": 1000, "valve.jam": 1})
        vb.set({"valve.drive": -1})  # a meter's own valve controller closing it
        time.sleep(0.2)
        assert vb.get()["valve.pos"] == 1  # jammed: the motor turns, the ball does not
        vb.set({"valve.jam": 0})
        time.sleep(0.1)
        w = vb.get()
        assert w["valve.state"] == "closing" and 0 < w["valve.pos"] < 1
        until(lambda: vb.get()["valve.state"] == "closed")
        assert vb.get()["valve.closed_stop"] == 1
        vb.press(1000)
        assert vb.get()["button"] == 1
        until(lambda: vb.get()["button"] == 0)


# -- faults and misuse -----------------------------------------------------------------


def test_an_exception_in_main_halts_the_board_with_its_traceback(tmp_path):
    main = "import board\nprint('before')\nraise ValueError('broken config')\n"
    with started(image(tmp_path, main)) as vb:
        halted = expect(vb, "halted", reason="exception")
        assert "ValueError: broken config" in halted["error"]
        assert 'File "/main.py", line 3' in halted["error"]
        assert "before" in vb.console


def test_control_channel_rejects_bad_commands(tmp_path):
    with started(image(tmp_path, "print('x')\n"), power_on=False) as vb:
        with pytest.raises(VirtualBoardError, match=r"cannot be set.*settable"):
            vb.set({"meter.volume": 1})
        with pytest.raises(VirtualBoardError, match="unknown command"):
            vb.send({"cmd": "explode"})
        assert vb.send({"cmd": "get"})["power"] == "off"
        vb.power_on()
        expect(vb, "boot", cause="power")


def test_missing_micropython_port_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("KAPOK_NODE_MODULES", raising=False)
    monkeypatch.setattr(
        "kapok.tools.virtualboard.HERE", tmp_path / "elsewhere" / "tools" / "virtualboard"
    )
    with pytest.raises(VirtualBoardError, match="npm ci"):
        VirtualBoard(tmp_path, node_modules=tmp_path / "empty")


def test_missing_image_is_a_clear_error(tmp_path):
    with pytest.raises(VirtualBoardError, match="no board image"):
        VirtualBoard(tmp_path / "nothing").start()


# -- the board image ---------------------------------------------------------------------


def test_build_image_lays_out_a_board(tmp_path):
    config = {"id": "gm-0001a3", "kind": "gas-meter", "gateway": ["127.0.0.1", 5683]}
    img = build_image(tmp_path / "img", config=config, files={"/main.py": "pass\n"})
    names = {p.relative_to(img).as_posix() for p in img.rglob("*") if p.is_file()}
    assert {"boot.py", "main.py", "lib/board.py", "lib/peripherals.py", "lib/boardlib.py"} <= names
    assert "lib/protocols/cbor.py" in names and "lib/drivers/meterbus/cjt188.py" in names
    assert not [n for n in names if n.endswith("manifest.py")]
    assert (img / "slots").is_dir()
    assert cbor.loads((img / "data" / config_file_name()).read_bytes()) == config
    assert (img / "main.py").read_text() == "pass\n"


@pytest.mark.parametrize("board", ["esp32", "rp2", "virtual"])
def test_build_image_compiles_each_board(tmp_path, board):
    img = build_image(tmp_path / board, board=board, compiled=True, files={"/main.py": ""})
    expected = {f"{p.stem}.mpy" for p in board_modules(board)}
    assert expected <= {p.name for p in (img / "lib").glob("*.mpy")}
    assert (img / "lib" / "board.mpy").read_bytes()[:1] == b"M"
    assert not list((img / "lib").rglob("*.py"))


def test_build_image_refuses_unknown_boards_and_apps(tmp_path):
    with pytest.raises(ValueError, match="no board"):
        build_image(tmp_path / "a", board="arduino")
    with pytest.raises(ValueError, match="no app"):
        build_image(tmp_path / "b", app="toaster")


def test_rebuilding_an_image_keeps_the_node_state(tmp_path):
    img = build_image(tmp_path / "img", files={"/main.py": "pass\n"})
    (img / "data" / "seq").write_bytes(b"\x18\x40")
    build_image(img, files={"/main.py": "print('new')\n"})
    assert (img / "data" / "seq").read_bytes() == b"\x18\x40"
    assert (img / "main.py").read_text() == "print('new')\n"


def test_events_are_json_lines(tmp_path):
    # what `kapok sim` and other tools read: one JSON object per line
    with started(image(tmp_path, "print('hello')\n")) as vb:
        expect_console(vb, "hello")
    assert all(json.loads(json.dumps(e)) == e for e in vb.events)
