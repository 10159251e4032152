# A/B application slots for over-the-air updates, as files:
#
#   /lib/...            the factory image (always there, never written by OTA)
#   /slots/a/lib/...    slot a: the files of one release bundle
#   /slots/b/lib/...    slot b
#   DATA_DIR/slots.cbor {"active": None|"a"|"b", "pending": None|"a"|"b",
#                        "tries": boots of the pending slot so far,
#                        "versions": {"a": str|None, "b": str|None},
#                        "report": None | [event code, value]}
#
# boot.py calls `boot()`: a pending slot gets up to MAX_TRIES boots; each
# boot counts one try BEFORE it runs (so a crash or watchdog reset counts);
# with the tries used up the pending slot is given up, `report` asks the
# runtime to send fw.rollback, and the confirmed slot (or the factory image)
# runs instead. The running slot's `lib` goes first on sys.path, so its
# modules shadow /lib's. The runtime confirms a pending slot after its
# self-test (`confirm()`), which makes it the active one.
#
# The same scheme serves every board. (An ESP32 could put a whole firmware
# image in an esp32.Partition, but a Kapok release is a bundle of .mpy
# files, not an image; both boards' littlefs holds the slots just as well.)

from micropython import const

from .store import makedirs, rmtree

STATE = "slots.cbor"
ROOT = "/slots"
MAX_TRIES = const(3)
NAMES = ("a", "b")


def _clean(state):
    s = {"active": None, "pending": None, "tries": 0, "versions": {}, "report": None}
    if isinstance(state, dict):
        for k in ("active", "pending"):
            if state.get(k) in NAMES:
                s[k] = state[k]
        t = state.get("tries")
        if isinstance(t, int) and not isinstance(t, bool) and t >= 0:
            s["tries"] = t
        v = state.get("versions")
        if isinstance(v, dict):
            for k in NAMES:
                if isinstance(v.get(k), str):
                    s["versions"][k] = v[k]
        r = state.get("report")
        if isinstance(r, list) and len(r) == 2 and isinstance(r[0], str):
            s["report"] = r
    if s["pending"] is not None and s["pending"] == s["active"]:
        s["pending"] = None
    return s


def at_boot(state):
    """The boot decision, pure: (new state, slot to run or None for the
    factory image)."""
    s = _clean(state)
    p = s["pending"]
    if p is not None:
        if s["tries"] >= MAX_TRIES:
            s["pending"] = None
            s["tries"] = 0
            s["report"] = ["fw.rollback", _version_of(s, s["active"])]
        else:
            s["tries"] += 1
    return s, s["pending"] or s["active"]


def _version_of(s, slot):
    if slot is None:
        from . import VERSION

        return VERSION
    return s["versions"].get(slot) or "?"


def boot(data_dir, root=ROOT, sync=None):
    """Called by boot.py: count the boot, pick the slot, put its lib first
    on sys.path. Returns the slot name or None."""
    import sys

    from .store import Store

    store = Store(data_dir, sync)
    old = store.read(STATE)
    if old is None:
        return None  # never updated: the factory image, nothing to write
    state, slot = at_boot(old)
    if state != _clean(old):
        store.write(STATE, state)
    if slot is not None:
        sys.path.insert(0, f"{root}/{slot}/lib")
    return slot


class FileSlots:
    """The runtime's view of the slots: which one runs, where the next
    update goes, writing it, making it pending, confirming it."""

    def __init__(self, store, root=ROOT):
        self.store = store
        self.fs = store.fs
        self.root = root
        self.state = _clean(store.read(STATE))
        # what boot.py chose for this boot; a slot staged now runs next boot
        self._running = self.state["pending"] or self.state["active"]
        self._file = None
        self._slot = None

    def _save(self):
        self.store.write(STATE, self.state)

    def running(self):
        """The slot this boot runs (None: the factory image)."""
        return self._running

    def confirming(self):
        """True while the running slot still has to pass its self-test."""
        p = self.state["pending"]
        return p is not None and p == self._running

    def staged(self):
        """True when an update waits for the next boot."""
        p = self.state["pending"]
        return p is not None and p != self._running

    def version(self):
        return _version_of(self.state, self.running())

    def target(self):
        """The slot the next update is written to: never the running one."""
        return "b" if self.running() == "a" else "a"

    # -- writing a release into the target slot

    def begin(self, slot):
        if slot == self.running() or slot not in NAMES:
            raise ValueError(f"cannot write slot {slot!r}")
        if self.state["versions"].get(slot) is not None or self.state["pending"] == slot:
            self.state["versions"].pop(slot, None)
            if self.state["pending"] == slot:
                self.state["pending"] = None
            self._save()
        base = f"{self.root}/{slot}"
        rmtree(self.fs, base)
        makedirs(self.fs, base + "/lib")
        self._slot = slot

    def open(self, path):
        """Start writing file `path` (a checked bundle path) of the slot."""
        self.close()
        full = f"{self.root}/{self._slot}/lib/{path}"
        folder = full[: full.rfind("/")]
        makedirs(self.fs, folder)
        self._file = self.fs.open(full, "wb")

    def write(self, data):
        self._file.write(data)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def abort(self, slot):
        """Throw away a half-written or refused slot."""
        self.close()
        rmtree(self.fs, f"{self.root}/{slot}")
        self.store.sync()

    def set_pending(self, slot, version):
        """The slot is complete and checked: boot it next."""
        self.close()
        self.store.sync()
        self.state["versions"][slot] = version
        self.state["pending"] = slot
        self.state["tries"] = 0
        self._save()

    def confirm(self):
        """The running pending slot passed its self-test: keep it. Returns
        its version (None when there was nothing to confirm)."""
        if not self.confirming():
            return None
        p = self.state["pending"]
        self.state["active"] = p
        self.state["pending"] = None
        self.state["tries"] = 0
        self._save()
        return self.state["versions"].get(p)

    def take_report(self):
        """[event code, value] that boot.py left for the runtime, or None;
        cleared once the caller has queued it."""
        return self.state["report"]

    def clear_report(self):
        if self.state["report"] is not None:
            self.state["report"] = None
            self._save()
