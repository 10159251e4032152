"""Commands on their way to nodes.

- CommandBook: the open commands per device, in memory (mirroring the
  store), and the plan for what rides on a device's next 2.04.
- SafetyRules: the local rules — an alarm event makes the gateway sign
  fail-safe commands with its own key, cloud or no cloud.
- CommandPoller: long-polls the cloud for commands, stores them, reports
  `sent`, hands always-on targets to the pusher.
- Reporter: sends the queued reports (delivery states, local commands) to
  the cloud, in order, surviving restarts and outages.

Delivery rule (a choice, documented in docs/agent.md): a command that rode
on the 2.04 of seq S is `delivered` when the node's next uplink with a seq
above S arrives — a node moves past a seq only once that seq was
acknowledged, so it had the reply. A command pushed to an always-on node is
`delivered` when the node acknowledges the POST /c.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .backoff import Backoff
from .cloud import Cloud, CloudAuthError, CloudError, CloudRefused
from .keys import GatewayKey
from .models import CARRIED, DELIVERED, FAILED, PENDING, Command
from .registry import Device, Registry
from .store import Store

log = logging.getLogger(__name__)

# Commands that ride on one 2.04 take at most this many bytes, so the reply
# stays one datagram a node's buffer takes; the rest wait for the next one.
MAX_REPLY_COMMAND_BYTES = 800

LOCAL_COMMANDS_PATH = "/api/v1/gateway/local-commands"


def _level(backoff: Backoff) -> int:
    """Warn at the first failure of an outage, then keep the journal quiet."""
    return logging.WARNING if backoff.failures == 0 else logging.DEBUG


def status_report(command: Command, state: str, detail: str | None = None):
    body = {"state": state, "at": int(time.time())}
    if detail:
        body["detail"] = detail
    return f"/api/v1/gateway/commands/{command.cloud_id}/status", body


def local_report(command: Command):
    return LOCAL_COMMANDS_PATH, {
        "device": command.device,
        "op": command.op,
        "cmd_id": command.cmd_id,
        "event": command.event,
        "at": command.created,
        "cose": command.cose.hex(),
    }


class CommandBook:
    def __init__(self):
        self._open: dict[str, list[Command]] = {}
        self._last_local: dict[str, int] = {}
        self.finished = {DELIVERED: 0, FAILED: 0}

    def load(self, commands: list[Command], last_local: dict[str, int]) -> None:
        for c in commands:
            self._open.setdefault(c.device, []).append(c)
        self._last_local.update(last_local)

    def add(self, command: Command) -> None:
        if command.state in (PENDING, CARRIED):
            self._open.setdefault(command.device, []).append(command)

    def open_for(self, device: str) -> list[Command]:
        return self._open.get(device, [])

    def all_open(self) -> list[Command]:
        return [c for cs in self._open.values() for c in cs]

    def count(self, state: str) -> int:
        if state in self.finished:
            return self.finished[state]
        return sum(1 for cs in self._open.values() for c in cs if c.state == state)

    def known_cloud_ids(self) -> set[int]:
        return {c.cloud_id for cs in self._open.values() for c in cs if c.cloud_id is not None}

    def has_open_local(self, device: str, op: str, now: int) -> bool:
        return any(
            c.local and c.op == op and c.not_after > now and c.state in (PENDING, CARRIED)
            for c in self.open_for(device)
        )

    def next_local_cmd_id(self, device: str) -> int:
        """max(last local id for the device + 1, Unix ms): increasing even
        if the data directory is lost (docs/gateway-api.md)."""
        cmd_id = max(self._last_local.get(device, 0) + 1, int(time.time() * 1000))
        self._last_local[device] = cmd_id
        return cmd_id

    def plan_reply(self, device: str, seq: int, now: int, first: list[Command] = ()):
        """What the 2.04 for (device, seq) carries, and the state changes
        and reports that must be committed with it. `first`: new commands
        for this device (local fail-safe ones), which go first.
        Returns (command COSE list, updates, reports)."""
        coses: list[bytes] = []
        updates: list[tuple[Command, str, int | None]] = []
        reports: list = []
        budget = MAX_REPLY_COMMAND_BYTES
        for c in first:
            coses.append(c.cose)
            budget -= len(c.cose)
        for c in self.open_for(device):
            if c.state == CARRIED and c.carried_seq is not None and seq > c.carried_seq:
                updates.append((c, DELIVERED, c.carried_seq))
                if not c.local:
                    reports.append(status_report(c, "delivered"))
            elif c.not_after <= now:
                updates.append((c, FAILED, c.carried_seq))
                if not c.local:
                    reports.append(status_report(c, "failed", "expired before the node woke"))
            elif len(c.cose) <= budget or not coses:
                coses.append(c.cose)
                budget -= len(c.cose)
                updates.append((c, CARRIED, max(seq, c.carried_seq or 0)))
        return coses, updates, reports

    def apply(self, updates) -> None:
        """Take the committed state changes into memory."""
        for command, state, carried_seq in updates:
            if command.state not in (PENDING, CARRIED):
                continue  # finished meanwhile (e.g. a push was acknowledged)
            command.state = state
            command.carried_seq = carried_seq
            if state in self.finished:
                self.finished[state] += 1
                cs = self._open.get(command.device, [])
                with contextlib.suppress(ValueError):
                    cs.remove(command)
                if not cs:
                    self._open.pop(command.device, None)


class SafetyRules:
    """Turns alarm events into gateway-signed fail-safe commands."""

    def __init__(self, key: GatewayKey, book: CommandBook, lifetime: int = 3600):
        self.key = key
        self.book = book
        self.lifetime = lifetime

    def commands_for(
        self, registry: Registry, device: Device, events: list, now: int
    ) -> list[Command]:
        out: list[Command] = []
        wanted: set[tuple[str, str]] = set()
        for code, _t, _value in events:
            for rule in registry.rules_for(code):
                if rule.target == "self":
                    targets = [device.id]
                else:
                    kind = rule.target.partition(":")[2]
                    targets = [d.id for d in registry.unit_devices(device.unit, kind)]
                for target in targets:
                    if (target, rule.op) in wanted:
                        continue
                    wanted.add((target, rule.op))
                    # a fail-safe command already waiting for a sleepy target
                    # does the job; the sender itself always gets a fresh one
                    if target != device.id and self.book.has_open_local(target, rule.op, now):
                        continue
                    cmd_id = self.book.next_local_cmd_id(target)
                    not_after = now + self.lifetime
                    cose_bytes = self.key.sign_failsafe(
                        device=target,
                        op=rule.op,
                        cmd_id=cmd_id,
                        not_after=not_after,
                        kid=registry.gateway_kid,
                    )
                    out.append(
                        Command(
                            device=target,
                            cmd_id=cmd_id,
                            op=rule.op,
                            not_after=not_after,
                            cose=cose_bytes,
                            event=code,
                            created=now,
                        )
                    )
        return out


class CommandPoller:
    """Long-polls `GET /api/v1/gateway/commands` and takes in new commands."""

    def __init__(
        self,
        cloud: Cloud,
        store: Store,
        book: CommandBook,
        *,
        wait: int,
        idle_poll: float,
        backoff_cap: float,
        on_new=None,
    ):
        self.cloud = cloud
        self.store = store
        self.book = book
        self.wait = wait
        self.idle_poll = idle_poll
        self.backoff = Backoff(1.0, backoff_cap)
        self.on_new = on_new  # callable(list[Command]) after they are stored

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                listed = await self.cloud.commands(self.wait)
            except CloudAuthError as e:
                log.error("commands: the cloud refused the gateway token", extra={"error": str(e)})
                await asyncio.sleep(self.backoff.next_delay())
                continue
            except CloudError as e:
                # warned once per outage; the cloud client logs the transition too
                level = _level(self.backoff)
                log.log(level, "commands: cloud unavailable", extra={"error": str(e)})
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self.backoff.reset()
            new = await self.take(listed)
            elapsed = loop.time() - started
            if not new and elapsed < self.idle_poll:
                # A poll may come back at once with nothing new (commands we
                # hold whose `sent` report is still on its way, or a cloud
                # that lists waiting commands every time): do not spin.
                await asyncio.sleep(self.idle_poll - elapsed)

    async def take(self, listed: list[dict]) -> list[Command]:
        known = self.book.known_cloud_ids()
        fresh = []
        for entry in listed:
            try:
                command = Command(
                    cloud_id=int(entry["id"]),
                    device=str(entry["device"]),
                    cmd_id=int(entry["cmd_id"]),
                    op=str(entry["op"]),
                    not_after=int(entry["not_after"]),
                    cose=bytes.fromhex(entry["cose"]),
                    created=int(time.time()),
                )
            except (KeyError, TypeError, ValueError) as e:
                log.error(
                    "commands: bad entry from the cloud",
                    extra={"entry": repr(entry)[:200], "error": str(e)},
                )
                continue
            if command.cloud_id not in known:
                fresh.append(command)
        if not fresh:
            return []
        new = await self.store.add_cloud_commands(fresh, lambda c: status_report(c, "sent"))
        for command in new:
            self.book.add(command)
            log.info(
                "command queued for node",
                extra={"command": command.cloud_id, "device": command.device, "op": command.op},
            )
        if new and self.on_new:
            self.on_new(new)
        return new


class Reporter:
    """Sends queued reports in order; each is deleted once the cloud took it
    (or refused it for good, which is logged). Starts once `ready` is set:
    the cloud checks local commands against the gateway's registered key."""

    def __init__(self, cloud: Cloud, store: Store, *, backoff_cap: float):
        self.cloud = cloud
        self.store = store
        self.backoff = Backoff(1.0, backoff_cap)
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self.pending = 0

    async def run(self) -> None:
        await self.ready.wait()
        while True:
            reports = await self.store.next_reports()
            self.pending = len(reports)
            if not reports:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(30):
                        await self.wake.wait()
                continue
            for report_id, path, body in reports:
                try:
                    await self.cloud.post_json(path, body)
                except CloudRefused as e:
                    log.error(
                        "report refused by the cloud; dropped",
                        extra={"path": path, "body": body, "error": str(e)},
                    )
                except CloudAuthError as e:
                    log.error(
                        "reports: the cloud refused the gateway token", extra={"error": str(e)}
                    )
                    await asyncio.sleep(self.backoff.next_delay())
                    break
                except CloudError as e:
                    log.log(
                        _level(self.backoff), "reports: cloud unavailable", extra={"error": str(e)}
                    )
                    await asyncio.sleep(self.backoff.next_delay())
                    break
                self.backoff.reset()
                await self.store.delete_report(report_id)
