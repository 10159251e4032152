# CoAP client of the node: one Confirmable request at a time (NSTART 1).
#
# `ClientCore` is sans-IO: it is handed the time (monotonic ms), random
# numbers and every datagram that arrives, and says what to send and what
# happened. It uses protocols.coap's Retransmission (RFC 7252 §4.2:
# ACK_TIMEOUT 2 s x 1..1.5, doubling, MAX_RETRANSMIT 4), matches a
# piggybacked response by message id AND token, handles an empty ACK
# followed by a separate response (which it ACKs, and ACKs again when the
# server repeats it), a Reset, and ignores duplicate and stray datagrams
# (a Confirmable stray gets a Reset, as §4.2 asks).
#
# `Client` is the thin asyncio wrapper over a board Transport: `request()`
# returns the response Message or raises Timeout / Reset (CoapError), and
# `download()` fetches a Block2 resource block by block into a sink without
# ever holding the whole body (the OTA bundle goes straight to flash).

from micropython import const

from protocols import coap
from protocols.coap_numbers import (
    ACK,
    BLOCK2,
    CON,
    CONTENT,
    CONTENT_FORMAT,
    EXCHANGE_LIFETIME_MS,
    GET,
    MAX_SZX,
    RST,
    code_str,
)

# receive() events
IGNORED = const(0)  # not for us, or a duplicate
WAITING = const(1)  # empty ACK: the response comes separately
RESPONSE = const(2)  # the response is here
RESET = const(3)  # the server refused the request with a Reset

_IDLE = const(0)
_WAIT_ACK = const(1)
_WAIT_SEPARATE = const(2)

# how long to wait for a separate response after its empty ACK
SEPARATE_TIMEOUT_MS = EXCHANGE_LIFETIME_MS // 4


class CoapError(Exception):
    pass


class Timeout(CoapError):
    pass


class Reset(CoapError):
    pass


class ClientCore:
    # Two token bytes: with the random 16-bit message id an off-path forger
    # must guess 32 bits to fake an ACK, and the signed meter reading still
    # fits its 128-byte datagram (docs/protocol.md budget).
    def __init__(self, mid_start, token_start, token_length=2):
        self.mids = coap.MessageIdAllocator(mid_start)
        self.tokens = coap.TokenAllocator(token_start, token_length)
        self.state = _IDLE
        self._retx = None
        self._bytes = None
        self._mid = None
        self._token = None
        self._deadline = 0
        self._separate_mids = []  # separate CON responses we ACKed, newest last

    def request(self, code, path, now, rand, payload=b"", content_format=None, options=None):
        """Start a Confirmable request; returns the datagram to send."""
        msg = coap.Message(CON, code, self.mids.next(), self.tokens.next(), options)
        msg.uri_path = path
        if content_format is not None:
            msg.add_option(CONTENT_FORMAT, content_format)
        msg.payload = bytes(payload)
        self._bytes = msg.encode()
        self._mid = msg.mid
        self._token = msg.token
        self._retx = coap.Retransmission(now, rand)
        self.state = _WAIT_ACK
        return self._bytes

    def wait_ms(self, now):
        """Milliseconds until poll() has something to do."""
        if self.state == _WAIT_ACK:
            return self._retx.wait_ms(now)
        if self.state == _WAIT_SEPARATE:
            d = self._deadline - now
            return d if d > 0 else 0
        return 0

    def poll(self, now):
        """(coap.WAIT | RETRANSMIT | GIVE_UP, datagram to send or None)."""
        if self.state == _WAIT_ACK:
            action = self._retx.poll(now)
            if action == coap.RETRANSMIT:
                return action, self._bytes
            if action == coap.GIVE_UP:
                self.state = _IDLE
            return action, None
        if self.state == _WAIT_SEPARATE:
            if now >= self._deadline:
                self.state = _IDLE
                return coap.GIVE_UP, None
            return coap.WAIT, None
        return coap.WAIT, None

    def _remember_separate(self, mid):
        ms = self._separate_mids
        if mid not in ms:
            ms.append(mid)
            if len(ms) > 8:
                ms.pop(0)

    def receive(self, data, now):
        """(event, response Message or None, datagram to send or None)."""
        try:
            msg = coap.Message.decode(data)
        except coap.CoapDecodeError as e:
            if e.mtype == CON and e.mid is not None:
                return IGNORED, None, coap.reset_for(e).encode()
            return IGNORED, None, None
        active = self.state != _IDLE
        if msg.mtype == ACK:
            if self.state != _WAIT_ACK or msg.mid != self._mid:
                return IGNORED, None, None  # late or stray ACK
            if msg.is_empty:
                self._retx.ack()
                self.state = _WAIT_SEPARATE
                self._deadline = now + SEPARATE_TIMEOUT_MS
                return WAITING, None, None
            if not msg.is_response or msg.token != self._token:
                return IGNORED, None, None
            self._retx.ack()
            self.state = _IDLE
            return RESPONSE, msg, None
        if msg.mtype == RST:
            if self.state == _WAIT_ACK and msg.mid == self._mid:
                self._retx.reset()
                self.state = _IDLE
                return RESET, None, None
            return IGNORED, None, None
        # CON or NON: a separate response, a repeat of one, or a stray
        ack = coap.empty_ack(msg).encode() if msg.mtype == CON else None
        if active and msg.is_response and msg.token == self._token:
            if self._retx is not None:
                self._retx.ack()
            self.state = _IDLE
            if msg.mtype == CON:
                self._remember_separate(msg.mid)
            return RESPONSE, msg, ack
        if msg.mtype == CON:
            if msg.mid in self._separate_mids:
                return IGNORED, None, ack  # our ACK was lost: ACK again
            return IGNORED, None, coap.reset_for(msg).encode()
        return IGNORED, None, None


