"""The cloud's signing keys: `cloud` signs commands, `firmware` signs
release manifests.

Each is an Ed25519 seed in `<data dir>/keys/<name>.key` (hex, file mode
0600, folder 0700), created on first start. Rotation writes a new seed in
place (atomically) and the database keeps every public half with the time it
was retired (`signing_keys`), so a command or manifest signed before the
rotation can still be checked. Every worker reads the seed file when it
signs, so a rotation takes effect at once for all of them.
"""

import os
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from kapok.protocols import cose, ed25519

from .models import KeyRecord

KEY_NAMES = ("cloud", "firmware")


class SigningKeyError(ValueError):
    """A key file is missing or damaged."""


class KeyStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        if name not in KEY_NAMES:
            raise ValueError(f"unknown key {name!r} (one of {', '.join(KEY_NAMES)})")
        return self.directory / f"{name}.key"

    def ensure(self) -> list[str]:
        """Create the keys that do not exist yet; returns their names."""
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        created = []
        for name in KEY_NAMES:
            if not self.path(name).exists():
                self._write(name, secrets.token_bytes(32))
                created.append(name)
        return created

    def seed(self, name: str) -> bytes:
        path = self.path(name)
        try:
            seed = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            raise SigningKeyError(f"signing key {path} is missing") from None
        except ValueError:
            raise SigningKeyError(
                f"signing key {path} is damaged (expected 64 hex digits)"
            ) from None
        if len(seed) != 32:
            raise SigningKeyError(f"signing key {path} is damaged (expected 64 hex digits)")
        return seed

    def public_key(self, name: str) -> bytes:
        return ed25519.public_key(self.seed(name))

    def rotate(self, name: str) -> bytes:
        """Replace the key with a new one; returns the new public key."""
        self._write(name, secrets.token_bytes(32))
        return self.public_key(name)

    def sign(self, name: str, payload: bytes) -> bytes:
        """COSE_Sign1 of `payload` by key `name`, kid = the key's name."""
        return cose.sign1(payload, self.seed(name), name.encode())

    def _write(self, name: str, seed: bytes) -> None:
        path = self.path(name)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (seed.hex() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def sync_records(session: Session, keys: KeyStore, *, now: float) -> bool:
    """Make `signing_keys` name the key files' public halves as current,
    retiring any other; True when something changed."""
    changed = False
    for name in KEY_NAMES:
        public = keys.public_key(name)
        current = session.scalars(
            select(KeyRecord).where(KeyRecord.name == name, KeyRecord.retired_at.is_(None))
        ).all()
        if any(r.public_key == public for r in current) and len(current) == 1:
            continue
        for record in current:
            if record.public_key != public:
                record.retired_at = now
        if not any(r.public_key == public for r in current):
            session.add(KeyRecord(name=name, public_key=public, created_at=now))
        changed = True
    session.flush()
    return changed
