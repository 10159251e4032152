# Signed commands: verify, decide, run, report.
#
# A command is a COSE_Sign1 by an authority key over {1: cmd_id, 2: device
# id, 3: op, 4: args, 5: not_after} (docs/protocol.md §5). It runs only when
# every check passes, in this order, each refusal with its own result code:
#   signature  the kid names one of the node's authorities and the
#              signature verifies with that key               E_SIGNATURE
#   device     addressed to this node                          E_DEVICE
#   replay     cmd_id above the last one run for that kid      E_REPLAY
#   -- the cmd_id is stored as that kid's last NOW, before anything runs:
#      a command that reboots or crashes the node never runs twice
#   expiry     not_after not passed (the clock is set from the same
#              reply before its commands are looked at)         E_EXPIRED
#   op         known to this firmware                          E_UNKNOWN_OP
#   authority  the cloud ("all") may sign any op, a gateway ("failsafe")
#              only valve.close and siren.on, the firmware key none
#                                                              E_AUTHORITY
#   args       as docs/protocol.md §5 says                     E_ARGS
#   handler    the app registered one (the hardware is there)  E_UNSUPPORTED
# then the handler runs: it returns None or a detail text (may be a
# coroutine), or raises CommandError(code, detail); any other exception is
# E_FAILED with its text. The result [cmd_id, code, detail] is queued in the
# outbox and rides in the next uplink.
#
# The same cmd_id arriving again from the same authority is a repeated
# delivery of a command already decided (the gateway replays its cached
# 2.04 after a lost ACK): it is ignored, its result already went up.
#
# `CommandServer` is the always-on node's side of `POST /c` (hubs): sans-IO
# in that it maps one request datagram to one response datagram; the node
# wires it to a Transport.

from micropython import const

from protocols import cbor, coap, cose, messages
from protocols.coap_numbers import (
    ACK,
    CF_CBOR,
    CF_COSE_SIGN1,
    CHANGED,
    CON,
    CONTENT_FORMAT,
    POST,
    RST,
    URI_PATH,
)

_MALFORMED = const(-1)  # internal: not a COSE message at all
_DUPLICATE = const(-2)  # internal: this very command was decided before


class CommandError(Exception):
    """Raised by a handler to refuse or fail with a specific result code."""

    def __init__(self, code, detail=None):
        super().__init__(detail or messages.RESULTS.get(code, "failed"))
        self.code = code
        self.detail = detail


