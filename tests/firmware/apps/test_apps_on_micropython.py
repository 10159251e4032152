"""Every app inside real MicroPython (the WebAssembly port), as .py sources
and as the mpy-cross bytecode that ships: check_apps.py boots each one under
the real Node with the virtual board's emulated peripherals and runs its
sample, alarm and command paths. The gas-leak uplink it prints is verified
here with pycose, an independent COSE implementation."""

import json
import re
from pathlib import Path

import pytest
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from kapok.protocols import cose, ed25519, messages
from tests.firmware.runtime.conftest import CLOUD_SEED, DEVICE, SEED
from tests.micropython.harness import compile_mpy

ROOT = Path(__file__).resolve().parents[3]
FIRMWARE = ROOT / "firmware"
SCRIPT = Path(__file__).with_name("check_apps.py")
T0 = 1767225600
MIN_CHECKS = 44

# commands for check_apps.py, by name: [cmd_id, op, args]
COMMANDS = {
    "open_1": (1, "valve.open", {}),
    "open_2": (2, "valve.open", {}),
    "close_3": (3, "valve.close", {}),
    "close_1": (1, "valve.close", {}),
    "thresholds_1": (1, "thresholds.set", {"turb": 3.0}),
    "arm_1": (1, "arm", {}),
    "siren_1": (2, "siren.on", {}),
    "close_2": (3, "valve.close", {}),
}


def params():
    signed = {}
    for name, (cmd_id, op, args) in COMMANDS.items():
        payload = messages.build_command(cmd_id, DEVICE, op, args, T0 + 86400)
        signed[name] = cose.sign1(payload, CLOUD_SEED, b"cloud").hex()
    return {
        "device": DEVICE,
        "now": T0,
        "seed": SEED.hex(),
        "node_pub": ed25519.public_key(SEED).hex(),
        "cloud_pub": ed25519.public_key(CLOUD_SEED).hex(),
        "commands": signed,
    }


def board_files(compiled):
    sources = []
    for folder in ("runtime", "drivers", "apps"):
        for path in sorted((FIRMWARE / folder).rglob("*.py")):
            if "__pycache__" not in path.parts and path.name != "manifest.py":
                sources.append((path, path.relative_to(FIRMWARE).as_posix()))
    boards = FIRMWARE / "boards"
    sources.append((boards / "boardlib.py", "boardlib.py"))
    sources.append((boards / "virtual" / "peripherals.py", "peripherals.py"))
    files = {}
    for path, rel in sources:
        if compiled:
            files[f"/lib/{rel[:-3]}.mpy"] = compile_mpy(path, rel)
        else:
            files[f"/lib/{rel}"] = path.read_bytes()
    return files


@pytest.mark.micropython
@pytest.mark.parametrize("compiled", [False, True], ids=["py", "mpy"])
def test_apps_in_micropython(micropython, compiled):
    script = SCRIPT.read_text(encoding="utf-8") + "\nawait main()\n"
    files = board_files(compiled)
    files["/check/params.json"] = json.dumps(params()).encode()
    out = micropython(script, files, compiled=compiled)
    m = re.search(r"^ok apps (\d+)$", out, re.M)
    assert m, out
    assert int(m.group(1)) >= MIN_CHECKS
    # the gas meter's leak uplink, signed on the board, checked by pycose
    cose_hex = re.search(r"^uplink ([0-9a-f]+)$", out, re.M).group(1)
    msg = Sign1Message.decode(bytes.fromhex(cose_hex))
    msg.key = OKPKey(crv=Ed25519, x=ed25519.public_key(SEED))
    assert msg.verify_signature()
    up = messages.parse_uplink(msg.payload, DEVICE)
    assert up["events"][0][0] == "gas.leak"
