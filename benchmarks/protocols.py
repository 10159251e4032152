"""Benchmark of Kapok's wire protocols: bytes on the wire, speed, heap.

Run:  .venv/bin/python benchmarks/protocols.py [--quick] [--no-micropython]

Prints three tables, each measured against a baseline in the same run:
1. the byte size of one signed meter reading (DESIGN's example: vol, bat, rssi,
   seq, t) as a CoAP datagram, against DESIGN's budget (128 B Sign1, 80 B Mac0);
2. operations per second on CPython: our pure code against the C libraries
   behind the same calls (`cryptography`, `hashlib`) and against the reference
   implementations (`cbor2`, `aiocoap`);
3. per message inside real MicroPython (the WebAssembly port under Node, with
   `protocols/` loaded as mpy-cross bytecode): time and heap allocated to build,
   sign and verify, with HMAC (Mac0) as the baseline.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kapok.protocols import cbor, coap, coap_numbers, cose, ed25519, messages, senml  # noqa: E402

DEVICE = "gm-0001a3"
SEED = bytes(range(32))
MAC_KEY = bytes(range(32, 64))
T = 1767225600  # 2026-01-01T00:00:00Z
# DESIGN's example reading as a single-precision board holds it.
VOL = 12345.677734375  # float32(12345.678) m3
BAT = 3.299999952316284  # float32(3.3) V
RSSI = -100  # dBW (-70 dBm)


def example_payload(seq=2**32 - 1, compact=True):
    if compact:
        return messages.build_uplink(seq, T, compact=senml.compact(1, [VOL, BAT, RSSI]))
    records = [senml.record("vol", VOL), senml.record("bat", BAT), senml.record("rssi", RSSI)]
    return messages.build_uplink(seq, T, records=records)


def coap_post_u(body, content_format):
    msg = coap.Message(coap_numbers.CON, coap_numbers.POST, 0xBEEF, b"\x12\x34")
    msg.add_option(coap_numbers.URI_PATH, "u")
    msg.add_option(coap_numbers.CONTENT_FORMAT, content_format)
    msg.payload = body
    return msg.encode()


def rate(fn, seconds):
    """Calls per second of fn(), measured for about `seconds`."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    batch = 1
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)
        batch = min(batch * 2, 1024)


def byte_table():
    table = Table(title="1. One signed meter reading as a CoAP datagram (bytes)")
    for col in ("message", "payload", "COSE", "datagram", "budget", "fits"):
        table.add_column(col, justify="right" if col not in ("message", "fits") else "left")
    rows = [
        ("Sign1, compact (key 5)", example_payload(), "sign1", 128),
        ("Mac0, compact (key 5)", example_payload(), "mac0", 80),
        ("Sign1, text SenML (key 3)", example_payload(compact=False), "sign1", 128),
        ("Mac0, text SenML (key 3)", example_payload(compact=False), "mac0", 80),
    ]
    for label, payload, kind, budget in rows:
        if kind == "sign1":
            msg = cose.sign1(payload, SEED, DEVICE.encode())
            dgram = coap_post_u(msg, coap_numbers.CF_COSE_SIGN1)
        else:
            msg = cose.mac0(payload, MAC_KEY, DEVICE.encode())
            dgram = coap_post_u(msg, coap_numbers.CF_COSE_MAC0)
        fits = "yes" if len(dgram) <= budget else "NO"
        table.add_row(label, str(len(payload)), str(len(msg)), str(len(dgram)), str(budget), fits)
    return table


