"""The gateway's CoAP endpoint: one UDP socket (dual-stack IPv6/IPv4 where
the OS allows), an asyncio DatagramProtocol on `kapok.protocols.coap`.

Server side: `POST /u` (uplink.py) and `GET /fw/<sha256>` (Block2 from the
OTA cache); duplicate detection by (peer, message id) answers a
retransmitted request with the very bytes sent the first time (RFC 7252
§4.5). Client side: Confirmable requests to nodes (`POST /c` to always-on
hubs), retransmitted with `coap.Retransmission`, from the same socket, so a
node behind a NAT answers to the port it already talks to.

Why not aiocoap here: its server manages a few thousand requests per second
per process on this class of machine (benchmarks/agent.py measures both); a
bare DatagramProtocol over the sans-IO codec shared with the firmware leaves
the CPU to signature checks and the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time

from kapok.protocols import coap
from kapok.protocols import coap_numbers as n

from .config import Address
from .firmware import FirmwareCache
from .metrics import Metrics
from .uplink import UplinkService

log = logging.getLogger(__name__)

# Critical options a request may carry here (others get 4.02, §5.4.1).
# Block1 is "known" so that POST /u with Block1 gets DESIGN's 4.13.
KNOWN_OPTIONS = (
    n.URI_HOST,
    n.URI_PORT,
    n.URI_PATH,
    n.URI_QUERY,
    n.ACCEPT,
    n.BLOCK1,
    n.BLOCK2,
)
RECEIVE_BUFFER = 4 * 2**20  # a burst of thousands of nodes waking at once


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def peer_text(addr) -> str:
    """A socket address as `host:port`, v4-mapped IPv6 shown as IPv4."""
    host = addr[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return str(Address(host, addr[1]))


class CoapEndpoint(asyncio.DatagramProtocol):
    def __init__(
        self,
        uplinks: UplinkService,
        firmware: FirmwareCache | None,
        metrics: Metrics,
        *,
        dedup_entries: int = 32_768,
        closing_max_age: int = 5,
    ):
        self.uplinks = uplinks
        self.firmware = firmware
        self.metrics = metrics
        self.dedup = coap.Deduplicator(max_entries=dedup_entries)
        self.mids = coap.MessageIdAllocator(random.getrandbits(16))
        self.tokens = coap.TokenAllocator(random.getrandbits(32), 4)
        self.closing = False
        self.closing_max_age = closing_max_age
        self.transport: asyncio.DatagramTransport | None = None
        self.family = socket.AF_INET6
        self._tasks: set[asyncio.Task] = set()
        self._outstanding: dict[int, asyncio.Future] = {}

    # -- socket

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.family = transport.get_extra_info("socket").family

    def error_received(self, exc) -> None:
        # ICMP port unreachable and the like, reported on the next receive
        log.debug("udp error", extra={"error": str(exc)})

    def _send(self, data: bytes, addr) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            msg = coap.Message.decode(data)
        except coap.CoapDecodeError as e:
            if e.mtype == n.CON and e.mid is not None:
                self._send(coap.reset_for(e).encode(), addr)  # §4.2
            return
        if msg.mtype in (n.ACK, n.RST):
            future = self._outstanding.get(msg.mid)
            if future is not None and not future.done():
                future.set_result(msg)
            return
        if msg.code == 0:
            if msg.mtype == n.CON:  # CoAP ping (§4.3)
                self._send(coap.reset_for(msg).encode(), addr)
            return
        if not msg.is_request:
            # a response in a message of its own: not something we asked
            # for this way (we only take piggybacked answers), so reject it
            if msg.mtype == n.CON:
                self._send(coap.reset_for(msg).encode(), addr)
            return
        peer = addr[:2]
        cached = self.dedup.check(peer, msg.mid, _now_ms())
        if cached is coap.PENDING:
            return  # still working on the first copy
        if cached is not None:
            self.metrics.uplink["retransmit"].inc()
            self._send(cached, addr)
            return
        task = asyncio.get_running_loop().create_task(self._serve(msg, addr, peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, msg: coap.Message, addr, peer) -> None:
        mid = None if msg.mtype == n.CON else self.mids.next()
        try:
            response = await self._dispatch(msg, addr, mid)
        except coap.ResponseError as e:
            response = coap.response_for(msg, e, mid)
        except Exception as e:
            log.exception("request failed", extra={"peer": peer_text(addr)})
            response = coap.response_for(msg, e, mid)
        data = response.encode()
        self.dedup.remember(peer, msg.mid, data, _now_ms())
        self._send(data, addr)

    async def _dispatch(self, msg: coap.Message, addr, mid) -> coap.Message:
        msg.check_critical(KNOWN_OPTIONS)
        path = msg.uri_path
        if path == ["u"]:
            if msg.code != n.POST:
                raise coap.MethodNotAllowed("POST /u")
            if self.closing:
                raise coap.ServiceUnavailable("gateway restarting", self.closing_max_age)
            reply = await self.uplinks.handle(
                msg.payload,
                msg.content_format,
                msg.option(n.BLOCK1) is not None,
                peer_text(addr),
            )
            return coap.ack_for(msg, n.CHANGED, reply, [(n.CONTENT_FORMAT, n.CF_CBOR)], mid)
        if len(path) == 2 and path[0] == "fw":
            if msg.code != n.GET:
                raise coap.MethodNotAllowed("GET /fw/<sha256>")
            bundle = self.firmware.get(path[1]) if self.firmware else None
            if bundle is None:
                raise coap.NotFound("no such firmware bundle at this gateway")
            options = [(n.ETAG, bytes.fromhex(path[1][:16])), (n.CONTENT_FORMAT, n.CF_OCTET_STREAM)]
            return coap.block2_response(msg, bundle, n.CONTENT, options, mid=mid)
        raise coap.NotFound("no such resource")

    async def drain(self) -> None:
        """Stop taking uplinks (5.03) and wait for those being handled."""
        self.closing = True
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- client side

    async def resolve(self, address: str):
        """A node's `host:port` as a sendto() address for this socket."""
        a = Address.parse(address)
        infos = await asyncio.get_running_loop().getaddrinfo(
            a.host,
            a.port,
            family=self.family,
            type=socket.SOCK_DGRAM,
            flags=socket.AI_V4MAPPED if self.family == socket.AF_INET6 else 0,
        )
        return infos[0][4]

    async def request(
        self, address: str, msg: coap.Message, *, ack_timeout: float = 2.0
    ) -> coap.Message | None:
        """Send `msg` as a Confirmable request; the piggybacked response (or
        an empty ACK, or RST), None after the last retransmission timed out
        (RFC 7252 §4.2: MAX_RETRANSMIT 4, about 45 s at ACK_TIMEOUT 2 s)."""
        addr = await self.resolve(address)
        msg.mtype = n.CON
        msg.mid = self.mids.next()
        msg.token = self.tokens.next()
        data = msg.encode()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._outstanding[msg.mid] = future
        retrans = coap.Retransmission(_now_ms(), random.random(), int(ack_timeout * 1000))
        self._send(data, addr)
        try:
            while True:
                wait = retrans.wait_ms(_now_ms()) / 1000
                try:
                    async with asyncio.timeout(wait):
                        return await asyncio.shield(future)
                except TimeoutError:
                    action = retrans.poll(_now_ms())
                    if action == coap.RETRANSMIT:
                        self._send(data, addr)
                    elif action == coap.GIVE_UP:
                        return None
        finally:
            self._outstanding.pop(msg.mid, None)


async def open_endpoint(endpoint: CoapEndpoint, listen: Address) -> tuple:
    """Bind the socket and start the protocol; returns (transport, bound Address)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        listen.host, listen.port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
    )
    family, _, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    try:
        if family == socket.AF_INET6:
            try:  # one socket for IPv6 and IPv4 nodes
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                log.warning("IPv4 nodes cannot reach an IPv6-only socket here")
        with contextlib.suppress(OSError):  # the kernel may cap it; smaller still works
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind(sockaddr)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    transport, _ = await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
    bound = sock.getsockname()
    return transport, Address(bound[0], bound[1])
