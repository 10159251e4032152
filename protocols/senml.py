# SenML-CBOR (RFC 8428) for Kapok readings, and the one table of Kapok
# reading names and units (DESIGN "Reading names").
#
# Records are maps with RFC 8428 §6 integer labels. Builders here do NOT write
# the unit (`u`): Kapok's table fixes the unit of every name, NB-IoT and LoRa
# links pay per byte, and `resolve` fills the unit in. A record that does carry
# `u` (or a pack with `bu`) must agree with the table.
#
# The compact form (uplink key 5, see messages.py) names a fixed list of
# readings by a small profile number and carries the values positionally:
# `[profile, v1, v2, ...]`, null for "not measured this time". `expand` turns
# it into the same resolved records as full SenML, so consumers never see it.
#
# Pure code: no I/O, no clock. Errors are ValueError with a clear message.

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


import math

# RFC 8428 §6 labels (CBOR representation)
_BVER = const(-1)
_BN = const(-2)
_BT = const(-3)
_BU = const(-4)
_BV = const(-5)
_BS = const(-6)
_N = const(0)
_U = const(1)
_V = const(2)
_VS = const(3)
_VB = const(4)
_S = const(5)
_T = const(6)
_UT = const(7)
_VD = const(8)

# Version 10 is RFC 8428's; a pack announcing a newer one must not be used.
_VERSION = const(10)
# RFC 8428 §4.5.3: times below 2**28 are relative to "now" (here: when the
# message was built, i.e. the message time), not Unix times.
_REL_LIMIT = const(268435456)

# name: (unit or None, value kind, meaning). Kinds: "v" number, "vb" bool,
# "vs" text. Units come from the SenML registry (incl. RFC 8798); NTU and
# mg/l are not registered and are documented by Kapok.
READINGS = {
    "vol": ("m3", "v", "cumulative volume (register reading)"),
    "flow": ("m3/s", "v", "instantaneous flow"),
    "rev": ("m3", "v", "cumulative reverse volume"),
    "energy": ("kWh", "v", "cumulative forward active energy"),
    "valve": (None, "vb", "valve open"),
    "ph": ("pH", "v", "acidity"),
    "turb": ("NTU", "v", "turbidity"),
    "cl": ("mg/l", "v", "free chlorine"),
    "cond": ("S/m", "v", "conductivity"),
    "temp": ("Cel", "v", "temperature"),
    "hum": ("%RH", "v", "relative humidity"),
    "bat": ("V", "v", "battery voltage"),
    "rssi": ("dBW", "v", "radio signal strength"),
    "fw": (None, "vs", "firmware version"),
    # addition: the gas meter's methane sensor, in percent of the lower
    # explosive limit (not in the SenML registry; documented by Kapok)
    "ch4": ("%LEL", "v", "methane concentration"),
}

# Compact-form profiles: number -> reading names, in value order. Numbers are
# wire values: never renumber or reorder, only append new profiles.
PROFILES = {
    1: ("vol", "bat", "rssi"),  # gas or water meter
    2: ("energy", "rssi"),  # electricity meter (mains powered)
    3: ("vol", "valve", "bat", "rssi"),  # gas or water meter with valve
    4: ("vol", "rev", "flow", "bat", "rssi"),  # water meter, reverse flow
    5: ("ph", "turb", "cl", "cond", "temp", "bat", "rssi"),  # water quality
    6: ("temp", "hum", "bat", "rssi"),  # hub
}

_KIND_LABEL = {"v": _V, "vs": _VS, "vb": _VB}
_KIND_TEXT = {"v": "a finite number (v)", "vs": "text (vs)", "vb": "a boolean (vb)"}


def _is_int(x):
    # bool is an int subclass on CPython but not on MicroPython: rule it out
    # explicitly so both interpreters agree.
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x):
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return True
    return isinstance(x, float) and not (math.isnan(x) or math.isinf(x))


def unit(n):
    """The unit Kapok fixes for reading `n` (None for vb/vs readings)."""
    return _spec(n)[0]


