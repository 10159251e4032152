# Kapok message payloads: the ONE place each CBOR map key of DESIGN is
# written down, shared by node, gateway and cloud. Builders return
# deterministic CBOR (RFC 8949 §4.2.1); parsers validate strictly and raise
# ValueError with a clear message, never anything else.
#
# Additions to DESIGN made here (for the wire-format documentation):
# - uplink key 5 "compact": [profile, v1, v2, ...], readings named by a
#   profile of senml.PROFILES, all taking the message time; parse_uplink
#   expands it into the same resolved readings as key 3, so it keeps one
#   signed meter reading inside one 128-byte (Sign1) / 80-byte (Mac0) CoAP
#   datagram;
# - firmware-update events fw.progress, fw.ok, fw.fail, fw.rollback;
# - command result codes (OK and the refusal codes below).

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


from . import cbor, senml

# Uplink payload (node -> gateway, inside COSE)
_U_SEQ = const(1)
_U_T = const(2)
_U_READINGS = const(3)
_U_EVENTS = const(4)
_U_COMPACT = const(5)
_U_RESULTS = const(6)

# Reply to an uplink (gateway -> node, CoAP 2.04 body)
_R_ACK = const(1)
_R_TIME = const(2)
_R_COMMANDS = const(3)

# Command payload (inside the authority's COSE_Sign1)
_C_ID = const(1)
_C_DEVICE = const(2)
_C_OP = const(3)
_C_ARGS = const(4)
_C_NOT_AFTER = const(5)

# Firmware manifest (inside the firmware key's COSE_Sign1)
_M_VERSION = const(1)
_M_BOARD = const(2)
_M_APP = const(3)
_M_SIZE = const(4)
_M_SHA256 = const(5)

# Gateway -> cloud ingest batch, and its reply
_B_ID = const(1)
_B_ITEMS = const(2)
_BR_ACCEPTED = const(1)
_BR_DUPLICATES = const(2)
_BR_REJECTS = const(3)

# 2**64 is a big int on MicroPython: computed once, not a const()
_U64 = 1 << 64

EVENTS = (
    "gas.leak",
    "water.leak",
    "smoke",
    "door.open",
    "sos",
    "tamper",
    "flow.continuous",
    "flow.reverse",
    "quality.ph",
    "quality.turb",
    "quality.cl",
    "battery.low",
    "valve.fault",
    "boot",
    # additions: firmware update progress and outcome (DESIGN "OTA")
    "fw.progress",  # value: percent of the bundle received, 0..100
    "fw.ok",  # value: the version now running, after its self-test
    "fw.fail",  # value: why the update was abandoned (text)
    "fw.rollback",  # value: the version rolled back to
    # addition: the node's outbox overflowed while the gateway was away
    "outbox.dropped",  # value: how many buffered readings were dropped
)

OPS = (
    "valve.close",
    "valve.open",
    "siren.on",
    "siren.off",
    "interval.set",
    "thresholds.set",
    "reboot",
    "fw.update",
    "arm",
    "disarm",
)
# The only ops a gateway key may sign: they make a site safer, never less.
FAILSAFE_OPS = ("valve.close", "siren.on")

# Command result codes (uplink key 6). 0 is success; the rest say why a
# node refused or failed a command. Wire values: never renumber.
OK = const(0)
E_SIGNATURE = const(1)  # the command's COSE_Sign1 did not verify
E_DEVICE = const(2)  # addressed to another device
E_REPLAY = const(3)  # cmd_id not above the last one run
E_EXPIRED = const(4)  # not_after has passed
E_UNKNOWN_OP = const(5)  # op not known to this firmware
E_AUTHORITY = const(6)  # op not allowed for the key that signed it
E_ARGS = const(7)  # args missing or out of range
E_FAILED = const(8)  # accepted, but failed while running (detail says why)
E_UNSUPPORTED = const(9)  # known op, but this device lacks the hardware
RESULTS = {
    OK: "ok",
    E_SIGNATURE: "bad-signature",
    E_DEVICE: "wrong-device",
    E_REPLAY: "replayed",
    E_EXPIRED: "expired",
    E_UNKNOWN_OP: "unknown-op",
    E_AUTHORITY: "not-allowed",
    E_ARGS: "bad-args",
    E_FAILED: "failed",
    E_UNSUPPORTED: "unsupported",
}


def _is_int(x):
    # bool is not an int on MicroPython but is on CPython: exclude it on both
    return isinstance(x, int) and not isinstance(x, bool)


def _uint(x, what):
    if not _is_int(x) or x < 0 or x >= _U64:
        raise ValueError("%s must be an unsigned integer below 2**64" % what)
    return x


