"""The ESP32 and Pico W pin maps are wirable: every GPIO once, each on a pin
that can do the job (datasheet facts held in the maps themselves), and the
same functions on every board, the virtual one included."""

import importlib.util

import peripherals as virtual
import pytest

from .conftest import FakeClock, FakeWorld
from .fake_machine import BOARDS

USES = {"in", "in_pullup", "out", "adc", "onewire", "uart_tx", "uart_rx"}
INPUTS = {"in", "in_pullup", "adc", "uart_rx"}


def pin_map(board):
    spec = importlib.util.spec_from_file_location(f"pins_{board}", BOARDS / board / "pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["esp32", "rp2"])
def pins(request):
    return pin_map(request.param)


def test_rows_are_complete(pins):
    for row in pins.PINS:
        name, gpio, use, wiring = row
        assert use in USES, row
        assert gpio in pins.GPIOS, row
        assert wiring.strip(), f"{name}: say how it is wired"


def test_no_gpio_used_twice(pins):
    gpios = [row[1] for row in pins.PINS]
    assert len(gpios) == len(set(gpios))
    names = [row[0] for row in pins.PINS]
    assert len(names) == len(set(names))


def test_no_pin_the_module_reserves(pins):
    assert not {row[1] for row in pins.PINS} & set(pins.FORBIDDEN)


def test_input_only_pins_are_only_inputs(pins):
    for name, gpio, use, _ in pins.PINS:
        if gpio in pins.INPUT_ONLY:
            # no outputs, and no internal pull-ups on these: "in" with an
            # external pull-up, or an analog input
            assert use in ("in", "adc"), f"{name} on input-only GPIO{gpio} as {use}"


def test_adc_only_on_adc_capable_pins(pins):
    for name, gpio, use, _ in pins.PINS:
        if use == "adc":
            assert gpio in pins.ADC_CAPABLE, f"{name}: GPIO{gpio} has no usable ADC"


def test_esp32_inputs_without_pull_have_external_ones():
    for name, _gpio, use, wiring in pin_map("esp32").PINS:
        if use == "in":
            assert "pull-up" in wiring, name


def test_rp2_uart_pins_belong_to_its_uart():
    pins = pin_map("rp2")
    gpio = {row[0]: row[1] for row in pins.PINS}
    assert gpio["uart_tx"] in pins.UART_TX[pins.UART_ID]
    assert gpio["uart_rx"] in pins.UART_RX[pins.UART_ID]


def test_every_board_offers_the_same_functions():
    expected = set(virtual.build(FakeWorld(), FakeClock()))
    for board in ("esp32", "rp2"):
        names = {row[0] for row in pin_map(board).PINS if row[2] not in ("uart_tx", "uart_rx")}
        assert names | {"uart"} == expected, board
