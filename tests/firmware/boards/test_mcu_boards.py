"""The ESP32 and Pico W board modules, imported on CPython against fakes of
MicroPython's machine / network / onewire / time (tests/firmware/boards/
fake_machine.py) and real sockets: they cannot run on a board here, but
what they do with those APIs can be checked."""

import asyncio
import socket

import pytest

from .fake_machine import FakeMachine, FakeNetwork, Reset, load_board

INTERFACE = (
    "NAME",
    "DATA_DIR",
    "SLOTS",
    "time_ms",
    "unix_time",
    "set_unix_time",
    "random_bytes",
    "flash_sync",
    "Transport",
    "gateway_addr",
    "connect",
    "WDT",
    "WDT_MAX_MS",
    "reset",
    "deepsleep",
    "reset_cause",
    "peripherals",
)


@pytest.fixture(params=["esp32", "rp2"])
def loaded(request):
    return load_board(request.param)


def test_board_modules_offer_the_whole_interface(loaded):
    board = loaded.board
    for name in INTERFACE:
        assert hasattr(board, name), name
    assert board.NAME in ("esp32", "rp2")
    assert board.DATA_DIR == "/data" and board.SLOTS == "/slots"


def test_virtual_board_offers_the_same_interface():
    board = load_board("virtual", setup='{"gateway": ["::1", 5684]}').board
    for name in INTERFACE:
        assert hasattr(board, name), name
    assert board.NAME == "virtual" and board.SLOTS == "/slots"
    assert board.gateway_addr({"gateway": ["10.0.0.1", 5683]}) == ("10.0.0.1", 5683)
    assert board.gateway_addr({}) == ("::1", 5684)  # the host's setup


def test_time_ms_does_not_wrap_with_the_tick_counter(loaded):
    t = loaded.time
    t.now_ms = (1 << 30) - 1000  # just before ticks_ms wraps
    clock = loaded.boardlib.MsClock()
    readings = []
    for _ in range(5):
        t.now_ms += 600
        readings.append(clock())
    assert readings == [600, 1200, 1800, 2400, 3000]


def test_rtc_unset_after_power_on_then_set_from_unix_time(loaded):
    board = loaded.board
    assert board.unix_time() is None  # the RTC's power-on date means "never set"
    board.set_unix_time(1735787045)  # 2025-01-02 03:04:05 UTC, a Thursday
    assert loaded.machine.rtc == (2025, 1, 2, 3, 3, 4, 5, 0)
    assert board.unix_time() == 1735787045


def test_esp32_reset_causes():
    machine = FakeMachine()
    board = load_board("esp32", machine).board
    for cause, name in (
        (machine.PWRON_RESET, "power"),
        (machine.HARD_RESET, "power"),
        (machine.WDT_RESET, "watchdog"),
        (machine.DEEPSLEEP_RESET, "deepsleep"),
        (machine.SOFT_RESET, "soft"),
    ):
        machine.cause = cause
        assert board.reset_cause() == name
    with pytest.raises(Reset):
        board.deepsleep(60000)
    assert machine.calls == [("deepsleep", 60000)]


def test_rp2_tells_its_watchdog_reboots_apart():
    # machine.reset() and deepsleep() reboot the RP2040 through its
    # watchdog, so reset_cause() says WDT_RESET for all of them; the board
    # leaves a mark in a watchdog scratch register to tell them apart.
    machine = FakeMachine()
    board = load_board("rp2", machine).board
    assert board.reset_cause() == "power"
    with pytest.raises(Reset):
        board.reset()
    machine.cause = machine.WDT_RESET
    board = load_board("rp2", machine).board  # the next boot
    assert board.reset_cause() == "soft"
    with pytest.raises(Reset):
        board.deepsleep(5000)
    assert machine.calls[-1] == ("deepsleep", 5000)
    board = load_board("rp2", machine).board
    assert board.reset_cause() == "deepsleep"
    board = load_board("rp2", machine).board  # rebooted with no mark: the watchdog fired
    assert board.reset_cause() == "watchdog"
    machine.mem32[0x4005800C] = 0x4B500001  # a stale mark does not survive power-on
    machine.cause = machine.PWRON_RESET
    assert load_board("rp2", machine).board.reset_cause() == "power"


def test_watchdog_timeout_is_cut_to_the_chip_limit():
    rp2 = load_board("rp2")
    wdt = rp2.board.WDT(30000)
    assert wdt.timeout_ms == 8388 and rp2.machine.wdts[-1].timeout == 8388
    wdt.feed()
    assert rp2.machine.wdts[-1].fed == 1
    esp = load_board("esp32")
    assert esp.board.WDT(30000).timeout_ms == 30000
    with pytest.raises(ValueError):
        esp.board.WDT(0)


