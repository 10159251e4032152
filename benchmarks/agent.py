"""Benchmark of the gateway agent: uplinks per second, a burst, leak latency.

Run:  .venv/bin/python benchmarks/agent.py [--quick] [--nodes N] [--burst N]

Everything runs on this machine in one go, each server in a process of its
own and the simulated nodes in this one, over loopback UDP:

a. raw ceiling    a bare asyncio UDP server answering every datagram with a
                  fixed 2.04 (no parsing, no crypto, no disk);
b. crypto ceiling COSE_Sign1 verifications per second on one core
                  (kapok.protocols.cose.verify1 of an uplink: parse, then
                  Ed25519 with strict checks and OpenSSL), and the bare
                  Ed25519 calls for reference;
c. the agent      `POST /u` from N concurrent nodes (distinct ids and keys),
                  each with one request outstanding (NSTART 1), verified and
                  durably stored (WAL, synchronous=FULL, group commit); the
                  cloud is unreachable, so nothing but the queue runs;
   baseline       the same UplinkService and store behind an aiocoap server;
d. burst          10 000 distinct nodes each sending one reading at once,
                  retransmitting like CoAP nodes do (ACK_TIMEOUT 2-3 s,
                  doubling): time until all are acknowledged, and the rows
                  stored (must be 10 000);
e. leak           a gas.leak uplink: time until its 2.04 carrying valve.close
                  is back at the node, and until siren.on reaches the hub;
f. footprint      CPU-seconds the agent process spent per stored uplink in
                  (c) (utime + stime of the process, all its threads: the
                  writer's fsyncs included), and its peak RSS (VmHWM) after
                  a burst from 1 000 and from 10 000 registered devices.

The goal: the agent's uplinks per CPU-second of its own process, in (c), are
at least 0.5 of the COSE verifications one core does in (b) — the hot path
costs at most as much again as the signature check it cannot avoid. (c)'s
wall-clock rate is also printed against min(a, b), with the nodes sharing
the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kapok.protocols import coap, cose, ed25519, messages, senml  # noqa: E402
from kapok.protocols import coap_numbers as n  # noqa: E402

T0 = 1767225600
HUB_UNIT = 4242


# ------------------------------------------------------------------ servers


def _bare_server(port: int) -> None:
    class Bare(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            # ACK, 2.04, the request's message id and token: the least a
            # CoAP server can do without looking at the request
            tkl = data[0] & 15
            self.transport.sendto(bytes([0x60 | tkl, n.CHANGED]) + data[2 : 4 + tkl], addr)

    async def main():
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(Bare, local_addr=("127.0.0.1", port))
        print("ready", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    asyncio.run(main())


def _agent_server(port: int, data_dir: Path, with_aiocoap: bool) -> None:
    from kapok.edge_agent.agent import Agent
    from kapok.edge_agent.config import Address, Settings

    settings = Settings(
        cloud="http://127.0.0.1:9",  # unreachable: the queue is all that runs
        token="benchmark",
        data_dir=data_dir,
        listen=Address("127.0.0.1", 0 if with_aiocoap else port),
        metrics=None,
        max_in_flight=50_000,
    )

    async def main():
        agent = Agent(settings)
        await agent.start()
        context = None
        if with_aiocoap:
            context = await _aiocoap_front(agent, port)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        if context is not None:
            await context.shutdown()
        await agent.stop()

    import logging

    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())


async def _aiocoap_front(agent, port: int):
    """The baseline: aiocoap's server in front of the same UplinkService."""
    import aiocoap
    import aiocoap.numbers.codes
    import aiocoap.resource

    class Uplink(aiocoap.resource.Resource):
        async def render_post(self, request):
            cf = request.opt.content_format
            try:
                reply = await agent.uplinks.handle(
                    request.payload,
                    None if cf is None else int(cf),
                    request.opt.block1 is not None,
                    str(request.remote.hostinfo),
                )
            except coap.ResponseError as e:
                code = aiocoap.numbers.codes.Code(e.code)
                return aiocoap.Message(code=code, payload=str(e).encode())
            return aiocoap.Message(code=aiocoap.CHANGED, payload=reply, content_format=60)

    site = aiocoap.resource.Site()
    site.add_resource(["u"], Uplink())
    return await aiocoap.Context.create_server_context(
        site, bind=("127.0.0.1", port), transports=["udp6"]
    )