def kind(n):
    """The value kind of reading `n`: "v", "vb" or "vs"."""
    return _spec(n)[1]


def _spec(n):
    if not isinstance(n, str):
        raise ValueError("reading name must be text")
    s = READINGS.get(n)
    if s is None:
        raise ValueError("unknown reading name %r" % (n,))
    return s


def _check_value(n, k, value):
    if k == "v":
        ok = _is_number(value)
    elif k == "vb":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError("reading %r needs %s, not %r" % (n, _KIND_TEXT[k], value))


def record(n, value, t=None, with_unit=False):
    """One SenML-CBOR record {0: n, 2|3|4: value, ? 6: t}, checked against
    the table. The unit is written only with `with_unit=True`."""
    u, k, _ = _spec(n)
    _check_value(n, k, value)
    r = {_N: n, _KIND_LABEL[k]: value}
    if with_unit and u is not None:
        r[_U] = u
    if t is not None:
        if not _is_number(t):
            raise ValueError("record time must be a finite number")
        r[_T] = t
    return r


def pack(records, device_id=None, bt=None):
    """A copy of `records` with base name `<device id>/` and base time `bt`
    put in the first record (SenML base fields apply to all later records)."""
    out = [dict(r) for r in records]
    if not out:
        raise ValueError("a pack needs at least one record")
    if device_id is not None:
        if not isinstance(device_id, str) or not _valid_id(device_id):
            raise ValueError("bad device id %r" % (device_id,))
        out[0][_BN] = device_id + "/"
    if bt is not None:
        if not _is_number(bt):
            raise ValueError("base time must be a finite number")
        out[0][_BT] = bt
    return out


def profile_of(names):
    """The compact profile number whose names are exactly `names`, or None."""
    names = tuple(names)
    for p in PROFILES:
        if PROFILES[p] == names:
            return p
    return None


def compact(profile, values):
    """The compact form [profile, v1, ...]; None means "not measured"."""
    names = _profile(profile)
    values = list(values)
    if len(values) != len(names):
        raise ValueError("profile %d takes %d values, got %d" % (profile, len(names), len(values)))
    for i in range(len(names)):
        if values[i] is not None:
            _check_value(names[i], READINGS[names[i]][1], values[i])
    return [profile] + values


def _profile(profile):
    if not _is_int(profile):
        raise ValueError("compact profile must be an integer")
    names = PROFILES.get(profile)
    if names is None:
        raise ValueError("unknown compact profile %d" % profile)
    return names


def _timed(out, message_time, offset, absolute):
    # The three time sources of DESIGN: the record's own time, the message
    # time, or (None) the gateway's receive time plus `dt` seconds.
    if absolute:
        out["t"] = offset
        out["time_source"] = "record"
    elif message_time is not None:
        out["t"] = message_time + offset
        out["time_source"] = "message"
    else:
        out["t"] = None
        out["time_source"] = None
        out["dt"] = offset
    return out


def expand(c, message_time=None):
    """Resolved records (see `resolve`) from a compact form; every value
    takes the message time (or the receive time when there is none)."""
    if not isinstance(c, (list, tuple)) or not c:
        raise ValueError("compact readings must be a non-empty array")
    names = _profile(c[0])
    if len(c) - 1 != len(names):
        raise ValueError("profile %d takes %d values, got %d" % (c[0], len(names), len(c) - 1))
    _check_time(message_time)
    out = []
    for i in range(len(names)):
        v = c[i + 1]
        if v is None:
            continue
        n = names[i]
        u, k, _ = READINGS[n]
        _check_value(n, k, v)
        out.append(_timed({"n": n, "u": u, k: v}, message_time, 0, False))
    return out


def _check_time(message_time):
    if message_time is not None and not _is_int(message_time):
        raise ValueError("message time must be an integer")


