# ruff: noqa: F821  (metadata/package are supplied by MicroPython's manifest tool)
metadata(
    description="Sensor drivers: Modbus water-quality probes, DS18B20, analog probes, methane.",
    version="0.1.0",
)
package(
    "drivers",
    files=(
        "__init__.py",
        "sensor/__init__.py",
        "sensor/water_probe.py",
        "sensor/ds18b20.py",
        "sensor/adc_probe.py",
        "sensor/methane.py",
        # water_probe talks through the Modbus master
        "uartio.py",
        "modbus/__init__.py",
        "modbus/rtu.py",
    ),
    base_path="../..",
)
