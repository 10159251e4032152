# Raspberry Pi Pico W (RP2040 + CYW43439) wiring of a Kapok node: one map
# for every app; an app uses the functions it needs.
#
# Rows: (function, GPIO, use, wiring). use: "in" (input, pull-up on the
# board), "in_pullup" (input, the chip's own pull-up), "out" (push-pull,
# starts low), "adc", "onewire", "uart_tx" / "uart_rx" (UART_ID).
# Inputs are active low: a switch or open collector pulls them to GND.
#
# Chip facts the map must respect (Pico W datasheet): GP23, GP24, GP25
# and GP29 belong to the wireless chip (power, SPI data/IRQ, chip select,
# SPI clock; GP29 is also ADC3 = VSYS/3, which cannot be read while the
# radio uses it); ADC inputs are GP26-28; UART0 takes TX on GP0/12/16 and
# RX on GP1/13/17.

UART_ID = 0

PINS = (
    ("uart_tx", 0, "uart_tx", "RS-485 / M-Bus transceiver DI"),
    ("uart_rx", 1, "uart_rx", "transceiver RO"),
    ("de", 2, "out", "transceiver DE + /RE: high while sending"),
    ("reed_a", 3, "in", "meter reed A to GND, 100k pull-up to 3.3 V (low leakage)"),
    ("reed_b", 4, "in", "direction reed B to GND, 100k pull-up to 3.3 V"),
    ("tamper", 5, "in_pullup", "Hall switch (open collector) next to the reeds"),
    ("valve_open", 6, "out", "valve H-bridge IN1 (opens)"),
    ("valve_close", 7, "out", "valve H-bridge IN2 (closes)"),
    ("stop_open", 8, "in_pullup", "end stop, valve open: switch to GND"),
    ("stop_closed", 9, "in_pullup", "end stop, valve closed: switch to GND"),
    ("door", 10, "in_pullup", "door reed contact to GND"),
    ("leak", 11, "in_pullup", "water-leak probe comparator, open collector"),
    ("smoke", 12, "in_pullup", "smoke detector alarm relay / open collector"),
    ("siren", 13, "out", "siren driver transistor"),
    ("button", 14, "in_pullup", "push button to GND"),
    ("onewire", 15, "onewire", "DS18B20 DQ, 4.7k pull-up to 3.3 V"),
    ("methane", 26, "adc", "methane head amplifier, 0-3.3 V (ADC0)"),
    ("hum", 27, "adc", "ratiometric humidity sensor output (ADC1)"),
    ("battery", 28, "adc", "battery through a 1:2 divider (ADC2)"),
)

INPUT_ONLY = ()
ADC_CAPABLE = (26, 27, 28)
FORBIDDEN = (23, 24, 25, 29)  # the wireless chip's
GPIOS = tuple(range(0, 30))
UART_TX = {0: (0, 12, 16, 28), 1: (4, 8, 20, 24)}
UART_RX = {0: (1, 13, 17, 29), 1: (5, 9, 21, 25)}
