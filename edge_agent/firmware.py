"""OTA cache: each release bundle fetched from the cloud once, checked
against its SHA-256 and size, kept in `<data>/fw/<sha256 hex>`, and served to
nodes by `GET /fw/<sha256 hex>` (Block2, see endpoint.py).

A bundle's name is its hash, so a cached file is never stale; bundles whose
release left the registry stay on disk (a node may be half-way through one).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections import OrderedDict
from pathlib import Path

from .backoff import Backoff
from .cloud import Cloud, CloudError
from .registry import Registry, Release, write_atomically

log = logging.getLogger(__name__)

_SHA_HEX = re.compile(r"[0-9a-f]{64}")
_MEMORY_BUDGET = 16 * 2**20  # bundles kept in memory for many nodes at once


class FirmwareCache:
    def __init__(self, directory: Path, cloud: Cloud, *, backoff_cap: float = 60.0):
        self.directory = directory
        self.cloud = cloud
        self.backoff_cap = backoff_cap
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._wanted: dict[str, Release] = {}
        self._wake = asyncio.Event()

    def want(self, registry: Registry) -> None:
        """Registry changed: fetch its releases' bundles not cached yet."""
        self._wanted = {r.sha256: r for r in registry.releases}
        self._wake.set()

    def path(self, sha_hex: str) -> Path:
        return self.directory / sha_hex

    def get(self, sha_hex: str) -> bytes | None:
        """The bundle, or None when it is not cached (or the name is no hash)."""
        if not _SHA_HEX.fullmatch(sha_hex):
            return None
        data = self._memory.get(sha_hex)
        if data is not None:
            self._memory.move_to_end(sha_hex)
            return data
        try:
            data = self.path(sha_hex).read_bytes()
        except FileNotFoundError:
            return None
        self._memory[sha_hex] = data
        while sum(len(v) for v in self._memory.values()) > _MEMORY_BUDGET and len(self._memory) > 1:
            self._memory.popitem(last=False)
        return data

    async def run(self) -> None:
        backoff = Backoff(1.0, self.backoff_cap)
        while True:
            await self._wake.wait()
            self._wake.clear()
            missing = [r for r in self._wanted.values() if not self.path(r.sha256).exists()]
            failed = False
            for release in missing:
                try:
                    await self.fetch(release)
                except CloudError as e:
                    log.warning(
                        "firmware bundle not fetched",
                        extra={"sha256": release.sha256, "error": str(e)},
                    )
                    failed = True
            if failed:
                await asyncio.sleep(backoff.next_delay())
                self._wake.set()
            else:
                backoff.reset()

    async def fetch(self, release: Release) -> bool:
        data = await self.cloud.firmware(release.sha256)
        if data is None:
            log.error("the cloud has no bundle for a release", extra={"sha256": release.sha256})
            return False
        digest = hashlib.sha256(data).hexdigest()
        if digest != release.sha256 or len(data) != release.size:
            log.error(
                "firmware bundle does not match its release; not cached",
                extra={"sha256": release.sha256, "got": digest, "size": len(data)},
            )
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(write_atomically, self.path(release.sha256), data)
        log.info(
            "firmware bundle cached",
            extra={"sha256": release.sha256, "version": release.version, "size": len(data)},
        )
        return True
