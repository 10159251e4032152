"""Fakes for the runtime tests: a file system that cuts the power after any
step, a clock the test moves, an in-memory datagram network with a scripted
gateway built from protocols.coap (the real agent lives elsewhere), a UDP
Transport for CPython, and a board."""

import asyncio
import os
from collections import deque

from runtime import store as store_mod

from kapok.protocols import coap, cose, messages
from kapok.protocols import coap_numbers as n

GATEWAY = ("gateway.test", 5683)
NODE = ("node.test", 40000)
T0 = 1767225600  # 2026-01-01 00:00:00 UTC


class PowerCut(BaseException):
    """The power went: not an Exception, so no handler in the code under
    test can swallow it."""


class PowerCutFs(store_mod.OsFs):
    """The board's fs calls on a real folder, counting every step that
    changes flash (open for writing, each write, close, rename, remove,
    mkdir, rmdir). With `cut_at=k` step k does not happen - except a write,
    which leaves the first half of its bytes, as a cut mid-program does -
    and PowerCut is raised. `steps` counts the steps taken."""

    def __init__(self, cut_at=None):
        self.cut_at = cut_at
        self.steps = 0

    def step(self):
        if self.cut_at is not None and self.steps == self.cut_at:
            self.steps += 1
            raise PowerCut()
        self.steps += 1

    def open(self, path, mode):
        if "r" in mode:
            return open(path, mode)
        self.step()
        return _CutFile(open(path, mode), self)

    def rename(self, old, new):
        self.step()
        os.rename(old, new)

    def remove(self, path):
        self.step()
        os.remove(path)

    def mkdir(self, path):
        self.step()
        os.mkdir(path)

    def rmdir(self, path):
        self.step()
        os.rmdir(path)


