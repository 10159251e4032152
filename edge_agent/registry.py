"""The registry: who may talk to this gateway, with which key, and the local
safety rules and firmware releases (docs/gateway-api.md "Registry").

`Registry` is an immutable snapshot parsed from the cloud's JSON document;
`RegistrySync` keeps the current one: loaded from `<data>/registry.json` at
start (so the agent works with the cloud unreachable), refreshed every
minute with If-None-Match, and at once — rate-limited per kid — when an
uplink names a kid it does not know.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kapok.protocols import messages

from .backoff import Backoff
from .cloud import Cloud, CloudAuthError, CloudError

log = logging.getLogger(__name__)

# The gateway's COSE kid until the registry names it (docs/gateway-api.md).
DEFAULT_GATEWAY_KID = "gateway"
FORCED_REFRESH_GAP = 1.0  # seconds between registry fetches forced by unknown kids


@dataclass(frozen=True)
class Device:
    id: str
    kind: str
    public_key: bytes | None
    mac_key: bytes | None
    unit: int | None
    always_on: bool
    address: str | None


@dataclass(frozen=True)
class Rule:
    event: str
    op: str
    target: str  # "self" or "unit:<kind>"


@dataclass(frozen=True)
class Release:
    sha256: str  # lowercase hex
    version: str
    board: str
    app: str
    size: int


# What the agent does when it has never reached the cloud: exactly the rules
# docs/gateway-api.md lists.
DEFAULT_RULES = (
    Rule("gas.leak", "valve.close", "self"),
    Rule("gas.leak", "siren.on", "unit:hub"),
    Rule("smoke", "siren.on", "unit:hub"),
    Rule("smoke", "valve.close", "unit:gas-meter"),
    Rule("water.leak", "valve.close", "unit:water-meter"),
)


def _hex_key(value, size: int, what: str) -> bytes | None:
    if value is None:
        return None
    key = bytes.fromhex(value)
    if len(key) != size:
        raise ValueError(f"{what} must be {size} bytes")
    return key


class Registry:
    """One registry document, indexed for the hot path."""

    def __init__(
        self,
        *,
        version: int | None = None,
        gateway_id: str | None = None,
        devices: tuple[Device, ...] = (),
        authorities: dict[str, bytes] | None = None,
        rules: tuple[Rule, ...] = DEFAULT_RULES,
        releases: tuple[Release, ...] = (),
        document: dict | None = None,
    ):
        self.version = version
        self.gateway_id = gateway_id
        self.devices = {d.id: d for d in devices}
        self.authorities = authorities or {}
        self.rules = rules
        self.releases = releases
        self.document = document
        self._by_unit: dict[int, list[Device]] = {}
        for d in devices:
            if d.unit is not None:
                self._by_unit.setdefault(d.unit, []).append(d)
        self._rules_by_event: dict[str, list[Rule]] = {}
        for r in rules:
            self._rules_by_event.setdefault(r.event, []).append(r)

    @property
    def gateway_kid(self) -> str:
        return self.gateway_id or DEFAULT_GATEWAY_KID

    def rules_for(self, event: str) -> list[Rule]:
        return self._rules_by_event.get(event, [])

    def unit_devices(self, unit: int | None, kind: str) -> list[Device]:
        if unit is None:
            return []
        return [d for d in self._by_unit.get(unit, ()) if d.kind == kind]

    @classmethod
    def from_document(cls, doc: dict) -> Registry:
        """Parse the cloud's JSON. A bad device, rule or release is left out
        with an error in the log (one typo must not lock out a community);
        a document that is not a registry at all raises ValueError."""
        if not isinstance(doc, dict) or not isinstance(doc.get("devices"), list):
            raise ValueError("registry document must be an object with a devices list")
        version = doc.get("version")
        if not isinstance(version, int):
            raise ValueError("registry version must be an integer")
        gateway = doc.get("gateway") or {}
        gateway_id = gateway.get("id") if isinstance(gateway, dict) else None
        if gateway_id is not None:
            gateway_id = str(gateway_id)
        devices = []
        for entry in doc["devices"]:
            try:
                devices.append(_device(entry))
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                log.error(
                    "registry: device left out", extra={"entry": repr(entry), "error": str(e)}
                )
        authorities = {}
        for name, key in (doc.get("authorities") or {}).items():
            try:
                authorities[str(name)] = _hex_key(key, 32, "authority key")
            except (ValueError, TypeError) as e:
                log.error("registry: authority left out", extra={"name": name, "error": str(e)})
        if "rules" in doc and doc["rules"] is not None:
            rules = []
            for entry in doc["rules"]:
                try:
                    rules.append(_rule(entry))
                except (ValueError, TypeError, KeyError, AttributeError) as e:
                    log.error(
                        "registry: rule left out", extra={"entry": repr(entry), "error": str(e)}
                    )
            rules = tuple(rules)
        else:
            rules = DEFAULT_RULES
        releases = []
        for entry in doc.get("releases") or ():
            try:
                releases.append(_release(entry))
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                log.error(
                    "registry: release left out", extra={"entry": repr(entry), "error": str(e)}
                )
        return cls(
            version=version,
            gateway_id=gateway_id,
            devices=tuple(devices),
            authorities=authorities,
            rules=rules,
            releases=tuple(releases),
            document=doc,
        )


def _device(entry: dict) -> Device:
    device_id = messages.check_device_id(entry["id"])
    public_key = _hex_key(entry.get("public_key"), 32, "public_key")
    mac_key = _hex_key(entry.get("mac_key"), 32, "mac_key")
    if (public_key is None) == (mac_key is None):
        raise ValueError("a device has exactly one of public_key and mac_key")
    unit = entry.get("unit")
    if unit is not None and not isinstance(unit, int):
        raise ValueError("unit must be an integer or null")
    address = entry.get("address")
    if address is not None and not isinstance(address, str):
        raise ValueError("address must be host:port or null")
    return Device(
        id=device_id,
        kind=str(entry.get("kind") or ""),
        public_key=public_key,
        mac_key=mac_key,
        unit=unit,
        always_on=bool(entry.get("always_on")),
        address=address,
    )


def _rule(entry: dict) -> Rule:
    rule = Rule(str(entry["event"]), str(entry["op"]), str(entry["target"]))
    if rule.op not in messages.FAILSAFE_OPS:
        # the gateway key signs fail-safe ops only, whatever the cloud says
        raise ValueError(f"op {rule.op!r} is not fail-safe")
    if rule.event not in messages.EVENTS:
        raise ValueError(f"unknown event {rule.event!r}")
    if rule.target != "self" and not (rule.target.startswith("unit:") and len(rule.target) > 5):
        raise ValueError(f"target {rule.target!r} is neither self nor unit:<kind>")
    return rule


def _release(entry: dict) -> Release:
    sha = str(entry["sha256"]).lower()
    if len(bytes.fromhex(sha)) != 32:
        raise ValueError("sha256 must be 32 bytes of hex")
    size = entry.get("size")
    if not isinstance(size, int) or size < 0:
        raise ValueError("size must be a non-negative integer")
    return Release(
        sha, str(entry.get("version")), str(entry.get("board")), str(entry.get("app")), size
    )


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a power cut leaves the old file or
    the new one, never half of each: write a temporary file, fsync it,
    rename it over, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class RegistrySync:
    """Keeps `current` up to date with the cloud; see the module docstring."""

    def __init__(
        self,
        cloud: Cloud,
        path: Path,
        *,
        interval: float = 60.0,
        kid_interval: float = 10.0,
        kid_wait: float = 2.0,
        backoff_cap: float = 60.0,
    ):
        self.cloud = cloud
        self.path = path
        self.interval = interval
        self.kid_interval = kid_interval
        self.kid_wait = kid_wait
        self.backoff_cap = backoff_cap
        self.current = Registry()
        self.fetched_at: float | None = None  # Unix time the cloud last answered
        self.on_change: list[Callable[[Registry], None]] = []
        self._refreshing: asyncio.Task | None = None
        self._refresh_started = -FORCED_REFRESH_GAP
        self._kid_attempts: OrderedDict[str, float] = OrderedDict()

    def load(self) -> None:
        """Start from the copy on disk, if any (the cloud may be down)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            log.info("no saved registry: default safety rules until the cloud answers")
            return
        try:
            self.current = Registry.from_document(json.loads(raw))
            self.fetched_at = self.path.stat().st_mtime
        except (ValueError, json.JSONDecodeError) as e:
            log.error("saved registry unreadable; waiting for the cloud", extra={"error": str(e)})
            return
        log.info(
            "registry loaded from disk",
            extra={"version": self.current.version, "devices": len(self.current.devices)},
        )
        self._changed()

    def _changed(self) -> None:
        for callback in self.on_change:
            try:
                callback(self.current)
            except Exception:
                log.exception("registry change handler failed")

    async def refresh(self) -> bool:
        """Fetch now (joining a fetch already under way); True when the cloud
        answered. Raises nothing: failures are logged and counted."""
        if self._refreshing is None or self._refreshing.done():
            self._refresh_started = time.monotonic()
            self._refreshing = asyncio.get_running_loop().create_task(self._fetch())
        return await asyncio.shield(self._refreshing)

    async def _fetch(self) -> bool:
        try:
            doc = await self.cloud.registry(self.current.version)
        except CloudAuthError as e:
            log.error("registry: the cloud refused the gateway token", extra={"error": str(e)})
            return False
        except CloudError as e:
            log.debug("registry: cloud unavailable", extra={"error": str(e)})
            return False
        self.fetched_at = time.time()
        if doc is None:  # 304: what we have is current
            return True
        try:
            registry = Registry.from_document(doc)
        except ValueError as e:
            log.error("registry: the cloud sent a bad document", extra={"error": str(e)})
            return False
        data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        # 0600: Mac0 keys are shared secrets
        await asyncio.to_thread(write_atomically, self.path, data, 0o600)
        self.current = registry
        log.info(
            "registry updated",
            extra={"version": registry.version, "devices": len(registry.devices)},
        )
        self._changed()
        return True

    async def run(self) -> None:
        """Refresh every `interval` seconds; retry sooner (with backoff) while
        the cloud has not answered since start."""
        backoff = Backoff(1.0, min(self.backoff_cap, self.interval))
        while True:
            ok = await self.refresh()
            delay = self.interval if ok else backoff.next_delay()
            if ok:
                backoff.reset()
            await asyncio.sleep(delay)

    def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()

    async def resolve_unknown(self, kid: str) -> Device | None:
        """The device for a kid not in the registry: refresh at once unless
        this kid asked within `kid_interval`, wait up to `kid_wait` for it."""
        now = time.monotonic()
        last = self._kid_attempts.get(kid)
        if last is not None and now - last < self.kid_interval:
            return None
        self._kid_attempts[kid] = now
        self._kid_attempts.move_to_end(kid)
        while len(self._kid_attempts) > 10_000:  # random kids must not grow memory
            self._kid_attempts.popitem(last=False)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.kid_wait):
                await self._fresh_refresh()
        return self.current.devices.get(kid)

    async def _fresh_refresh(self) -> None:
        # A fetch already under way may have left before the device was
        # registered: let it finish, then fetch again. Fetches forced by
        # unknown kids start at most once per FORCED_REFRESH_GAP, so a flood
        # of made-up kids costs the cloud one small request a second.
        running = self._refreshing
        if running is not None and not running.done():
            await asyncio.shield(running)
        gap = self._refresh_started + FORCED_REFRESH_GAP - time.monotonic()
        if gap > 0:
            await asyncio.sleep(gap)
        await self.refresh()