def _text(x, what):
    if not isinstance(x, str):
        raise ValueError(what + " must be text")
    return x


def _bstr(x, what):
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise ValueError(what + " must be bytes")


def _array(x, what):
    if not isinstance(x, (list, tuple)):
        raise ValueError(what + " must be an array")
    return x


def _map(payload, what, keys, required):
    # decode (if bytes) and check the key set: integer keys from `keys` only,
    # every key of `required` present
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            m = cbor.loads(bytes(payload))
        except ValueError as e:
            raise ValueError("%s: %s" % (what, e))
        except (IndexError, KeyError, TypeError, RuntimeError):
            raise ValueError(what + ": malformed CBOR")
    else:
        raise ValueError(what + " must be bytes")
    if not isinstance(m, dict):
        raise ValueError(what + " must be a CBOR map")
    for k in m:
        if not _is_int(k) or k not in keys:
            raise ValueError("%s: unknown key %r" % (what, k))
    for k in required:
        if k not in m:
            raise ValueError("%s: missing key %d" % (what, k))
    return m


def valid_device_id(s):
    """True when `s` is a Kapok device id: 1-16 chars of [a-z0-9-]."""
    return isinstance(s, str) and senml._valid_id(s)


def check_device_id(s):
    """Return `s` if it is a valid device id, else raise ValueError."""
    if not valid_device_id(s):
        raise ValueError("bad device id %r (1-16 chars of a-z, 0-9, -)" % (s,))
    return s


# ---------------------------------------------------------------- uplink


def _event(e):
    e = _array(e, "event")
    if not 2 <= len(e) <= 3:
        raise ValueError("event must be [code, t, ? value]")
    code = _text(e[0], "event code")
    if code not in EVENTS:
        raise ValueError("unknown event code %r" % (code,))
    if not _is_int(e[1]):
        raise ValueError("event time must be an integer")
    value = e[2] if len(e) == 3 else None
    if len(e) == 3:
        v = e[2]
        if v is None or not (isinstance(v, (str, bool, int)) or senml._is_number(v)):
            raise ValueError("event value must be a number, boolean or text")
    return (code, e[1], value)


def _result(r):
    r = _array(r, "result")
    if not 2 <= len(r) <= 3:
        raise ValueError("result must be [cmd_id, code, ? detail]")
    cmd_id = _uint(r[0], "result cmd_id")
    code = r[1]
    if not _is_int(code) or code not in RESULTS:
        raise ValueError("unknown result code %r" % (code,))
    detail = _text(r[2], "result detail") if len(r) == 3 else None
    return (cmd_id, code, detail)


def _strip_none(x, what):
    # builders take (a, b, None) for "no third item"; the wire omits it
    x = _array(x, what)
    if len(x) == 3 and x[2] is None:
        return x[:2]
    return x


def build_uplink(seq, t=None, records=None, compact=None, events=None, results=None):
    """The uplink payload map. `records`: SenML records (senml.record /
    senml.pack); `compact`: senml.compact(...) list; `events`: (code, t,
    value or None) tuples; `results`: (cmd_id, code, detail or None)."""
    m = {_U_SEQ: _uint(seq, "seq")}
    if t is not None:
        m[_U_T] = _uint(t, "t")
    if records:
        m[_U_READINGS] = list(records)
        senml.resolve(m[_U_READINGS])
    if compact is not None:
        m[_U_COMPACT] = list(compact)
        senml.expand(m[_U_COMPACT])
    if events:
        out = []
        for e in events:
            code, et, value = _event(_strip_none(e, "event"))
            out.append([code, et] if value is None else [code, et, value])
        m[_U_EVENTS] = out
    if results:
        out = []
        for r in results:
            cmd_id, code, detail = _result(_strip_none(r, "result"))
            out.append([cmd_id, code] if detail is None else [cmd_id, code, detail])
        m[_U_RESULTS] = out
    return cbor.dumps(m)


def parse_uplink(payload, device_id=None):
    """Parse an uplink payload into {"seq", "t" (or None), "readings"
    (senml.resolve dicts: key 3 then the expanded key 5), "events" [(code, t,
    value|None)], "results" [(cmd_id, code, detail|None)]}."""
    if device_id is not None:
        check_device_id(device_id)
    m = _map(
        payload,
        "uplink",
        (_U_SEQ, _U_T, _U_READINGS, _U_EVENTS, _U_COMPACT, _U_RESULTS),
        (_U_SEQ,),
    )
    seq = _uint(m[_U_SEQ], "seq")
    t = m.get(_U_T)
    if t is not None or _U_T in m:
        _uint(t, "t")
    readings = []
    if _U_READINGS in m:
        readings = senml.resolve(_array(m[_U_READINGS], "readings"), device_id, t)
    if _U_COMPACT in m:
        readings = readings + senml.expand(m[_U_COMPACT], t)
    events = [_event(e) for e in _array(m.get(_U_EVENTS, []), "events")]
    results = [_result(r) for r in _array(m.get(_U_RESULTS, []), "results")]
    return {"seq": seq, "t": t, "readings": readings, "events": events, "results": results}


