# ESP32 (ESP32-WROOM-32 / -WROVER modules, e.g. an ESP32-DevKitC) wiring of
# a Kapok node: one map for every app; an app uses the functions it needs.
#
# Rows: (function, GPIO, use, wiring). use: "in" (input, pull-up on the
# board), "in_pullup" (input, the chip's own pull-up), "out" (push-pull,
# starts low), "adc", "onewire", "uart_tx" / "uart_rx" (UART_ID).
# Inputs are active low: a switch or open collector pulls them to GND.
#
# Chip facts the map must respect (ESP32 datasheet / technical reference):
# GPIO34-39 are input only and have no internal pulls; only ADC1 (GPIO32-
# 39) can be read while Wi-Fi runs (ADC2 belongs to the radio); GPIO6-11
# are wired to the module's flash; GPIO0, 2, 5, 12 and 15 are strapping
# pins read at reset (12 must not be pulled high on 3.3 V-flash modules).

UART_ID = 2  # UART0 is the REPL; UART2 for the meter bus

PINS = (
    ("uart_tx", 17, "uart_tx", "RS-485 / M-Bus transceiver DI"),
    ("uart_rx", 16, "uart_rx", "transceiver RO"),
    ("de", 23, "out", "transceiver DE + /RE: high while sending"),
    ("reed_a", 34, "in", "meter reed A to GND, 100k pull-up to 3.3 V (no internal pulls)"),
    ("reed_b", 35, "in", "direction reed B to GND, 100k pull-up to 3.3 V"),
    ("tamper", 32, "in_pullup", "Hall switch (open collector) next to the reeds"),
    ("valve_open", 25, "out", "valve H-bridge IN1 (opens)"),
    ("valve_close", 26, "out", "valve H-bridge IN2 (closes)"),
    ("stop_open", 27, "in_pullup", "end stop, valve open: switch to GND"),
    ("stop_closed", 14, "in_pullup", "end stop, valve closed: switch to GND"),
    ("methane", 36, "adc", "methane head amplifier, 0-3.3 V (ADC1 channel 0)"),
    ("battery", 39, "adc", "battery through a 1:2 divider (ADC1 channel 3)"),
    ("hum", 33, "adc", "ratiometric humidity sensor output (ADC1 channel 5)"),
    ("door", 4, "in_pullup", "door reed contact to GND"),
    ("leak", 5, "in_pullup", "water-leak probe comparator, open collector (strapping: idles high)"),
    ("smoke", 18, "in_pullup", "smoke detector alarm relay / open collector"),
    ("siren", 19, "out", "siren driver transistor"),
    ("button", 0, "in_pullup", "push button to GND (the BOOT button: held at reset = bootloader)"),
    ("onewire", 13, "onewire", "DS18B20 DQ, 4.7k pull-up to 3.3 V"),
)

INPUT_ONLY = (34, 35, 36, 37, 38, 39)
ADC_CAPABLE = (32, 33, 34, 35, 36, 37, 38, 39)  # ADC1: usable with Wi-Fi on
FORBIDDEN = (6, 7, 8, 9, 10, 11, 12)  # module flash; 12 sets the flash voltage
GPIOS = tuple(range(0, 40))
