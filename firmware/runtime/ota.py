# Over-the-air update: the `fw.update` command's work.
#
#   1. the manifest ({"m": COSE_Sign1} in the command's args) must be signed
#      by an authority whose role is "firmware" (the cloud's firmware key:
#      a command key alone cannot ship code), be for this board and app,
#      and name another version than the running one;
#   2. GET coap://<gateway>/fw/<sha256 hex> with Block2; every block goes
#      through the SHA-256 and the bundle Unpacker straight into the files
#      of the inactive slot, so the bundle is never held in RAM; fw.progress
#      events at 25, 50 and 75 %;
#   3. size and SHA-256 must match the manifest and the bundle must end
#      cleanly, else the slot is wiped and fw.fail says why;
#   4. the slot is marked pending (fw.progress 100) and the node reboots
#      into it; boot.py counts the tries, the runtime confirms after the
#      self-test (fw.ok) or boot.py rolls back after three (fw.rollback).

import hashlib

from protocols import bundle, cose, messages

from .commands import CommandError

_MARKS = (25, 50, 75)


class Ota:
    """`slots` a slots.FileSlots; `authorities` the config's map; `outbox`
    takes the fw.* events; `board_name`/`app_name` this node's."""

    def __init__(self, slots, authorities, board_name, app_name, outbox):
        self.slots = slots
        self.authorities = authorities
        self.board_name = board_name
        self.app_name = app_name
        self.outbox = outbox

    def check(self, manifest_msg):
        """The manifest dict, or CommandError saying why not."""
        try:
            kid = cose.kid(manifest_msg).decode()
        except (ValueError, UnicodeError):
            raise CommandError(messages.E_ARGS, "manifest is not a COSE_Sign1") from None
        auth = self.authorities.get(kid)
        if auth is None or auth[1] != "firmware":
            raise CommandError(messages.E_ARGS, "manifest not signed by a firmware key")
        try:
            m = messages.parse_manifest(cose.verify1(manifest_msg, auth[0]))
        except ValueError as e:
            raise CommandError(messages.E_ARGS, f"manifest: {e}") from None
        if m["board"] != self.board_name:
            raise CommandError(messages.E_ARGS, "manifest is for board {}".format(m["board"]))
        if m["app"] != self.app_name:
            raise CommandError(messages.E_ARGS, "manifest is for app {}".format(m["app"]))
        return m

    async def update(self, client, manifest_msg):
        """Check, download, verify and stage a release; returns the result
        detail. The caller reboots when `slots.staged()` says a slot waits."""
        m = self.check(manifest_msg)
        if m["version"] == self.slots.version():
            return "already running {}".format(m["version"])
        if self.slots.confirming():
            raise CommandError(messages.E_FAILED, "the last update is not confirmed yet")
        slot = self.slots.target()
        try:
            self.slots.begin(slot)
            got, digest = await self._download(client, m, slot)
            if got != m["size"]:
                raise ValueError("bundle is {} bytes, manifest says {}".format(got, m["size"]))
            if digest != m["sha256"]:
                raise ValueError("bundle SHA-256 does not match the manifest")
        except Exception as e:
            # OSError, ValueError, CoapError: all end the same way
            why = str(e) or e.__class__.__name__
            self.slots.abort(slot)
            self.outbox.add_event("fw.fail", why)
            raise CommandError(messages.E_FAILED, why) from None
        self.slots.set_pending(slot, m["version"])
        self.outbox.add_event("fw.progress", 100)
        return "{} staged in slot {}".format(m["version"], slot)

    async def _download(self, client, m, slot):
        size = m["size"]
        h = hashlib.sha256()
        unpacker = bundle.Unpacker(size)
        slots = self.slots
        outbox = self.outbox
        marks = list(_MARKS)

        def sink(chunk):
            h.update(chunk)
            for ev in unpacker.feed(chunk):
                if ev[0] == "data":
                    slots.write(ev[1])
                elif ev[0] == "file":
                    slots.open(ev[1])
                else:
                    slots.close()
            while marks and unpacker.total * 100 >= marks[0] * size:
                outbox.add_event("fw.progress", marks.pop(0))

        got = await client.download("fw/" + m["sha256"].hex(), sink, size)
        unpacker.close()
        return got, h.digest()
