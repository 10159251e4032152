# ruff: noqa: F821  (metadata/package are supplied by MicroPython's manifest tool)
# Needs the `protocols` package beside it (the repository's protocols/).
metadata(
    description="Kapok node runtime: store, seq, outbox, CoAP client, commands, OTA slots.",
    version="0.1.0",
)
package(
    "runtime",
    files=(
        "__init__.py",
        "clock.py",
        "coap_client.py",
        "commands.py",
        "config.py",
        "identity.py",
        "node.py",
        "ota.py",
        "outbox.py",
        "seq.py",
        "slots.py",
        "store.py",
        "uplink.py",
    ),
    base_path="..",
)
