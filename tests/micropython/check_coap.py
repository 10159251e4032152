# Runs on MicroPython (and on CPython through test_coap_on_micropython.py):
# the shared CoAP vectors, PRNG-driven round trips and fuzz, the
# retransmission schedule, Block2 slicing and reassembly, deduplication.
# Last line printed: "ok coap <number of checks>".

from mpcheck import Rng, check, done, load, unhex

from protocols import coap
from protocols import coap_numbers as n

V = load("coap")

# -- hand-assembled vectors
for v in V["valid"]:
    data = unhex(v["hex"])
    m = coap.Message.decode(data)
    want = (
        v["mtype"],
        v["code"],
        v["mid"],
        unhex(v["token"]),
        [(num, unhex(val)) for num, val in v["options"]],
        unhex(v["payload"]),
    )
    got = (m.mtype, m.code, m.mid, m.token, m.options, m.payload)
    check(got == want, "decode %s: %r" % (v["name"], m))
    check(m.encode() == data, "re-encode %s" % v["name"])
    buf = bytearray(len(data) + 3)
    check(m.encode_into(buf) == len(data) and bytes(buf[: len(data)]) == data, "encode_into")
    built = coap.Message(want[0], want[1], want[2], want[3], want[4], want[5])
    check(built.encode() == data, "build %s" % v["name"])
    for attr in ("uri_path", "uri_query", "content_format", "max_age", "size1", "size2"):
        if attr in v:
            check(getattr(m, attr) == v[attr], "%s of %s" % (attr, v["name"]))
    for attr in ("block1", "block2"):
        if attr in v:
            check(getattr(m, attr) == tuple(v[attr]), "%s of %s" % (attr, v["name"]))

for v in V["malformed"]:
    try:
        coap.Message.decode(unhex(v["hex"]))
        raise AssertionError("accepted malformed: " + v["name"])
    except coap.CoapDecodeError as e:
        check(e.mid == v["mid"], "mid of error for " + v["name"])

for v in V["blocks"]:
    check(coap.parse_block(v["value"]) == (v["num"], v["more"], v["szx"]), "parse_block")
    check(coap.block_option(v["num"], v["more"], v["szx"]) == v["value"], "block_option")
for v in V["bad_blocks"]:
    try:
        coap.parse_block(v["value"])
        raise AssertionError("accepted bad block %d" % v["value"])
    except coap.ResponseError:
        check(True, "")

# -- retransmission schedule (RFC 7252 §4.2)
NAMES = {"WAIT": coap.WAIT, "RETRANSMIT": coap.RETRANSMIT, "GIVE_UP": coap.GIVE_UP}
for v in V["retransmission"]:
    t = coap.Retransmission(0, v["rand"])
    for when, action in v["events"]:
        check(t.poll(when) == NAMES[action], "%s at %d" % (v["name"], when))
    check(t.attempts == 1 + n.MAX_RETRANSMIT, "attempts")
t = coap.Retransmission(0, 0)
t.ack()
check(t.poll(10**6) == coap.DONE, "ack ends retransmission")
P = 1 << 30
t = coap.Retransmission(P - 500, 0, period=P)
check(t.poll(P - 1) == coap.WAIT and t.poll(1500) == coap.RETRANSMIT, "wrapping ticks")

