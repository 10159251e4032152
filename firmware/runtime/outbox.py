# The flash-backed outbox: readings, events and command results wait here
# until the gateway has acknowledged the uplink that carried them.
#
# Files (in the Store's folder):
#   outbox.log     pending items, append-only: [length: 2 bytes BE][CBOR item]
#   inflight.cbor  [seq, COSE bytes, [item ids]]: the one uplink being sent
#
# Items (CBOR arrays; `when` is Unix seconds, or [boot, ms] when the clock
# was not set yet: `boot` is that boot's seq block start, so a later sync in
# the same boot can still date it from the monotonic milliseconds):
#   [id, 0, when, [[name, value], ...]]   a sample (one app.sample() call)
#   [id, 1, when, code, value or None]    an event
#   [id, 2, cmd_id, code, detail or None] a command result
#
# How nothing is lost and nothing is sent twice under two seqs:
#   1. add: append the item and sync. A cut mid-append leaves a torn last
#      record, which the reader detects (short length, bad CBOR) and the
#      next boot cuts off;
#   2. message(): pick items, build the uplink payload, take the next seq,
#      seal it, store [seq, bytes, ids] as `inflight` (atomically) and only
#      then rewrite the log without those ids. A cut between the two leaves
#      the ids in both: at boot, items whose id is in `inflight` are skipped;
#   3. the in-flight bytes are re-sent, unchanged, until the gateway acks
#      that seq; then `inflight` is removed.
# Item ids only ever grow while an in-flight message may name them (the
# next id is one above every id in the log and in `inflight`).
#
# Bounded: beyond `capacity` pending items the oldest plain samples are
# dropped (then boot / fw.progress events), never the latest sample of a
# register reading (vol, energy, rev), an alarm, another event or a result,
# and one pending `outbox.dropped` event counts what went. Alarms may take
# the outbox past its capacity: flash is the only limit for them.
#
# Uplinks stay below MAX_PAYLOAD bytes of payload (the gateway refuses COSE
# over 1024 bytes with 4.13). Alarms and results go first. A message holds
# either samples with known Unix times (SenML bt + relative t, key 2 the
# build time) or samples without (times relative to the send, or none at
# all: the gateway's receive time) - one SenML pack cannot hold both. A
# single fresh sample with nothing else pending goes in the compact form
# (key 5), which keeps one signed meter reading in one small datagram.

from micropython import const

from protocols import cbor, messages, senml

LOG = "outbox.log"
INFLIGHT = "inflight.cbor"

CAPACITY = const(128)
MAX_PAYLOAD = const(900)  # + COSE_Sign1 framing (94 bytes) < 1024
MAX_TEXT = const(64)  # event text values and result details are cut here
_FIXED = const(40)  # map, seq, t, array heads and bt
_FRESH_S = const(60)  # a sample this young may take the message time

_SAMPLE = const(0)
_EVENT = const(1)
_RESULT = const(2)

_ABS = const(0)  # Unix time known
_REL = const(1)  # this boot, clock still unset: seconds before now known
_UNKNOWN = const(2)  # an earlier boot, clock unset: no time at all

REGISTERS = ("vol", "energy", "rev")
# events that are only informational: dropped like readings when full
DROPPABLE = ("boot", "fw.progress")
# events that are not alarms: they wait for the next scheduled uplink
ROUTINE = ("boot", "fw.progress", "fw.ok", "fw.fail", "fw.rollback", "outbox.dropped")


def is_alarm(code):
    return code not in ROUTINE


def stored_inflight_seq(store):
    """The seq of the stored in-flight message, or -1: a floor for the seq
    counter should its own files be lost."""
    got = _inflight(store.read(INFLIGHT))
    return got[0] if got else -1


def _int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _inflight(v):
    if (
        isinstance(v, list)
        and len(v) == 3
        and _int(v[0])
        and isinstance(v[1], bytes)
        and isinstance(v[2], list)
    ):
        return v
    return None


def _item_ok(it):
    if not isinstance(it, list) or len(it) < 4 or not _int(it[0]) or it[0] < 0:
        return False
    kind = it[1]
    if kind == _SAMPLE:
        return len(it) == 4 and isinstance(it[3], list)
    if kind in (_EVENT, _RESULT):
        return len(it) == 5
    return False


