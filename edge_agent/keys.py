"""The gateway's own Ed25519 key: created once, kept in `<data>/gateway.key`
(32 raw seed bytes, mode 0600), and able to sign fail-safe commands only."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from kapok.protocols import cose, ed25519, messages

log = logging.getLogger(__name__)

KEY_FILE = "gateway.key"


class NotFailSafe(ValueError):
    """Something asked the gateway key to sign an op that is not fail-safe."""


def load_or_create_seed(data_dir: Path) -> bytes:
    """The seed from `<data>/gateway.key`, creating it on first start.

    Creation is atomic (written and fsynced under a temporary name, then
    hard-linked into place), so a power cut never leaves a half-written key
    and two agents started at once end up with the same one."""
    path = data_dir / KEY_FILE
    if not path.exists():
        tmp = data_dir / f".{KEY_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, os.urandom(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            log.info("gateway key created", extra={"path": str(path)})
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        dir_fd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("gateway key is readable by others; chmod 600 it", extra={"path": str(path)})
    seed = path.read_bytes()
    if len(seed) != 32:
        raise ValueError(f"{path}: expected a 32-byte Ed25519 seed, found {len(seed)} bytes")
    return seed


class GatewayKey:
    def __init__(self, seed: bytes):
        self._seed = seed
        self.public_key = ed25519.public_key(seed)

    def sign_failsafe(
        self, *, device: str, op: str, cmd_id: int, not_after: int, kid: str
    ) -> bytes:
        """The COSE_Sign1 of a fail-safe command for `device`, signed by this
        gateway. Any other op raises NotFailSafe: whatever a registry or a
        bug asks, this key never signs an op that makes a site less safe."""
        if op not in messages.FAILSAFE_OPS:
            raise NotFailSafe(f"the gateway key signs only {messages.FAILSAFE_OPS}, not {op!r}")
        payload = messages.build_command(cmd_id, device, op, {}, not_after)
        return cose.sign1(payload, self._seed, kid.encode())
