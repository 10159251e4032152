"""CoAP over UDP for simulated nodes, on asyncio and `kapok.protocols.coap`
(the framing and retransmission rules the firmware uses).

A `Radio` is one UDP socket. Many battery meters can share one (each
exchange has its own message id and token); a hub gets its own, because the
gateway pushes commands (`POST /c`) to the address its uplinks came from.

    radio = await Radio.open(("127.0.0.1", 5683), on_request=handler)
    response = await radio.request(POST, "u", cose_bytes, CF_COSE_SIGN1)

Confirmable requests are retransmitted per RFC 7252 §4.2 (coap.Retransmission);
an empty ACK means a separate response follows (acknowledged when it comes).
`RadioError` when the gateway never answered.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time

from kapok.protocols import coap
from kapok.protocols import coap_numbers as n

# How long a separate response may take after the empty ACK (the gateway
# waits up to 2 s for a registry refresh; a busy one longer).
SEPARATE_TIMEOUT_S = 30.0


class RadioError(OSError):
    """The gateway did not answer a request."""


def _ms() -> int:
    return int(time.monotonic() * 1000)


def parse_address(text: str, default_port: int = 5683) -> tuple[str, int]:
    """HOST:PORT, HOST, or [IPv6]:PORT -> (host, port)."""
    host, port = text, str(default_port)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r}: write IPv6 as [address]:port")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif ":" in text:
        raise ValueError(f"bad address {text!r}: write IPv6 as [address]:port")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad address {text!r}: HOST:PORT, port 1-65535")
    return host, int(port)


class Radio(asyncio.DatagramProtocol):
    def __init__(self, gateway: tuple[str, int], on_request=None):
        self.gateway = gateway
        self.on_request = on_request  # async (Message, addr) -> Message | None
        self.transport: asyncio.DatagramTransport | None = None
        self.mids = coap.MessageIdAllocator(random.getrandbits(16))
        self.tokens = coap.TokenAllocator(random.getrandbits(32), 4)
        self._by_token: dict[bytes, _Exchange] = {}
        self._by_mid: dict[int, _Exchange] = {}
        self._serving: set[asyncio.Task] = set()
        self._served = coap.Deduplicator(max_entries=256)
        self.local: tuple | None = None

    @classmethod
    async def open(cls, gateway: tuple[str, int], on_request=None, port: int = 0) -> Radio:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(gateway[0], gateway[1], type=socket.SOCK_DGRAM)
        family, _, _, _, addr = infos[0]
        radio = cls(addr[:2], on_request)
        bind = ("::" if family == socket.AF_INET6 else "0.0.0.0", port)
        if addr[0] in ("127.0.0.1", "::1"):
            bind = (addr[0], port)
        await loop.create_datagram_endpoint(lambda: radio, local_addr=bind, family=family)
        return radio

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.local = transport.get_extra_info("sockname")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for exchange in self._by_token.values():
            exchange.empty(reset=True)

    # -- incoming

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            msg = coap.Message.decode(data)
        except ValueError:
            return  # not CoAP: a real node would drop it too
        if msg.is_request:
            if self.on_request is not None:
                task = asyncio.ensure_future(self._serve(msg, addr))
                self._serving.add(task)
                task.add_done_callback(self._serving.discard)
            elif msg.mtype == n.CON:
                self._send(coap.reset_for(msg).encode(), addr)
            return
        if msg.mtype in (n.ACK, n.RST) and msg.is_empty:
            exchange = self._by_mid.get(msg.mid)
            if exchange is not None:
                exchange.empty(msg.mtype == n.RST)
            return
        exchange = self._by_token.get(msg.token)
        if msg.mtype == n.CON:  # a separate response: acknowledge it
            self._send(coap.empty_ack(msg).encode(), addr)
        if exchange is not None:
            exchange.respond(msg)

    async def _serve(self, request: coap.Message, addr) -> None:
        now = _ms()
        seen = self._served.check(addr, request.mid, now)
        if seen is coap.PENDING:
            return
        if seen is not None:
            self._send(seen, addr)
            return
        try:
            response = await self.on_request(request, addr)
        except coap.ResponseError as e:
            response = coap.response_for(request, e)
        except Exception:  # a node answers 5.00, it does not crash
            response = coap.response_for(request, RuntimeError())
        if response is None:
            self._served.forget(addr, request.mid)
            return
        data = response.encode()
        self._served.remember(addr, request.mid, data, now)
        self._send(data, addr)

    def error_received(self, exc) -> None:  # ICMP port unreachable and the like
        pass

    # -- outgoing

    def _send(self, data: bytes, addr) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    async def request(
        self, code: int, path: str, payload: bytes, content_format: int | None = None
    ) -> coap.Message:
        """A Confirmable request to the gateway; its response (any code)."""
        token = self.tokens.next()
        mid = self.mids.next()
        options = [(n.URI_PATH, path)]
        if content_format is not None:
            options.append((n.CONTENT_FORMAT, content_format))
        data = coap.Message(n.CON, code, mid, token, options, payload).encode()
        exchange = _Exchange()
        self._by_token[token] = exchange
        self._by_mid[mid] = exchange
        try:
            retx = coap.Retransmission(_ms(), random.random())
            self._send(data, self.gateway)
            while True:
                if exchange.response is not None:
                    return exchange.response
                if exchange.reset:
                    raise RadioError("the gateway reset the exchange")
                if exchange.acked:
                    # the empty ACK came: no more copies, wait for the response
                    if not await exchange.wait(SEPARATE_TIMEOUT_S):
                        raise RadioError("no separate response from the gateway")
                    continue
                if await exchange.wait(retx.wait_ms(_ms()) / 1000):
                    continue
                state = retx.poll(_ms())
                if state == coap.RETRANSMIT:
                    self._send(data, self.gateway)
                elif state == coap.GIVE_UP:
                    raise RadioError(f"no answer from the gateway at {self.gateway[0]}")
        finally:
            self._by_token.pop(token, None)
            self._by_mid.pop(mid, None)


class _Exchange:
    """One outstanding request: what has come back for it so far."""

    def __init__(self):
        self.response: coap.Message | None = None
        self.acked = False
        self.reset = False
        self._changed = asyncio.Event()

    def respond(self, msg: coap.Message) -> None:
        self.response = msg
        self._changed.set()

    def empty(self, reset: bool) -> None:
        if reset:
            self.reset = True
        else:
            self.acked = True
        self._changed.set()

    async def wait(self, timeout: float) -> bool:
        """True when something came within `timeout` seconds."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        self._changed.clear()
        return True