def _rand(random_bytes):
    return random_bytes(1)[0] / 255


class Client:
    """Requests over a board Transport to one server address. `time_ms` and
    `random_bytes` come from the board."""

    def __init__(self, transport, addr, time_ms, random_bytes):
        r = random_bytes(4)
        self.transport = transport
        self.addr = addr
        self.time_ms = time_ms
        self.random_bytes = random_bytes
        self.core = ClientCore((r[0] << 8) | r[1], (r[2] << 8) | r[3])

    async def request(self, code, path, payload=b"", content_format=None, options=None):
        core = self.core
        t = self.transport
        data = core.request(
            code,
            path,
            self.time_ms(),
            _rand(self.random_bytes),
            payload,
            content_format,
            options,
        )
        await t.send(data, self.addr)
        while True:
            wait = core.wait_ms(self.time_ms())
            got = await t.recv(wait) if wait else None
            now = self.time_ms()
            if got is not None:
                event, response, reply = core.receive(got[0], now)
                if reply is not None:
                    await t.send(reply, got[1])
                if event == RESPONSE:
                    return response
                if event == RESET:
                    raise Reset(f"{self.addr} refused the request (RST)")
                continue
            action, again = core.poll(now)
            if action == coap.RETRANSMIT:
                await t.send(again, self.addr)
            elif action == coap.GIVE_UP:
                raise Timeout(f"no response from {self.addr}")

    async def download(self, path, sink, limit, szx=MAX_SZX):
        """GET `path` with Block2, handing each block's bytes to `sink` as it
        arrives; returns the number of bytes. A non-2.05 response raises
        CoapError; a broken transfer (changed ETag, wrong block, over
        `limit`) raises ValueError."""
        blocks = coap.Block2Reassembler(limit, szx)
        while not blocks.done:
            resp = await self.request(GET, path, options=[(BLOCK2, blocks.next_option())])
            if resp.code != CONTENT:
                raise CoapError(f"GET {path}: {code_str(resp.code)}")
            chunk = blocks.accept(resp)
            if chunk:
                sink(chunk)
        return blocks.received
