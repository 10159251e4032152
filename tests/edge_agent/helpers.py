"""Simulated nodes, a raw CoAP client and an in-process agent for the tests."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from kapok.edge_agent.agent import Agent
from kapok.edge_agent.config import Address, Settings
from kapok.protocols import coap, cose, ed25519, messages, senml
from kapok.protocols import coap_numbers as n

T0 = 1767225600


class Node:
    """A node's signing side: device id, key, seq counter."""

    def __init__(self, device_id: str, *, mac: bool = False, kind: str = "gas-meter", unit=None):
        self.id = device_id
        self.seed = hashlib.sha256(b"seed " + device_id.encode()).digest()
        self.mac_key = hashlib.sha256(b"mac " + device_id.encode()).digest() if mac else None
        self.kind = kind
        self.unit = unit
        self.seq = 0

    @property
    def public_key(self) -> bytes:
        return ed25519.public_key(self.seed)

    def register(self, cloud, **kwargs) -> Node:
        if self.mac_key:
            cloud.add_device(
                self.id, kind=self.kind, mac_key=self.mac_key, unit=self.unit, **kwargs
            )
        else:
            cloud.add_device(
                self.id, kind=self.kind, public_key=self.public_key, unit=self.unit, **kwargs
            )
        return self

    def payload(self, seq: int, *, events=None, results=None, vol: float = 12.5) -> bytes:
        return messages.build_uplink(
            seq,
            T0 + seq,
            compact=senml.compact(1, [vol, 3.25, -100]),
            events=events,
            results=results,
        )

    def sign(self, payload: bytes) -> bytes:
        if self.mac_key:
            return cose.mac0(payload, self.mac_key, self.id.encode())
        return cose.sign1(payload, self.seed, self.id.encode())

    def uplink(self, seq: int | None = None, **kwargs) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return self.sign(self.payload(seq, **kwargs))


def post_u(body: bytes, *, mid: int, token: bytes = b"\x5a\x01", cf: int | None = 18):
    msg = coap.Message(n.CON, n.POST, mid, token)
    msg.uri_path = "u"
    if cf is not None:
        msg.content_format = cf
    msg.payload = body
    return msg


class RawClient:
    """A CoAP client with no retransmission of its own: what it sends is
    exactly what the test says, byte for byte."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.settimeout(10)
        self.addr = (host, port)
        self._mid = int.from_bytes(os.urandom(2), "big")

    def next_mid(self) -> int:
        self._mid = (self._mid + 1) & 0xFFFF
        return self._mid

    def send_raw(self, data: bytes) -> bytes:
        self.sock.sendto(data, self.addr)
        reply, _ = self.sock.recvfrom(65536)
        return reply

    def request(self, msg: coap.Message) -> coap.Message:
        return coap.Message.decode(self.send_raw(msg.encode()))

    def uplink(self, body: bytes, **kwargs) -> coap.Message:
        kwargs.setdefault("mid", self.next_mid())
        return self.request(post_u(body, **kwargs))

    def close(self) -> None:
        self.sock.close()


def agent_settings(cloud_url: str, **overrides) -> Settings:
    values = {
        "cloud": cloud_url,
        "token": "test-gateway-token",
        "listen": Address("127.0.0.1", 0),
        "metrics": None,  # the metrics test turns it on
        "backoff_base": 0.05,
        "backoff_cap": 0.5,
        "http_timeout": 5.0,
        "command_wait": 2,
        "command_idle_poll": 0.2,
        "push_ack_timeout": 0.3,
        "push_retry_interval": 1.0,
        "forward_batch": 64,
    }
    values.update(overrides)
    return Settings(**values)


class RunningAgent:
    """An Agent on its own event loop in a background thread."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.agent: Agent | None = None

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> RunningAgent:
        self.thread.start()

        async def make():
            self.agent = Agent(self.settings)
            await self.agent.start()

        self.call(make())
        return self

    @property
    def port(self) -> int:
        return self.agent.coap_address.port

    def stop(self) -> None:
        if self.agent is not None:
            self.call(self.agent.stop())
            self.agent = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def wait_registry(self, cloud, timeout: float = 10.0) -> None:
        """Until the agent holds the cloud's current registry (fetching it
        now rather than at the next periodic refresh)."""
        if self.agent.registry.current.version != cloud.version:
            self.call(self.agent.registry.refresh())
        self.wait_for(
            lambda: self.agent.registry.current.version == cloud.version,
            timeout,
            "the registry",
        )


class AsyncCoapClient(asyncio.DatagramProtocol):
    """A node's CoAP client in miniature, for bursts: Confirmable POST /u,
    retransmitted with the same message id until answered or given up."""

    def __init__(self):
        self.transport = None
        self.waiting: dict[int, asyncio.Future] = {}
        self._mid = int.from_bytes(os.urandom(2), "big")

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> AsyncCoapClient:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_datagram_endpoint(cls, remote_addr=(host, port))
        return client

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        msg = coap.Message.decode(data)
        future = self.waiting.get(msg.mid)
        if future is not None and not future.done():
            future.set_result(msg)

    def error_received(self, exc):
        pass  # the agent is down: the retransmission timer handles it

    async def post(self, body: bytes, *, timeout: float = 0.5, attempts: int = 3):
        self._mid = mid = (self._mid + 1) & 0xFFFF
        data = post_u(body, mid=mid, token=mid.to_bytes(2, "big")).encode()
        future = asyncio.get_running_loop().create_future()
        self.waiting[mid] = future
        try:
            for _ in range(attempts):
                self.transport.sendto(data)
                try:
                    async with asyncio.timeout(timeout):
                        return await asyncio.shield(future)
                except TimeoutError:
                    continue
            return None
        finally:
            del self.waiting[mid]

    def close(self):
        self.transport.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_process(cloud_url: str, data_dir: Path, port: int, *extra: str) -> subprocess.Popen:
    """`python -m kapok.edge_agent run ...` as a child process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kapok.edge_agent",
            "run",
            "--cloud",
            cloud_url,
            "--listen",
            f"127.0.0.1:{port}",
            "--data",
            str(data_dir),
            "--metrics",
            "off",
            "--backoff-cap",
            "0.5",
            *extra,
        ],
        env={**os.environ, "KAPOK_GATEWAY_TOKEN": "test-gateway-token"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_coap_up(port: int, timeout: float = 20.0) -> None:
    """Until a CoAP ping (empty CON) gets its RST."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(coap.Message(n.CON, 0, 7).encode(), ("127.0.0.1", port))
            try:
                data, _ = s.recvfrom(64)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if coap.Message.decode(data).mtype == n.RST:
                return
    raise AssertionError("agent did not come up")