# -- UTF-8 strictness (MicroPython's own decoder lets surrogates through)
for raw in (b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80", b"a\xe2\x82", b"\xff"):
    m = coap.Message(n.CON, n.GET, 1, b"", [(n.URI_PATH, raw)])
    try:
        m.uri_path
        raise AssertionError("accepted bad UTF-8 %r" % raw)
    except coap.BadOption:
        check(True, "")
m = coap.Message(n.CON, n.GET, 1, b"", [(n.URI_PATH, "木棉"), (n.URI_PATH, "gm-0001a3")])
check(m.uri_path == ["木棉", "gm-0001a3"], "utf-8 path")

# -- PRNG-driven round trips
rng = Rng(0x7252)
NUMBERS = (1, 3, 4, 5, 6, 11, 11, 12, 14, 15, 17, 23, 27, 28, 35, 60, 258, 2048, 65000)
for i in range(300):
    code = (0, 1, 2, 3, 4, 65, 68, 69, 95, 128, 141, 163)[rng.below(12)]
    m = coap.Message(rng.below(4), code, rng.below(65536))
    if code:
        m.token = rng.bytes(rng.below(9))
        for _ in range(rng.below(6)):
            num = NUMBERS[rng.below(len(NUMBERS))]
            size = rng.below(300) if rng.below(8) == 0 else rng.below(14)
            m.add_option(num, rng.bytes(size))
        m.payload = rng.bytes(rng.below(40) if rng.below(3) else 0)
    data = m.encode()
    back = coap.Message.decode(data)
    check(back == m, "round trip %d: %r" % (i, m))
    check(back.encode() == data, "canonical %d" % i)

# -- fuzz: random and mutated datagrams raise only CoapDecodeError, and what
# decodes re-encodes to the same bytes
valid = [unhex(v["hex"]) for v in V["valid"]]
for i in range(400):
    if i % 2:
        data = rng.bytes(rng.below(40))
    else:
        data = bytearray(valid[rng.below(len(valid))])
        for _ in range(1 + rng.below(3)):
            data[rng.below(len(data))] = rng.below(256)
        data = bytes(data[: rng.below(len(data) + 1)])
    try:
        m = coap.Message.decode(data)
    except coap.CoapDecodeError:
        check(True, "")
        continue
    check(m.encode() == data, "fuzz re-encode %r" % data)
    for attr in ("uri_path", "content_format", "max_age", "block1", "block2", "size2"):
        try:
            getattr(m, attr)
        except ValueError:
            pass

# -- Block2: slice with the server helper, reassemble with the client one
body = bytes((i * 31 + 7) & 0xFF for i in range(1000))
for szx in range(7):
    for server_max in (6, 2):
        r = coap.Block2Reassembler(1000, szx)
        req = coap.Message(n.CON, n.GET, 1, b"\x01", [(n.URI_PATH, "fw")])
        got = None
        rounds = 0
        while got is None:
            req.set_option(n.BLOCK2, r.next_option())
            resp = coap.block2_response(req, body, max_szx=server_max)
            got = r.feed(coap.Message.decode(resp.encode()))
            rounds += 1
        size = 16 << min(szx, server_max)
        check(got == body, "reassembled szx %d/%d" % (szx, server_max))
        check(rounds == (1000 + size - 1) // size, "block count szx %d" % szx)
r = coap.Block2Reassembler(1000, 4)
first = coap.Message(n.ACK, n.CONTENT, 1, b"", payload=body[:256])
first.block2 = (0, True, 4)
r.feed(first)
try:
    r.feed(first)
    raise AssertionError("accepted a repeated block")
except ValueError:
    check(True, "")
try:
    coap.Block2Reassembler(100, 4).feed(first)
    raise AssertionError("accepted an oversize body")
except ValueError:
    check(True, "")

# -- deduplication
d = coap.Deduplicator(max_entries=4)
check(d.check("peer", 7, 0) is None, "first")
check(d.check("peer", 7, 1) is coap.PENDING, "pending")
d.remember("peer", 7, b"\x60\x44\x00\x07", 2)
check(d.check("peer", 7, 3) == b"\x60\x44\x00\x07", "duplicate answered")
check(d.check("peer", 7, n.EXCHANGE_LIFETIME_MS) is None, "expired")
for mid in range(10):
    d.remember("peer", 100 + mid, b"x", 10 + mid)
check(len(d) == 4, "bounded")

# -- responses
req = coap.Message(n.CON, n.POST, 0x1234, b"\xca\xfe", [(n.URI_PATH, "u")], b"x")
resp = coap.response_for(req, coap.RequestEntityTooLarge("too big", size1=1024))
check(resp.encode() == unhex("628d1234cafed22f0400ff") + b"too big", "4.13 response")
resp = coap.response_for(req, coap.ServiceUnavailable("full", max_age=30))
check((resp.code, resp.max_age, resp.payload) == (n.SERVICE_UNAVAILABLE, 30, b"full"), "5.03")
check(coap.response_for(req, KeyError("x")).code == n.INTERNAL_SERVER_ERROR, "5.00")
check(coap.empty_ack(req).encode() == unhex("60001234"), "empty ack")
check(n.code_str(n.CHANGED) == "2.04", "code_str")

done("coap")