class Server:
    """This script in server mode, as a child process."""

    def __init__(self, kind: str, port: int, data_dir: Path | None = None):
        args = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
        if data_dir is not None:
            args += ["--data", str(data_dir)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"{kind} server did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)

    def cpu_seconds(self) -> float:
        """utime + stime of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss(self) -> int:
        """The process's peak resident set (VmHWM), bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")


# ------------------------------------------------------------------ nodes


class Fleet:
    """Simulated nodes: ids, keys, and a registry document naming them."""

    def __init__(self, count: int, hub_port: int):
        self.ids = [f"bm-{i:05d}" for i in range(count)]
        self.seeds = [hashlib.sha256(b"bench " + i.encode()).digest() for i in self.ids]
        devices = [
            {"id": i, "kind": "gas-meter", "public_key": ed25519.public_key(s).hex(), "unit": None}
            for i, s in zip(self.ids, self.seeds, strict=True)
        ]
        # a gas meter and the hub of its unit, for the leak latency
        self.leak_seed = hashlib.sha256(b"bench leak meter").digest()
        devices.append(
            {
                "id": "leak-meter",
                "kind": "gas-meter",
                "public_key": ed25519.public_key(self.leak_seed).hex(),
                "unit": HUB_UNIT,
            }
        )
        devices.append(
            {
                "id": "leak-hub",
                "kind": "hub",
                "public_key": ed25519.public_key(bytes(32)).hex(),
                "unit": HUB_UNIT,
                "always_on": True,
                "address": f"127.0.0.1:{hub_port}",
            }
        )
        self.registry = {
            "version": 1,
            "gateway": {"id": "gw-bench", "name": "benchmark", "community": 1},
            "devices": devices,
            "authorities": {},
            "releases": [],
        }

    def data_dir(self, parent: Path, name: str) -> Path:
        path = parent / name
        path.mkdir()
        (path / "registry.json").write_text(json.dumps(self.registry))
        return path


def datagram(device: str, seed: bytes, seq: int, mid: int, events=None) -> bytes:
    payload = messages.build_uplink(
        seq, T0 + seq, compact=senml.compact(1, [12345.5, 3.25, -100]), events=events
    )
    msg = coap.Message(n.CON, n.POST, mid & 0xFFFF, (mid & 0xFFFF).to_bytes(2, "big"))
    msg.uri_path = "u"
    msg.content_format = n.CF_COSE_SIGN1
    msg.payload = cose.sign1(payload, seed, device.encode())
    return msg.encode()


class Sender(asyncio.DatagramProtocol):
    """One socket of simulated nodes: keeps `window` requests outstanding,
    resends an unanswered one like a CoAP node (timeout 2-3 s, doubling)."""

    def __init__(self, datagrams: list[bytes], window: int, done: asyncio.Future):
        self.queue = collections.deque(datagrams)
        self.window = window
        self.done = done
        self.outstanding: dict[int, list] = {}  # mid -> [bytes, deadline, timeout]
        self.ok = 0
        self.errors: collections.Counter = collections.Counter()

    def connection_made(self, transport):
        self.transport = transport
        for _ in range(self.window):
            self._next()

    def _next(self) -> None:
        if self.queue:
            data = self.queue.popleft()
            timeout = 2.0 + random.random()
            self.outstanding[data[2] << 8 | data[3]] = [data, time.monotonic() + timeout, timeout]
            self.transport.sendto(data)
        elif not self.outstanding and not self.done.done():
            self.done.set_result(None)

    def datagram_received(self, data, addr):
        mtype = data[0] >> 4 & 3
        if mtype == n.ACK and data[1] == 0:
            # empty ACK: the answer follows in a message of its own (aiocoap
            # does this when a response takes long); stop retransmitting
            entry = self.outstanding.get(data[2] << 8 | data[3])
            if entry is not None:
                entry[1] = float("inf")
            return
        if mtype == n.CON:  # that separate response: acknowledge it
            self.transport.sendto(bytes([0x60, 0]) + data[2:4])
        if mtype == n.ACK:
            key = data[2] << 8 | data[3]
        else:  # separate response: matched by its token (= our message id)
            tkl = data[0] & 15
            key = int.from_bytes(data[4 : 4 + tkl], "big")
        if self.outstanding.pop(key, None) is None:
            return
        if data[1] == n.CHANGED:
            self.ok += 1
        else:
            self.errors[coap.code_str(data[1])] += 1
        self._next()

    def error_received(self, exc):
        pass

    def tick(self, now: float) -> None:
        for entry in self.outstanding.values():
            if now >= entry[1]:
                entry[2] *= 2
                entry[1] = now + entry[2]
                self.transport.sendto(entry[0])


async def drive(port: int, per_socket: list[list[bytes]], window: int) -> dict:
    loop = asyncio.get_running_loop()
    senders = []
    start = time.perf_counter()
    for datagrams in per_socket:
        done = loop.create_future()
        _, sender = await loop.create_datagram_endpoint(
            lambda d=datagrams, f=done: Sender(d, window, f), remote_addr=("127.0.0.1", port)
        )
        senders.append(sender)

    async def ticker():
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for s in senders:
                s.tick(now)

    tick = loop.create_task(ticker())
    await asyncio.gather(*(s.done for s in senders))
    elapsed = time.perf_counter() - start
    tick.cancel()
    for s in senders:
        s.transport.close()
    errors = sum((s.errors for s in senders), collections.Counter())
    ok = sum(s.ok for s in senders)
    return {"ok": ok, "errors": dict(errors), "seconds": elapsed, "rate": ok / elapsed}


BURST_SEQ = 1_000_000


def stored_burst(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "queue.sqlite3") as conn:
        return conn.execute("SELECT COUNT(*) FROM uplinks WHERE seq = ?", (BURST_SEQ,)).fetchone()[
            0
        ]


# ------------------------------------------------------------------ measurements


def crypto_rates(seconds: float) -> dict:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    seed = bytes(range(32))
    pub = ed25519.public_key(seed)
    msg = cose.sig_structure(b"\xa1\x01\x27", b"x" * 28)
    sig = ed25519.sign(seed, msg)
    openssl = Ed25519PublicKey.from_public_bytes(pub)

    def rate(fn):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(100):
                fn()
            count += 100
        return count / (time.perf_counter() - start)

    uplink = cose.sign1(
        messages.build_uplink(1, T0, compact=senml.compact(1, [12345.5, 3.25, -100])),
        seed,
        b"bm-00000",
    )
    return {
        "cose": rate(lambda: cose.verify1(uplink, pub)),
        "kapok": rate(lambda: ed25519.verify(pub, msg, sig)),
        "openssl": rate(lambda: openssl.verify(sig, msg)),
    }


async def leak_latency(port: int, hub_port: int, fleet: Fleet, rounds: int) -> dict:
    loop = asyncio.get_running_loop()
    hub_times: list[float] = []

    class HubServer(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            hub_times.append(time.perf_counter())
            request = coap.Message.decode(data)
            self.transport.sendto(coap.ack_for(request, n.CHANGED).encode(), addr)

    hub, _ = await loop.create_datagram_endpoint(HubServer, local_addr=("127.0.0.1", hub_port))
    replies, sirens = [], []
    for seq in range(1, rounds + 1):
        data = datagram(
            "leak-meter", fleet.leak_seed, seq, seq, events=[("gas.leak", T0 + seq, 21.5)]
        )
        hub_times.clear()
        start = time.perf_counter()
        result = await drive(port, [[data]], 1)
        replies.append(time.perf_counter() - start)
        assert result["ok"] == 1, result
        deadline = time.perf_counter() + 2
        while not hub_times and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
        if hub_times:
            sirens.append(hub_times[0] - start)
        # the siren must be delivered before the next round, or the agent
        # rightly sees it still waiting and signs no second one
        await asyncio.sleep(0.2)
    hub.close()
    return {"reply": replies, "siren": sirens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=["bare", "agent", "aiocoap"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--quick", action="store_true", help="a smaller run, for a smoke test")
    parser.add_argument("--nodes", type=int, default=64, help="concurrent nodes in (c)")
    parser.add_argument("--per-node", type=int, default=None, help="uplinks per node in (c)")
    parser.add_argument("--burst", type=int, default=10_000, help="nodes in the burst (d)")
    args = parser.parse_args()
    if args.serve == "bare":
        return _bare_server(args.port)
    if args.serve in ("agent", "aiocoap"):
        return _agent_server(args.port, args.data, args.serve == "aiocoap")

    from rich.console import Console
    from rich.table import Table

    console = Console(width=110)
    per_node = args.per_node or (20 if args.quick else 150)
    burst = min(args.burst, 1000) if args.quick else args.burst
    nodes = args.nodes
    hub_port = _free_port()
    fleet_size = max(nodes, burst)
    console.print(f"signing {nodes * per_node + burst} uplinks from {fleet_size} nodes ...")
    fleet = Fleet(fleet_size, hub_port)
    load = [
        [datagram(fleet.ids[i], fleet.seeds[i], seq, seq) for seq in range(1, per_node + 1)]
        for i in range(nodes)
    ]
    burst_grams = [datagram(fleet.ids[i], fleet.seeds[i], BURST_SEQ, i) for i in range(burst)]
    burst_sockets = [burst_grams[i : i + 100] for i in range(0, burst, 100)]
    results = {}
    with tempfile.TemporaryDirectory(prefix="kapok-bench-") as tmp:
        tmp = Path(tmp)
        console.print("(a) bare asyncio UDP server ...")
        server = Server("bare", port := _free_port())
        results["bare"] = asyncio.run(drive(port, load, 1))
        server.stop()

        console.print("(b) Ed25519 verification ...")
        results["crypto"] = crypto_rates(1.0 if args.quick else 3.0)

        console.print("(c) the agent ...")
        data = fleet.data_dir(tmp, "agent")
        server = Server("agent", port := _free_port(), data)
        cpu = server.cpu_seconds()
        results["agent"] = asyncio.run(drive(port, load, 1))
        results["agent"]["cpu"] = (server.cpu_seconds() - cpu) / results["agent"]["ok"]
        console.print("(d) burst ...")
        results["burst"] = asyncio.run(drive(port, burst_sockets, 100))
        console.print("(e) leak latency ...")
        results["leak"] = asyncio.run(leak_latency(port, hub_port, fleet, 5 if args.quick else 20))
        server.stop()
        results["burst"]["stored"] = stored_burst(data)

        console.print("(c) baseline: aiocoap in front of the same service ...")
        data = fleet.data_dir(tmp, "aiocoap")
        server = Server("aiocoap", port := _free_port(), data)
        results["aiocoap"] = asyncio.run(drive(port, load, 1))
        server.stop()

        console.print("(f) footprint with 1 000 and 10 000 registered devices ...")
        results["footprint"] = [footprint(tmp, size, hub_port) for size in (1000, 10_000)]

    report(console, Table, results, nodes, per_node, burst)


def footprint(tmp: Path, size: int, hub_port: int) -> dict:
    """Every one of `size` registered devices sends one reading at once:
    the agent's CPU-seconds per stored uplink and its peak RSS after."""
    fleet = Fleet(size, hub_port)
    grams = [datagram(fleet.ids[i], fleet.seeds[i], 1, i) for i in range(size)]
    server = Server("agent", port := _free_port(), fleet.data_dir(tmp, f"size-{size}"))
    try:
        cpu = server.cpu_seconds()
        result = asyncio.run(drive(port, [grams[i : i + 100] for i in range(0, size, 100)], 100))
        result["cpu"] = (server.cpu_seconds() - cpu) / max(1, result["ok"])
        result["rss"] = server.peak_rss()
    finally:
        server.stop()
    result["devices"] = size
    return result


def report(console, Table, r: dict, nodes: int, per_node: int, burst: int) -> None:
    ceiling = min(r["bare"]["rate"], r["crypto"]["kapok"])
    table = Table(title=f"Gateway agent, {os.cpu_count()} CPUs, loopback UDP")
    table.add_column("measure")
    table.add_column("per second", justify="right")
    table.add_column("vs min(a, b)", justify="right")
    table.add_column("notes")
    table.add_row(
        "(a) bare asyncio UDP request/response",
        f"{r['bare']['rate']:,.0f}",
        "",
        f"{nodes} nodes x {per_node}, one outstanding each",
    )
    table.add_row(
        "(b) COSE_Sign1 verify1, one core",
        f"{r['crypto']['cose']:,.0f}",
        "",
        "parse + Ed25519 (what the agent runs per uplink)",
    )
    table.add_row(
        "    Ed25519 verify, kapok.protocols",
        f"{r['crypto']['kapok']:,.0f}",
        "",
        "strict checks + OpenSSL",
    )
    table.add_row("    Ed25519 verify, bare OpenSSL", f"{r['crypto']['openssl']:,.0f}", "", "")
    for key, name in (("agent", "(c) agent, our CoAP endpoint"), ("aiocoap", "    agent, aiocoap")):
        res = r[key]
        notes = f"{res['ok']} stored in {res['seconds']:.1f} s"
        if res["errors"]:
            notes += f", errors {res['errors']}"
        table.add_row(name, f"{res['rate']:,.0f}", f"{res['rate'] / ceiling:.2f}", notes)
    b = r["burst"]
    table.add_row(
        f"(d) burst of {burst} nodes at once",
        f"{b['rate']:,.0f}",
        "",
        f"all acknowledged after {b['seconds']:.2f} s; rows stored {b['stored']}"
        + (f", errors {b['errors']}" if b["errors"] else ""),
    )
    console.print(table)
    leak = r["leak"]
    lat = Table(title="(e) gas.leak -> fail-safe commands (goal: < 1 s)")
    lat.add_column("command")
    lat.add_column("median ms", justify="right")
    lat.add_column("max ms", justify="right")
    lat.add_column("rounds", justify="right")
    for name, values in (
        ("valve.close in the 2.04, back at the meter", leak["reply"]),
        ("siren.on POST /c, at the unit's hub", leak["siren"]),
    ):
        if values:
            lat.add_row(
                name,
                f"{statistics.median(values) * 1000:.1f}",
                f"{max(values) * 1000:.1f}",
                str(len(values)),
            )
        else:
            lat.add_row(name, "-", "-", "0")
    console.print(lat)
    fp = Table(title="(f) the agent process per stored uplink")
    fp.add_column("load")
    fp.add_column("CPU ms per uplink", justify="right")
    fp.add_column("uplinks per CPU-second", justify="right")
    fp.add_column("vs COSE verify1 (b)", justify="right")
    fp.add_column("peak RSS MiB", justify="right")
    rows = [(f"(c) {nodes} nodes, steady", r["agent"], None)]
    rows += [(f"burst, {f['devices']:,} devices", f, f["rss"]) for f in r["footprint"]]
    for name, res, rss in rows:
        per_cpu = 1 / res["cpu"] if res["cpu"] else float("inf")
        fp.add_row(
            name,
            f"{res['cpu'] * 1000:.3f}",
            f"{per_cpu:,.0f}",
            f"{per_cpu / r['crypto']['cose']:.2f}",
            "" if rss is None else f"{rss / 2**20:.1f}",
        )
    console.print(fp)
    hot = 1 / r["agent"]["cpu"] / r["crypto"]["cose"]
    ok = hot >= 0.5 and b["stored"] == burst
    console.print(
        f"(c) uplinks per agent CPU-second / COSE verify1 per second = {hot:.2f} (goal >= 0.5); "
        f"wall-clock (c) / min(a, b) = {r['agent']['rate'] / ceiling:.2f}; "
        f"burst stored {b['stored']} of {burst}: {'OK' if ok else 'NOT MET'}"
    )


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