def cpython_table(seconds):
    import aiocoap
    import cbor2

    payload = example_payload()
    signed = cose.sign1(payload, SEED, DEVICE.encode())
    pub = ed25519.public_key(SEED)
    sig = ed25519.sign(SEED, payload)
    dgram = coap_post_u(signed, coap_numbers.CF_COSE_SIGN1)
    obj = cbor.loads(payload)

    table = Table(title="2. CPython operations per second (ours against a baseline)")
    for col in ("operation", "ours", "baseline", "baseline is", "ours / baseline"):
        table.add_column(col, justify="left" if col in ("operation", "baseline is") else "right")

    def row(label, ours, base, base_name):
        r_ours, r_base = rate(ours, seconds), rate(base, seconds)
        table.add_row(
            label, f"{r_ours:,.0f}", f"{r_base:,.0f}", base_name, f"{r_ours / r_base:.3f}"
        )

    row(
        "Ed25519 sign (pure)",
        lambda: ed25519.sign_pure(SEED, payload),
        lambda: ed25519.sign(SEED, payload),
        f"backend {ed25519.BACKEND}",
    )
    row(
        "Ed25519 verify (pure)",
        lambda: ed25519.verify_pure(pub, payload, sig),
        lambda: ed25519.verify(pub, payload, sig),
        f"backend {ed25519.BACKEND}",
    )
    row(
        "COSE sign1 (default backend)",
        lambda: cose.sign1(payload, SEED, DEVICE.encode()),
        lambda: ed25519.sign(SEED, payload),
        "bare Ed25519 sign",
    )
    row(
        "COSE verify1 (default backend)",
        lambda: cose.verify1(signed, pub),
        lambda: ed25519.verify(pub, payload, sig),
        "bare Ed25519 verify",
    )
    row(
        "COSE mac0 + verify_mac0",
        lambda: cose.verify_mac0(cose.mac0(payload, MAC_KEY, b"k"), MAC_KEY),
        lambda: cose.verify1(cose.sign1(payload, SEED, b"k"), pub),
        "sign1 + verify1",
    )
    row(
        "CBOR dumps (uplink map)",
        lambda: cbor.dumps(obj),
        lambda: cbor2.dumps(obj, canonical=True),
        "cbor2 (C)",
    )
    row(
        "CBOR loads (uplink map)",
        lambda: cbor.loads(payload),
        lambda: cbor2.loads(payload),
        "cbor2 (C)",
    )
    row(
        "CoAP decode (uplink)",
        lambda: coap.Message.decode(dgram),
        lambda: aiocoap.Message.decode(dgram),
        "aiocoap",
    )
    msg = coap.Message.decode(dgram)
    aio = aiocoap.Message(
        mtype=aiocoap.CON,
        code=aiocoap.POST,
        mid=0xBEEF,
        token=b"\x12\x34",
        uri_path=("u",),
        content_format=coap_numbers.CF_COSE_SIGN1,
        payload=signed,
    )
    assert aio.encode() == dgram
    row("CoAP encode (uplink)", msg.encode, aio.encode, "aiocoap")
    row(
        "whole uplink: decode + verify + parse",
        lambda: messages.parse_uplink(
            cose.verify1(coap.Message.decode(dgram).payload, pub), DEVICE
        ),
        lambda: cose.verify1(signed, pub),
        "verify1 alone",
    )
    return table


MICROPYTHON_SCRIPT = r"""
import gc, json, time
from protocols import cose, ed25519, messages, senml, hmac

SEED = bytes(range(32))
MAC_KEY = bytes(range(32, 64))
KID = b"gm-0001a3"
T = 1767225600
N = {n}

def measure(name, fn):
    fn()  # warm: the first call builds tables and interns names
    gc.collect()
    a0 = gc.mem_alloc()
    t0 = time.ticks_ms()
    for _ in range(N):
        fn()
    dt = time.ticks_diff(time.ticks_ms(), t0)
    alloc = gc.mem_alloc() - a0
    print(json.dumps({{"op": name, "ms": dt / N, "alloc": alloc // N}}))

def build():
    values = [12345.677734375, 3.299999952316284, -100]
    return messages.build_uplink(2**32 - 1, T, compact=senml.compact(1, values))

payload = build()
pub = ed25519.public_key(SEED)
signed = cose.sign1(payload, SEED, KID)
maced = cose.mac0(payload, MAC_KEY, KID)

measure("build uplink payload", build)
measure("mac0 (HMAC-SHA256/64)", lambda: cose.mac0(payload, MAC_KEY, KID))
measure("verify_mac0", lambda: cose.verify_mac0(maced, MAC_KEY))
measure("sign1 (Ed25519)", lambda: cose.sign1(payload, SEED, KID))
measure("verify1 (Ed25519)", lambda: cose.verify1(signed, pub))
"""


def micropython_table(n):
    from tests.micropython.harness import run_micropython

    out = run_micropython(MICROPYTHON_SCRIPT.format(n=n))
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    base = next(r for r in rows if r["op"].startswith("mac0"))
    table = Table(title="3. Per message inside MicroPython 1.27 (WebAssembly port, .mpy bytecode)")
    for col in ("operation", "ms", "heap allocated (bytes)", "time / mac0"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for r in rows:
        table.add_row(r["op"], f"{r['ms']:.2f}", f"{r['alloc']:,}", f"{r['ms'] / base['ms']:.1f}x")
    table.caption = (
        "heap allocated = gc.mem_alloc() growth per call with no collection in between "
        "(an upper bound on the peak heap the operation needs); "
        f"mean of {n} calls after one warm-up call"
    )
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measurements (CI smoke)")
    parser.add_argument("--no-micropython", action="store_true", help="skip table 3")
    args = parser.parse_args()
    console = Console(width=120)
    console.print(byte_table())
    console.print(cpython_table(0.05 if args.quick else 0.5))
    if not args.no_micropython:
        console.print(micropython_table(3 if args.quick else 20))


if __name__ == "__main__":
    main()