def _cut(text):
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return text[:MAX_TEXT]
    return text


class _Reader:
    """Reads the log record by record; stops at the end or at a torn or
    corrupt record (`clean` is then False and `good` says how many bytes
    before it were whole)."""

    def __init__(self, store, head):
        self.good = 0
        self.clean = True
        self._head = head
        try:
            self._f = store.fs.open(store.path(LOG), "rb")
        except OSError:
            self._f = None

    def next(self):
        """(raw record including its length, item) or None at the end."""
        f = self._f
        if f is None:
            return None
        head = self._head
        n = f.readinto(head)
        if not n:
            return None
        size = (head[0] << 8) | head[1]
        if n != 2 or not size:
            self.clean = False
            return None
        body = f.read(size)
        if len(body) != size:
            self.clean = False
            return None
        try:
            item = cbor.loads(body)
        except ValueError:
            item = None
        if not _item_ok(item):
            self.clean = False
            return None
        self.good += 2 + size
        return bytes(head) + body, item

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None


def _frame(item):
    body = cbor.dumps(item)
    n = len(body)
    return bytes((n >> 8, n & 0xFF)) + body


class Outbox:
    """`seal(payload) -> COSE bytes`, `seq` a seq.SeqCounter, `clock` a
    clock.Clock, `time_ms` the board's monotonic milliseconds."""

    def __init__(self, store, seal, seq, clock, time_ms, capacity=CAPACITY):
        self.store = store
        self.seal = seal
        self.seq = seq
        self.clock = clock
        self.time_ms = time_ms
        self.boot = seq.boot_start
        self.capacity = capacity
        self._head = bytearray(2)
        self.count = 0  # pending items (not counting the in-flight message)
        self.alarms = 0  # pending alarm events
        self.inflight = _inflight(store.read(INFLIGHT))
        sent = self.inflight[2] if self.inflight else ()
        top = -1
        for i in sent:
            if _int(i) and i > top:
                top = i
        stale = False
        r = _Reader(store, self._head)
        try:
            while True:
                got = r.next()
                if got is None:
                    break
                it = got[1]
                if it[0] > top:
                    top = it[0]
                if it[0] in sent:
                    stale = True
                    continue
                self._counted(it, 1)
        finally:
            r.close()
        self._next_id = top + 1
        if stale or not r.clean:
            # a cut left consumed items or a torn tail: rewrite the log
            self._rewrite(sent)

    # ------------------------------------------------------------ adding

    def _counted(self, it, sign):
        self.count += sign
        if it[1] == _EVENT and is_alarm(it[3]):
            self.alarms += sign

    def _when(self):
        t = self.clock.now()
        if t is not None:
            return t
        return [self.boot, self.time_ms()]

    def _append(self, item):
        if self.count >= self.capacity:
            self._make_room()
        self.store.append_bytes(LOG, _frame(item))
        self._counted(item, 1)

    def _new_id(self):
        i = self._next_id
        self._next_id = i + 1
        return i

    def add_sample(self, readings):
        """Queue one sample: a list of (name, value) taken now."""
        pairs = []
        for r in readings:
            n, v = r
            senml.record(n, v)  # unknown names and wrong kinds fail here
            pairs.append([n, v])
        if not pairs:
            return
        self._append([self._new_id(), _SAMPLE, self._when(), pairs])

    def add_event(self, code, value=None):
        if code not in messages.EVENTS:
            raise ValueError(f"unknown event code {code!r}")
        value = _cut(value)
        messages.build_uplink(0, events=[(code, 0, value)])  # checks the value
        self._append([self._new_id(), _EVENT, self._when(), code, value])

    def add_result(self, cmd_id, code, detail=None):
        detail = _cut(detail)
        messages.build_uplink(0, results=[(cmd_id, code, detail)])
        self._append([self._new_id(), _RESULT, cmd_id, code, detail])

    def __len__(self):
        return self.count

    def busy(self):
        """True while anything waits: a message in flight or pending items."""
        return self.inflight is not None or self.count > 0

    # ------------------------------------------------------ log rewrites

    def _rewrite(self, skip, add=None):
        # Stream the log into outbox.log.new without the ids in `skip`
        # (plus `add`, a framed item), then rename it into place.
        store = self.store
        r = _Reader(store, self._head)
        out = store.begin(LOG)
        count = 0
        try:
            while True:
                got = r.next()
                if got is None:
                    break
                if got[1][0] in skip:
                    continue
                out.write(got[0])
                count += 1
            if add is not None:
                out.write(add)
                count += 1
        finally:
            r.close()
            out.close()
        store.commit(LOG)
        return count

    def _make_room(self):
        # Protected: alarms and other non-droppable events, results, and the
        # latest sample of each register reading.
        latest = {}
        dropped_event = None
        r = _Reader(self.store, self._head)
        try:
            while True:
                got = r.next()
                if got is None:
                    break
                it = got[1]
                if it[1] == _SAMPLE:
                    for p in it[3]:
                        if p[0] in REGISTERS:
                            latest[p[0]] = it[0]
                elif it[1] == _EVENT and it[3] == "outbox.dropped":
                    dropped_event = it
        finally:
            r.close()
        keep = set(latest.values())
        want = self.count - (self.capacity - self.capacity // 8)
        if want < 1:
            want = 1
        drop = set()
        dropped = 0
        # pass 1 drops samples, pass 2 informational events
        for wanted_kind in (_SAMPLE, _EVENT):
            if len(drop) >= want:
                break
            r = _Reader(self.store, self._head)
            try:
                while len(drop) < want:
                    got = r.next()
                    if got is None:
                        break
                    it = got[1]
                    if it[1] != wanted_kind or it[0] in keep:
                        continue
                    if wanted_kind == _SAMPLE:
                        dropped += len(it[3])
                    elif it[3] in DROPPABLE:
                        dropped += 1
                    else:
                        continue
                    drop.add(it[0])
            finally:
                r.close()
        if not drop:
            return  # only alarms, results and latest registers: keep them all
        if dropped_event is not None:
            dropped += dropped_event[4] if _int(dropped_event[4]) else 0
            drop.add(dropped_event[0])
        event = [self._new_id(), _EVENT, self._when(), "outbox.dropped", dropped]
        self._rewrite(drop, _frame(event))
        self._recount()

    def _recount(self):
        self.count = 0
        self.alarms = 0
        r = _Reader(self.store, self._head)
        try:
            while True:
                got = r.next()
                if got is None:
                    break
                self._counted(got[1], 1)
        finally:
            r.close()

    # ---------------------------------------------------------- sending

    def _resolve(self, when, now, now_ms):
        # -> (time class, Unix seconds or seconds relative to now, or None)
        if _int(when):
            return _ABS, when
        if isinstance(when, list) and len(when) == 2 and when[0] == self.boot:
            age = (now_ms - when[1]) // 1000
            if age < 0:
                age = 0
            if now is not None:
                return _ABS, now - age
            return _REL, -age
        return _UNKNOWN, None

    def _pick(self, now, now_ms):
        # -> (events, results, samples [(class, t, pairs)], picked [(id,
        # kind, alarm)] in the order taken)
        events = []
        results = []
        samples = []
        picked = []
        room = MAX_PAYLOAD - _FIXED
        group = None
        # pass 0: alarms and results first; pass 1: the rest, in order
        for pass_ in (0, 1):
            r = _Reader(self.store, self._head)
            try:
                while room > 0:
                    got = r.next()
                    if got is None:
                        break
                    it = got[1]
                    kind = it[1]
                    urgent = kind == _RESULT or (kind == _EVENT and is_alarm(it[3]))
                    if urgent != (pass_ == 0):
                        continue
                    if kind == _RESULT:
                        entry = (it[2], it[3], it[4])
                        size = len(cbor.dumps(entry))
                        if size > room:
                            room = 0
                            break
                        results.append(entry)
                    elif kind == _EVENT:
                        cls, t = self._resolve(it[2], now, now_ms)
                        entry = (it[3], t if cls == _ABS else 0, it[4])
                        size = len(cbor.dumps(entry))
                        if size > room:
                            room = 0
                            break
                        events.append(entry)
                    else:
                        cls, t = self._resolve(it[2], now, now_ms)
                        g = cls == _ABS
                        if group is None:
                            group = g
                        elif g != group:
                            continue  # the other kind of time: next message
                        size = 0
                        for p in it[3]:
                            size += len(cbor.dumps(senml.record(p[0], p[1], 0)))
                        if size > room:
                            room = 0
                            break
                        samples.append((cls, t, it[3]))
                    room -= size
                    picked.append((it[0], kind, urgent and kind == _EVENT))
            finally:
                r.close()
        return events, results, samples, picked

    def _payload(self, seq, now, events, results, samples):
        if len(samples) == 1 and not events and not results and self.count == 1:
            cls, t, pairs = samples[0]
            if cls == _ABS:
                fresh = now is not None and abs(now - t) <= _FRESH_S
            elif cls == _REL:
                fresh = -t <= _FRESH_S
            else:
                fresh = True  # no time either way: the gateway's receive time
            compact = _compact(pairs) if fresh else None
            if compact is not None:
                return messages.build_uplink(seq, t if cls == _ABS else None, compact=compact)
        records = []
        bt = None
        timed = True
        for cls, t, pairs in samples:
            if cls == _ABS and bt is None:
                bt = t
            if cls != _ABS:
                timed = False
            for p in pairs:
                if cls == _ABS:
                    rel = t - bt
                elif cls == _REL:
                    rel = t
                else:
                    rel = 0
                records.append(senml.record(p[0], p[1], rel or None))
        if records:
            records = senml.pack(records, bt=bt)
        # key 2 would date records without their own time: leave it out when
        # some have none (the gateway's receive time is then the honest one)
        return messages.build_uplink(
            seq, now if timed else None, records=records, events=events, results=results
        )

    def message(self):
        """(seq, COSE bytes) to send: the in-flight message, else a new one
        built from pending items; None when there is nothing to send."""
        if self.inflight is not None:
            return self.inflight[0], self.inflight[1]
        if not self.count:
            return None
        now = self.clock.now()
        now_ms = self.time_ms()
        events, results, samples, picked = self._pick(now, now_ms)
        if not picked:
            return None
        seq = self.seq.next()
        payload = self._payload(seq, now, events, results, samples)
        while len(payload) > MAX_PAYLOAD and len(picked) > 1:
            # the size estimate was short (long floats, many records): give
            # the last item taken back to the next message
            kind = picked.pop()[1]
            if kind == _SAMPLE:
                samples.pop()
            elif kind == _EVENT:
                events.pop()
            else:
                results.pop()
            payload = self._payload(seq, now, events, results, samples)
        msg = self.seal(payload)
        ids = [p[0] for p in picked]
        self.store.write(INFLIGHT, [seq, msg, ids])
        self.inflight = [seq, msg, ids]
        self._rewrite(ids)
        self.count -= len(picked)
        for p in picked:
            if p[2]:
                self.alarms -= 1
        return seq, msg

    def acked(self, seq):
        """The gateway acknowledged `seq`: forget the in-flight message if it
        is that one. Returns True when it was."""
        if self.inflight is None or self.inflight[0] != seq:
            return False
        self.store.remove(INFLIGHT)
        self.inflight = None
        return True

    def discard(self):
        """Drop the in-flight message (the gateway refused it for good)."""
        if self.inflight is not None:
            self.store.remove(INFLIGHT)
            self.inflight = None


def _compact(pairs):
    # the smallest compact profile naming every reading of the sample
    names = [p[0] for p in pairs]
    best = None
    for number in senml.PROFILES:
        prof = senml.PROFILES[number]
        ok = True
        for n in names:
            if n not in prof:
                ok = False
                break
        if ok and (best is None or len(prof) < len(senml.PROFILES[best])):
            best = number
    if best is None:
        return None
    values = []
    for n in senml.PROFILES[best]:
        v = None
        for p in pairs:
            if p[0] == n:
                v = p[1]
        values.append(v)
    return senml.compact(best, values)