# ----------------------------------------------------------------- reply


def build_reply(acked_seq, gateway_time, commands=()):
    """The 2.04 body: {1: acked seq, 2: gateway time, ? 3: [command COSE]}."""
    m = {_R_ACK: _uint(acked_seq, "acked seq"), _R_TIME: _uint(gateway_time, "gateway time")}
    cmds = [_bstr(c, "command") for c in commands]
    if cmds:
        m[_R_COMMANDS] = cmds
    return cbor.dumps(m)


def parse_reply(payload):
    """{"acked_seq", "gateway_time", "commands": [COSE bytes]}."""
    m = _map(payload, "reply", (_R_ACK, _R_TIME, _R_COMMANDS), (_R_ACK, _R_TIME))
    cmds = _array(m.get(_R_COMMANDS, []), "commands")
    for c in cmds:
        if not isinstance(c, bytes):
            raise ValueError("command must be a byte string")
    return {
        "acked_seq": _uint(m[_R_ACK], "acked seq"),
        "gateway_time": _uint(m[_R_TIME], "gateway time"),
        "commands": list(cmds),
    }


# --------------------------------------------------------------- command

# ops whose args map must be empty
_NO_ARGS = ("valve.close", "valve.open", "siren.on", "siren.off", "reboot", "arm", "disarm")


def _check_args(op, args):
    if not isinstance(args, dict):
        raise ValueError("command args must be a map")
    for k in args:
        if not isinstance(k, str):
            raise ValueError("command args keys must be text")
    if op in _NO_ARGS:
        if args:
            raise ValueError("%s takes no args" % op)
    elif op == "interval.set":
        if list(args) != ["s"]:
            raise ValueError('interval.set takes {"s": seconds}')
        s = args["s"]
        if not _is_int(s) or s < 1 or s >= 0x100000000:
            raise ValueError("interval.set seconds must be an integer from 1 to 2**32-1")
    elif op == "fw.update":
        if list(args) != ["m"]:
            raise ValueError('fw.update takes {"m": manifest bytes}')
        if not isinstance(args["m"], bytes) or not args["m"]:
            raise ValueError("fw.update manifest must be non-empty bytes")
    elif op == "thresholds.set":
        # {reading name: number, or [low, high] with null for "no bound"}
        if not args:
            raise ValueError("thresholds.set needs at least one threshold")
        for k in args:
            v = args[k]
            if isinstance(v, (list, tuple)):
                if len(v) != 2:
                    raise ValueError("threshold %r must be [low, high]" % (k,))
                for b in v:
                    if b is not None and not senml._is_number(b):
                        raise ValueError("threshold %r bound must be a number" % (k,))
            elif not senml._is_number(v):
                raise ValueError("threshold %r must be a number" % (k,))
    else:
        raise ValueError("unknown op %r" % (op,))


def build_command(cmd_id, device_id, op, args, not_after):
    """The command payload {1: cmd_id, 2: device id, 3: op, 4: args, 5:
    not_after}; sign it with cose.sign1 using an authority key."""
    if args is None:
        args = {}
    _text(op, "op")
    _check_args(op, args)
    m = {
        _C_ID: _uint(cmd_id, "cmd_id"),
        _C_DEVICE: check_device_id(device_id),
        _C_OP: op,
        _C_ARGS: args,
        _C_NOT_AFTER: _uint(not_after, "not_after"),
    }
    return cbor.dumps(m)


def parse_command(payload):
    """{"cmd_id", "device_id", "op", "args", "not_after"}; ValueError on an
    unknown op or bad args. (The signature is cose.verify1's job.)"""
    keys = (_C_ID, _C_DEVICE, _C_OP, _C_ARGS, _C_NOT_AFTER)
    m = _map(payload, "command", keys, keys)
    op = _text(m[_C_OP], "op")
    _check_args(op, m[_C_ARGS])
    return {
        "cmd_id": _uint(m[_C_ID], "cmd_id"),
        "device_id": check_device_id(m[_C_DEVICE]),
        "op": op,
        "args": m[_C_ARGS],
        "not_after": _uint(m[_C_NOT_AFTER], "not_after"),
    }


# -------------------------------------------------------------- manifest