class _CutFile:
    def __init__(self, f, fs):
        self.f = f
        self.fs = fs

    def write(self, data):
        fs = self.fs
        if fs.cut_at is not None and fs.steps == fs.cut_at:
            self.f.write(bytes(data)[: len(data) // 2])
            self.f.close()
            fs.steps += 1
            raise PowerCut()
        fs.steps += 1
        return self.f.write(data)

    def close(self):
        if self.f.closed:
            return
        self.fs.step()
        self.f.close()


class FakeClock:
    """Monotonic milliseconds the test (or a virtual-time transport) moves."""

    def __init__(self, ms=1_000_000):
        self.ms = ms

    def __call__(self):
        return self.ms

    def advance(self, ms):
        self.ms += ms


class Rtc:
    """board.unix_time / set_unix_time: None until set, then follows the
    monotonic clock."""

    def __init__(self, clock):
        self.clock = clock
        self.base = None

    def unix_time(self):
        if self.base is None:
            return None
        return self.base[0] + (self.clock.ms - self.base[1]) // 1000

    def set_unix_time(self, t):
        self.base = (t, self.clock.ms)


class Network:
    """Datagrams between the node's transports and scripted peers, in
    virtual time: a recv() with nothing queued moves the clock by its
    timeout. `peers` maps an address to a callable(data, src) -> list of
    datagrams sent back. `drop` is a list of booleans consumed per datagram
    sent by the node (True: lost on the way); `drop_replies` the same for
    the peer's answers."""

    def __init__(self, clock):
        self.clock = clock
        self.peers = {}
        self.drop = deque()
        self.drop_replies = deque()
        self.sent = []  # (data, addr) sent by the node
        self.inbox = deque()  # (data, addr) for the node

    def transport(self):
        return MemTransport(self)

    def deliver(self, data, addr):
        self.sent.append((bytes(data), addr))
        if self.drop and self.drop.popleft():
            return
        peer = self.peers.get(addr)
        if peer is None:
            return
        for reply in peer(bytes(data), NODE):
            if self.drop_replies and self.drop_replies.popleft():
                continue
            self.inbox.append((reply, addr))


class MemTransport:
    """board.Transport over a Network."""

    def __init__(self, net):
        self.net = net
        self.port = None
        self.closed = False

    async def open(self, local_port=0):
        self.port = local_port

    async def send(self, data, addr):
        self.net.deliver(data, addr)

    async def recv(self, timeout_ms):
        net = self.net
        if net.inbox:
            return net.inbox.popleft()
        net.clock.advance(timeout_ms)
        await asyncio.sleep(0)
        return None

    def close(self):
        self.closed = True


class UdpTransport:
    """board.Transport for CPython: real UDP on 127.0.0.1."""

    def __init__(self):
        self._queue = asyncio.Queue()
        self._t = None

    async def open(self, local_port=0):
        loop = asyncio.get_running_loop()
        queue = self._queue

        class _Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                queue.put_nowait((data, addr[:2]))

        self._t, _ = await loop.create_datagram_endpoint(
            _Proto, local_addr=("127.0.0.1", local_port)
        )

    @property
    def port(self):
        return self._t.get_extra_info("sockname")[1]

    async def send(self, data, addr):
        self._t.sendto(bytes(data), addr)

    async def recv(self, timeout_ms):
        try:
            return await asyncio.wait_for(self._queue.get(), timeout_ms / 1000)
        except TimeoutError:
            return None

    def close(self):
        if self._t is not None:
            self._t.close()


class Gateway:
    """A peer that behaves as DESIGN's gateway for `POST /u`: verifies the
    COSE with the registered key, stores the payload by (device, seq),
    answers 2.04 {1: seq, 2: time, ? 3: commands} (the same answer for a
    duplicate), 4.00 for malformed bodies, 4.01 for unknown kids or bad
    signatures, 4.13 over 1024 bytes, 5.03 + Max-Age in `unavailable` mode
    and 4.00 for everything in `reject` mode.
    `separate` answers with an empty ACK and a separate CON response.
    `fw` maps a path ("fw/<hex>") to a body served with Block2."""

    def __init__(self, keys, now=lambda: T0):
        self.keys = dict(keys)  # kid -> ("sign1", pub) or ("mac0", key)
        self.now = now
        self.stored = {}  # (kid, seq) -> payload bytes
        self.order = []  # (kid, seq) in the order first stored
        self.commands = []  # COSE commands for the next 2.04
        self.mode = "ok"
        self.max_age = 30
        self.separate = False
        self.fw = {}
        self.requests = []  # decoded requests as received
        self.dedup = coap.Deduplicator()
        self._mid = 0x4000

    def __call__(self, data, peer):
        req = coap.Message.decode(data)
        if req.mtype in (n.ACK, n.RST):
            return []
        self.requests.append(req)
        cached = self.dedup.check(peer, req.mid, 0)
        if cached is not None and cached is not coap.PENDING:
            return [cached] if not isinstance(cached, list) else cached
        out = self._answer(req)
        if self.separate and req.mtype == n.CON and out.mtype == n.ACK:
            self._mid += 1
            sep = coap.Message(n.CON, out.code, self._mid, req.token, out.options, out.payload)
            answer = [coap.empty_ack(req).encode(), sep.encode()]
            self.dedup.remember(peer, req.mid, answer[0], 0)
            return answer
        raw = out.encode()
        self.dedup.remember(peer, req.mid, raw, 0)
        return [raw]

    def _answer(self, req):
        try:
            path = "/".join(req.uri_path)
            if req.code == n.GET and path in self.fw:
                return coap.block2_response(req, self.fw[path])
            if path != "u" or req.code != n.POST:
                raise coap.NotFound("no such resource")
            if self.mode == "unavailable":
                raise coap.ServiceUnavailable("disk full", max_age=self.max_age)
            if self.mode == "reject":
                raise coap.BadRequest("cannot parse that")
            if len(req.payload) > 1024:
                raise coap.RequestEntityTooLarge("over 1024 bytes", size1=1024)
            try:
                kid = cose.kid(req.payload).decode()
            except ValueError as e:
                raise coap.BadRequest(str(e)) from None
            key = self.keys.get(kid)
            if key is None:
                raise coap.Unauthorized("unknown kid")
            try:
                if key[0] == "sign1":
                    payload = cose.verify1(req.payload, key[1])
                else:
                    payload = cose.verify_mac0(req.payload, key[1])
                up = messages.parse_uplink(payload, kid)
            except ValueError as e:
                raise coap.Unauthorized(str(e)) from None
            k = (kid, up["seq"])
            if k not in self.stored:
                self.stored[k] = payload
                self.order.append(k)
            cmds, self.commands = self.commands, []
            body = messages.build_reply(up["seq"], self.now(), cmds)
            return coap.ack_for(req, n.CHANGED, body, [(n.CONTENT_FORMAT, n.CF_CBOR)])
        except coap.ResponseError as e:
            return coap.response_for(req, e)

    def uplinks(self, kid=None):
        """Parsed uplinks in the order stored."""
        return [
            messages.parse_uplink(self.stored[k], k[0])
            for k in self.order
            if kid is None or k[0] == kid
        ]


class BoardReset(BaseException):
    pass


class DeepSleep(BaseException):
    def __init__(self, ms):
        super().__init__(ms)
        self.ms = ms


class FakeWDT:
    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class FakeBoard:
    """The board interface over temp folders, a fake clock and a Network."""

    NAME = "virtual"

    def __init__(self, root, net, clock, rtc=True, cause="power"):
        self.DATA_DIR = str(root / "data")
        self.SLOTS = str(root / "slots")
        self.net = net
        self.clock = clock
        self.rtc = Rtc(clock) if rtc else None
        self.cause = cause
        self.syncs = 0
        self.wdts = []
        self.periph = {}
        self._rand = 0

    def time_ms(self):
        return self.clock.ms

    def unix_time(self):
        return self.rtc.unix_time() if self.rtc else None

    def set_unix_time(self, t):
        if self.rtc:
            self.rtc.set_unix_time(t)

    def random_bytes(self, k):
        self._rand += 1
        return bytes((self._rand * 37 + i * 11) & 0xFF for i in range(k))

    def flash_sync(self):
        self.syncs += 1

    def Transport(self):
        return self.net.transport()

    def gateway_addr(self):
        return GATEWAY

    def WDT(self, timeout_ms):
        w = FakeWDT(timeout_ms)
        self.wdts.append(w)
        return w

    def reset(self):
        raise BoardReset()

    def deepsleep(self, ms):
        raise DeepSleep(ms)

    def reset_cause(self):
        return self.cause

    def peripherals(self, config):
        return self.periph