def _uint(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _peek_id(msg):
    # the cmd_id of a command that did not verify, to report the refusal
    # against (unverified, so only ever used for that report)
    try:
        payload = cose.decode(msg)[3]
        m = cbor.loads(payload)
        if isinstance(m, dict) and _uint(m.get(1)):
            return m[1]
    except ValueError:
        pass
    return None


class Commands:
    """`authorities`: {kid: [public key, role]} from the config; `ids` a
    seq.CommandIds; `outbox` takes the results; `clock` gives now()."""

    def __init__(self, device_id, authorities, ids, clock, outbox):
        self.device_id = device_id
        self.authorities = authorities
        self.ids = ids
        self.clock = clock
        self.outbox = outbox
        self.handlers = {}

    def register(self, op, handler):
        if op not in messages.OPS:
            raise ValueError(f"unknown op {op!r}")
        self.handlers[op] = handler

    def gate(self, msg):
        """Signature, device and replay checks. Returns (cmd_id or None,
        code, detail, command map or None, kid, role); code OK means the
        command may go on to `admit`."""
        try:
            kid = cose.kid(msg).decode()
        except (ValueError, UnicodeError):
            return _peek_id(msg), _MALFORMED, "not a COSE_Sign1", None, None, None
        auth = self.authorities.get(kid)
        if auth is None:
            return _peek_id(msg), messages.E_SIGNATURE, "unknown authority", None, kid, None
        try:
            payload = cose.verify1(msg, auth[0])
        except ValueError:
            return _peek_id(msg), messages.E_SIGNATURE, "bad signature", None, kid, None
        try:
            m = cbor.loads(payload)
        except ValueError:
            m = None
        if not isinstance(m, dict) or not _uint(m.get(1)):
            return None, messages.E_ARGS, "malformed command", None, kid, auth[1]
        cmd_id = m[1]
        if m.get(2) != self.device_id:
            return cmd_id, messages.E_DEVICE, f"for {m.get(2)}", None, kid, auth[1]
        last = self.ids.last(kid)
        if cmd_id == last:
            return cmd_id, _DUPLICATE, None, None, kid, auth[1]
        if cmd_id < last:
            return cmd_id, messages.E_REPLAY, f"last was {last}", None, kid, auth[1]
        return cmd_id, messages.OK, None, (payload, m), kid, auth[1]

    def admit(self, command, role, now):
        """Expiry, op, authority and args checks: (code, detail, parsed)."""
        payload, m = command
        not_after = m.get(5)
        if now is None:
            return messages.E_EXPIRED, "clock not set", None
        if not _uint(not_after) or not_after < now:
            return messages.E_EXPIRED, f"expired at {not_after}", None
        op = m.get(3)
        if op not in messages.OPS:
            return messages.E_UNKNOWN_OP, f"unknown op {op}", None
        if role == "failsafe" and op not in messages.FAILSAFE_OPS:
            return messages.E_AUTHORITY, f"a gateway key may not sign {op}", None
        if role != "all" and role != "failsafe":
            return messages.E_AUTHORITY, f"{role} key signs no commands", None
        try:
            parsed = messages.parse_command(payload)
        except ValueError as e:
            return messages.E_ARGS, str(e), None
        if op not in self.handlers:
            return messages.E_UNSUPPORTED, f"no {op} on this node", None
        return messages.OK, None, parsed

    async def _dispatch(self, parsed):
        try:
            r = self.handlers[parsed["op"]](parsed["args"])
            if hasattr(r, "send"):  # a coroutine (a generator on MicroPython)
                r = await r
            return messages.OK, r if isinstance(r, str) else None
        except CommandError as e:
            return e.code, e.detail
        except Exception as e:  # a failing handler is a result, not a crash
            return messages.E_FAILED, str(e) or e.__class__.__name__

    async def run(self, msg, report_unverified=True, gated=None):
        """Decide and (if allowed) run one command; queue its result.
        Returns (cmd_id or None, code, detail), or None for a repeated
        delivery. `report_unverified` False keeps results of commands that
        did not verify out of the outbox (for `/c`, open to the network);
        `gated` is what gate(msg) returned, when the caller has it."""
        cmd_id, code, detail, command, kid, role = gated or self.gate(msg)
        if code == _DUPLICATE:
            return None
        if code == messages.OK:
            self.ids.set(kid, cmd_id)
            code, detail, parsed = self.admit(command, role, self.clock.now())
            if code == messages.OK:
                code, detail = await self._dispatch(parsed)
        verified = code != _MALFORMED and code != messages.E_SIGNATURE
        if code == _MALFORMED:
            code = messages.E_SIGNATURE
        if cmd_id is not None and (verified or report_unverified):
            self.outbox.add_result(cmd_id, code, detail)
        return cmd_id, code, detail

    async def run_all(self, msgs):
        out = []
        for msg in msgs:
            r = await self.run(msg)
            if r is not None:
                out.append(r)
        return out


class CommandServer:
    """`POST /c` on an always-on node: body one command COSE_Sign1; answer
    2.04 {1: cmd_id, 2: result code} (CBOR), 4.00 when the body is not a
    command, 4.01 when it does not verify. Retransmitted requests get the
    first answer again from the deduplication cache."""

    def __init__(self, commands):
        self.commands = commands
        self.dedup = coap.Deduplicator(max_entries=32)

    async def handle(self, data, peer, now_ms):
        """The response datagram for one received datagram, or None."""
        try:
            req = coap.Message.decode(data)
        except coap.CoapDecodeError as e:
            if e.mtype == CON and e.mid is not None:
                return coap.reset_for(e).encode()
            return None
        if req.mtype == ACK or req.mtype == RST:
            return None
        if not req.is_request:
            return coap.reset_for(req).encode() if req.mtype == CON else None
        cached = self.dedup.check(peer, req.mid, now_ms)
        if cached is coap.PENDING:
            return None
        if cached is not None:
            return cached
        try:
            resp = await self._answer(req)
        except coap.ResponseError as e:
            resp = coap.response_for(req, e)
        except Exception:
            self.dedup.forget(peer, req.mid)
            raise
        out = resp.encode()
        self.dedup.remember(peer, req.mid, out, now_ms)
        return out

    async def _answer(self, req):
        req.check_critical((URI_PATH, CONTENT_FORMAT))
        if req.uri_path != ["c"]:
            raise coap.NotFound("no such resource")
        if req.code != POST:
            raise coap.MethodNotAllowed("POST only")
        cf = req.content_format
        if cf is not None and cf != CF_COSE_SIGN1:
            raise coap.UnsupportedContentFormat("send a COSE_Sign1 (18)")
        gated = self.commands.gate(req.payload)
        cmd_id, code, detail = gated[0], gated[1], gated[2]
        if code == _MALFORMED:
            raise coap.BadRequest("body is not a COSE_Sign1")
        if code == messages.E_SIGNATURE:
            raise coap.Unauthorized(detail)
        got = await self.commands.run(req.payload, False, gated)
        if got is None:  # the same command again: already decided
            got = (cmd_id, messages.E_REPLAY, None)
        if got[0] is None:
            raise coap.BadRequest(got[2] or "malformed command")
        body = cbor.dumps({1: got[0], 2: got[1]})
        return coap.ack_for(req, CHANGED, body, [(CONTENT_FORMAT, CF_CBOR)])