def test_flash_sync_flushes_the_file_system(loaded, monkeypatch):
    synced = []
    monkeypatch.setattr(loaded.mcu.os, "sync", lambda: synced.append(1), raising=False)
    loaded.board.flash_sync()
    assert synced == [1]


def test_random_bytes_are_random(loaded):
    a, b = loaded.board.random_bytes(16), loaded.board.random_bytes(16)
    assert len(a) == 16 and a != b


def test_peripherals_follow_the_pin_map():
    esp = load_board("esp32")
    p = esp.board.peripherals({"kind": "gas-meter"})
    Pin = esp.machine.Pin
    assert (p["reed_a"].n, p["reed_a"].mode, p["reed_a"].pull) == (34, Pin.IN, None)
    assert (p["tamper"].n, p["tamper"].pull) == (32, Pin.PULL_UP)
    assert (p["siren"].n, p["siren"].mode, p["siren"].init_value) == (19, Pin.OUT, 0)
    assert p["methane"].pin == Pin(36) and p["methane"].atten == esp.machine.ADC.ATTN_11DB
    assert p["onewire"].pin == Pin(13)
    uart = p["uart"]
    assert uart.id == 2
    assert uart.kwargs == {
        "baudrate": 2400,
        "bits": 8,
        "parity": 0,
        "stop": 1,
        "tx": Pin(17),
        "rx": Pin(16),
        "timeout": 500,
        "timeout_char": 20,
    }
    rp2 = load_board("rp2")
    p = rp2.board.peripherals({"kind": "water-quality"})
    assert p["uart"].id == 0 and p["uart"].kwargs["tx"] == rp2.machine.Pin(0)
    assert p["uart"].kwargs["baudrate"] == 9600 and p["uart"].kwargs["parity"] is None
    assert p["methane"].pin == rp2.machine.Pin(26) and p["methane"].atten is None


def test_bus_settings_from_the_config_options():
    esp = load_board("esp32")
    config = {
        "kind": "water-meter",
        "options": {"bus": {"baud": 1200, "parity": "N", "timeout_ms": 800}},
    }
    kwargs = esp.board.peripherals(config)["uart"].kwargs
    assert (kwargs["baudrate"], kwargs["parity"], kwargs["timeout"]) == (1200, None, 800)
    with pytest.raises(ValueError):
        esp.boardlib.uart_line({"options": {"bus": {"parity": "X"}}})


def test_gateway_address_from_config(loaded):
    assert loaded.board.gateway_addr({"gateway": ["192.168.4.1", 5683]}) == ("192.168.4.1", 5683)
    with pytest.raises(ValueError):
        loaded.board.gateway_addr({})


def test_connect_joins_the_configured_wifi():
    network = FakeNetwork(connects_after=2)
    board = load_board("rp2", network=network).board
    config = {"options": {"wifi": {"ssid": "kapok", "key": "secret", "country": "CN"}}}
    assert asyncio.run(board.connect(config)) is True
    assert network.joined == [("kapok", "secret")] and network.countries == ["CN"]
    assert network.wlan.is_active


def test_connect_gives_up_after_its_timeout():
    network = FakeNetwork(connects_after=None)
    board = load_board("esp32", network=network).board
    config = {"options": {"wifi": {"ssid": "nowhere"}}}
    assert asyncio.run(board.connect(config, timeout_ms=300)) is False


def test_connect_without_wifi_settings_leaves_the_network_alone():
    network = FakeNetwork()
    board = load_board("esp32", network=network).board
    assert asyncio.run(board.connect({"kind": "hub"})) is True
    assert network.joined == []


def udp_echo(family, host):
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind((host, 0))
    server.settimeout(5)
    return server


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_transport_exchanges_datagrams(loaded, family, host):
    server = udp_echo(family, host)
    port = server.getsockname()[1]

    async def exchange():
        t = loaded.board.Transport()
        await t.open(0)
        try:
            assert await t.recv(50) is None  # nothing yet: times out
            await t.send(b"\x40\x01\x12\x34", (host, port))
            data, peer = await asyncio.to_thread(server.recvfrom, 100)
            server.sendto(data[::-1], peer)
            return await t.recv(2000)
        finally:
            t.close()

    got = asyncio.run(exchange())
    server.close()
    assert got is not None
    data, (peer_host, peer_port) = got
    assert data == b"\x34\x12\x01\x40"
    assert (peer_host, peer_port) == (host, port)
