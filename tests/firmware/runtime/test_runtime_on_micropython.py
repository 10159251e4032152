"""The runtime inside real MicroPython (the WebAssembly port), as .py
sources and as the mpy-cross bytecode that ships: check_runtime.py runs
provisioning, seq blocks across a re-import, the outbox, commands signed
here, a bundle into an OTA slot, boot.py, and a Node uplink. The uplink it
prints is verified here with pycose, an independent COSE implementation."""

import json
import re
from pathlib import Path

import pytest
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from kapok.protocols import cbor, cose, ed25519, messages
from tests.firmware.runtime.conftest import CLOUD_SEED, DEVICE, FW_SEED, GW_SEED, SEED
from tests.micropython.harness import compile_mpy

ROOT = Path(__file__).resolve().parents[3]
FIRMWARE = ROOT / "firmware"
SCRIPT = Path(__file__).with_name("check_runtime.py")
T0 = 1767225600
MIN_CHECKS = 40


def signed(cmd_id, op, args=None, *, device=DEVICE, not_after=T0 + 86400, seed=CLOUD_SEED,
           kid=b"cloud"):  # fmt: skip
    return cose.sign1(messages.build_command(cmd_id, device, op, args or {}, not_after), seed, kid)


def params():
    bad_args = cbor.dumps({1: 16, 2: DEVICE, 3: "interval.set", 4: {"s": 0}, 5: T0 + 86400})
    commands = {
        "good": signed(10, "valve.close"),
        "old": signed(5, "valve.close"),
        "forged": signed(11, "valve.close", seed=bytes(32)),
        "other": signed(13, "valve.close", device="gm-other"),
        "expired": signed(14, "valve.close", not_after=T0 - 1),
        "gw_open": signed(1, "valve.open", seed=GW_SEED, kid=b"gw-3"),
        "gw_siren": signed(2, "siren.on", seed=GW_SEED, kid=b"gw-3"),
        "bad_args": cose.sign1(bad_args, CLOUD_SEED, b"cloud"),
        "unsupported": signed(17, "reboot"),
        "server": signed(40, "siren.on"),
        "async": signed(18, "siren.off"),
    }
    verdicts = [
        ("good", messages.OK),
        ("good", None),  # delivered again: ignored
        ("old", messages.E_REPLAY),
        ("forged", messages.E_SIGNATURE),
        ("other", messages.E_DEVICE),
        ("expired", messages.E_EXPIRED),
        ("gw_open", messages.E_AUTHORITY),
        ("gw_siren", messages.OK),
        ("bad_args", messages.E_ARGS),
        ("unsupported", messages.E_UNSUPPORTED),
    ]
    return {
        "device": DEVICE,
        "now": T0,
        "seed": SEED.hex(),
        "node_pub": ed25519.public_key(SEED).hex(),
        "cloud_pub": ed25519.public_key(CLOUD_SEED).hex(),
        "gw_pub": ed25519.public_key(GW_SEED).hex(),
        "fw_pub": ed25519.public_key(FW_SEED).hex(),
        "commands": {k: v.hex() for k, v in commands.items()},
        "verdicts": verdicts,
        "piggyback": [signed(50, "valve.close").hex()],
    }


def board_files(compiled):
    files = {
        "/boot.py": (FIRMWARE / "boot.py").read_bytes(),
        # just what boot.py reads of the board module
        "/lib/board.py": b'DATA_DIR = "/data"\nSLOTS = "/slots"\nSYNCS = []\n\n\n'
        b"def flash_sync():\n    SYNCS.append(1)\n",
    }
    for path in sorted((FIRMWARE / "runtime").glob("*.py")):
        if path.name == "manifest.py":
            continue
        rel = f"runtime/{path.name}"
        if compiled:
            files[f"/lib/{rel[:-3]}.mpy"] = compile_mpy(path, rel)
        else:
            files[f"/lib/{rel}"] = path.read_bytes()
    return files


@pytest.mark.micropython
@pytest.mark.parametrize("compiled", [False, True], ids=["py", "mpy"])
def test_runtime_in_micropython(micropython, compiled):
    script = SCRIPT.read_text(encoding="utf-8") + "\nawait main()\n"
    files = board_files(compiled)
    files["/check/params.json"] = json.dumps(params()).encode()
    out = micropython(script, files, compiled=compiled)
    m = re.search(r"^ok runtime (\d+)$", out, re.M)
    assert m, out
    assert int(m.group(1)) >= MIN_CHECKS
    # the node's signed uplink, checked by pycose
    cose_hex = re.search(r"^uplink ([0-9a-f]+)$", out, re.M).group(1)
    msg = Sign1Message.decode(bytes.fromhex(cose_hex))
    msg.key = OKPKey(crv=Ed25519, x=ed25519.public_key(SEED))
    assert msg.verify_signature()
    up = messages.parse_uplink(msg.payload, DEVICE)
    assert [r["n"] for r in up["readings"]] == ["vol", "bat", "rssi"]
    # the Node's boot started at seq block 192 (three blocks used before it)
    assert up["events"] == [("boot", 0, 192)] and up["seq"] == 192