def _name(x, what):
    # board and app names: 1-32 chars of [a-z0-9_-]; version: 1-32 printable
    _text(x, what)
    if not 1 <= len(x) <= 32:
        raise ValueError(what + " must be 1-32 characters")
    for c in x:
        if what == "version":
            ok = "!" <= c <= "~"
        else:
            ok = "a" <= c <= "z" or "0" <= c <= "9" or c == "_" or c == "-"
        if not ok:
            raise ValueError("bad character %r in %s" % (c, what))
    return x


def build_manifest(version, board, app, size, sha256):
    """Firmware manifest {1: version, 2: board, 3: app, 4: size, 5: sha256};
    sign it with cose.sign1 using the firmware key."""
    sha256 = _bstr(sha256, "sha256")
    if len(sha256) != 32:
        raise ValueError("sha256 must be 32 bytes")
    m = {
        _M_VERSION: _name(version, "version"),
        _M_BOARD: _name(board, "board"),
        _M_APP: _name(app, "app"),
        _M_SIZE: _uint(size, "size"),
        _M_SHA256: sha256,
    }
    return cbor.dumps(m)


def parse_manifest(payload):
    """{"version", "board", "app", "size", "sha256"}."""
    keys = (_M_VERSION, _M_BOARD, _M_APP, _M_SIZE, _M_SHA256)
    m = _map(payload, "manifest", keys, keys)
    sha = m[_M_SHA256]
    if not isinstance(sha, bytes) or len(sha) != 32:
        raise ValueError("sha256 must be 32 bytes")
    return {
        "version": _name(m[_M_VERSION], "version"),
        "board": _name(m[_M_BOARD], "board"),
        "app": _name(m[_M_APP], "app"),
        "size": _uint(m[_M_SIZE], "size"),
        "sha256": sha,
    }


# ---------------------------------------------------------- ingest batch


def build_batch(batch_id16, items):
    """Ingest body {1: batch id (16 bytes), 2: [[rx time, COSE bytes]...]}."""
    bid = _bstr(batch_id16, "batch id")
    if len(bid) != 16:
        raise ValueError("batch id must be 16 bytes")
    out = []
    for it in items:
        it = _array(it, "batch item")
        if len(it) != 2:
            raise ValueError("batch item must be (rx time, COSE bytes)")
        out.append([_uint(it[0], "rx time"), _bstr(it[1], "COSE bytes")])
    return cbor.dumps({_B_ID: bid, _B_ITEMS: out})


def parse_batch(payload):
    """{"batch_id": 16 bytes, "items": [(rx time, COSE bytes)]}."""
    m = _map(payload, "batch", (_B_ID, _B_ITEMS), (_B_ID, _B_ITEMS))
    bid = m[_B_ID]
    if not isinstance(bid, bytes) or len(bid) != 16:
        raise ValueError("batch id must be 16 bytes")
    items = []
    for it in _array(m[_B_ITEMS], "batch items"):
        it = _array(it, "batch item")
        if len(it) != 2 or not isinstance(it[1], bytes):
            raise ValueError("batch item must be [rx time, COSE bytes]")
        items.append((_uint(it[0], "rx time"), it[1]))
    return {"batch_id": bid, "items": items}


def build_batch_reply(accepted, duplicates, rejects=()):
    """Ingest reply {1: accepted, 2: duplicates, 3: [[index, reason]...]}
    (key 3 always written, empty when nothing was rejected)."""
    out = []
    for r in rejects:
        r = _array(r, "reject")
        if len(r) != 2:
            raise ValueError("reject must be (index, reason)")
        out.append([_uint(r[0], "reject index"), _text(r[1], "reject reason")])
    m = {
        _BR_ACCEPTED: _uint(accepted, "accepted"),
        _BR_DUPLICATES: _uint(duplicates, "duplicates"),
        _BR_REJECTS: out,
    }
    return cbor.dumps(m)


def parse_batch_reply(payload):
    """{"accepted", "duplicates", "rejects": [(index, reason)]}."""
    keys = (_BR_ACCEPTED, _BR_DUPLICATES, _BR_REJECTS)
    m = _map(payload, "batch reply", keys, (_BR_ACCEPTED, _BR_DUPLICATES))
    rejects = []
    for r in _array(m.get(_BR_REJECTS, []), "rejects"):
        r = _array(r, "reject")
        if len(r) != 2:
            raise ValueError("reject must be [index, reason]")
        rejects.append((_uint(r[0], "reject index"), _text(r[1], "reject reason")))
    return {
        "accepted": _uint(m[_BR_ACCEPTED], "accepted"),
        "duplicates": _uint(m[_BR_DUPLICATES], "duplicates"),
        "rejects": rejects,
    }