def resolve(records, device_id=None, message_time=None):
    """Resolve a SenML-CBOR pack into Kapok readings.

    Returns a list of dicts {"n", "u", one of "v"/"vb"/"vs", "t",
    "time_source"} where `n` has the base name stripped, `u` is the table's
    unit, and `time_source` is "record" (absolute bt + t), "message"
    (message time, plus a relative record time if any) or None (the gateway
    uses its receive time plus the extra key "dt", in seconds).

    `bn` must be "<device id>/" (checked against `device_id` when given).
    `bu` applies to numeric records without `u`; `bv` is added to `v`.
    Unknown labels are ignored (RFC 8428 §4.4) unless they end in "_".
    """
    if not isinstance(records, (list, tuple)):
        raise ValueError("SenML pack must be an array")
    _check_time(message_time)
    prefix = None
    if device_id is not None:
        if not isinstance(device_id, str) or not _valid_id(device_id):
            raise ValueError("bad device id %r" % (device_id,))
        prefix = device_id + "/"
    bt = 0
    bu = None
    bv = 0
    out = []
    for r in records:
        if not isinstance(r, dict):
            raise ValueError("SenML record must be a map")
        n = None
        u = None
        t = None
        val = None
        vk = None
        for label in r:
            x = r[label]
            if not _is_int(label):
                if isinstance(label, str) and label.endswith("_"):
                    raise ValueError("must-understand label %r not supported" % (label,))
                if isinstance(label, str):
                    continue
                raise ValueError("SenML label must be an integer or text")
            if label == _BVER:
                if not _is_int(x) or x > _VERSION or x < 1:
                    raise ValueError("unsupported SenML version %r" % (x,))
            elif label == _BN:
                if not isinstance(x, str):
                    raise ValueError("bn must be text")
                _check_bn(x, prefix)
            elif label == _BT:
                if not _is_number(x):
                    raise ValueError("bt must be a finite number")
                bt = x
            elif label == _BU:
                if not isinstance(x, str):
                    raise ValueError("bu must be text")
                bu = x
            elif label == _BV:
                if not _is_number(x):
                    raise ValueError("bv must be a finite number")
                bv = x
            elif label == _N:
                if not isinstance(x, str):
                    raise ValueError("n must be text")
                n = x
            elif label == _U:
                if not isinstance(x, str):
                    raise ValueError("u must be text")
                u = x
            elif label == _T:
                if not _is_number(x):
                    raise ValueError("t must be a finite number")
                t = x
            elif label == _V or label == _VS or label == _VB:
                if vk is not None:
                    raise ValueError("record has more than one value")
                vk = label
                val = x
            elif label == _S or label == _VD or label == _BS:
                raise ValueError("sum and data values are not used by Kapok")
            # other integer labels (e.g. ut 7) are ignored, as RFC 8428 says
        # bn was checked to be "<device id>/", which Kapok stores without,
        # so the stored name is n itself.
        name = n
        if not name:
            raise ValueError("record has no name")
        ru, rk, _ = _spec(name)
        if vk is None:
            raise ValueError("record %r has no value" % (name,))
        if vk != _KIND_LABEL[rk]:
            raise ValueError("reading %r needs %s" % (name, _KIND_TEXT[rk]))
        _check_value(name, rk, val)
        if rk == "v":
            val = val + bv
            if u is None:
                u = bu
        if u is not None and u != ru:
            raise ValueError("reading %r must be in %r, not %r" % (name, ru, u))
        rec = {"n": name, "u": ru, rk: val}
        when = bt + (t or 0)
        if t is None and bt == 0:
            _timed(rec, message_time, 0, False)
        else:
            _timed(rec, message_time, when, when >= _REL_LIMIT)
        out.append(rec)
    return out


def _check_bn(x, prefix):
    if prefix is not None:
        if x != prefix:
            raise ValueError("bn %r is not %r" % (x, prefix))
        return
    if not x.endswith("/") or not _valid_id(x[:-1]):
        raise ValueError("bn %r is not '<device id>/'" % (x,))


def _valid_id(s):
    # Same rule as messages.valid_device_id (kept here so senml stands alone).
    if not 1 <= len(s) <= 16:
        return False
    for c in s:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "-"):
            return False
    return True
