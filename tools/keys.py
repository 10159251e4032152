"""Device identity key files: what `kapok device keygen` writes and other
commands (provision, verify, sim) read.

A key file is JSON, mode 0600:
  {"device": "gm-0001a3", "alg": "EdDSA", "seed": "<hex 32>", "public_key": "<hex 32>"}
  {"device": "gm-0001a3", "alg": "HMAC 256/64", "key": "<hex 32>"}
EdDSA (COSE_Sign1) for boards that can sign; HMAC 256/64 (COSE_Mac0, a key
shared with gateway and cloud) for boards too slow to sign.
"""

import json
import os
import secrets
from pathlib import Path

from kapok.protocols import ed25519, messages

ALG_EDDSA = "EdDSA"
ALG_HMAC = "HMAC 256/64"


class KeyFileError(ValueError):
    pass


def new_identity(device: str, *, mac: bool = False) -> dict:
    messages.check_device_id(device)
    if mac:
        return {"device": device, "alg": ALG_HMAC, "key": secrets.token_bytes(32).hex()}
    seed = secrets.token_bytes(32)
    return {
        "device": device,
        "alg": ALG_EDDSA,
        "seed": seed.hex(),
        "public_key": ed25519.public_key(seed).hex(),
    }


def write_key_file(path: Path, identity: dict, *, force: bool = False) -> None:
    """Create the file with mode 0600 from the start (never world-readable,
    not even for a moment); refuse to overwrite an identity unless forced."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(
            f"{path} exists: an identity is never overwritten without --force"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(identity, f, indent=1)
        f.write("\n")
    os.chmod(path, 0o600)  # O_CREAT's mode is masked by the umask; --force keeps old modes


def read_key_file(path: Path) -> dict:
    try:
        identity = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except (OSError, ValueError) as e:
        raise KeyFileError(f"{path}: not a Kapok key file ({e})") from None
    if not isinstance(identity, dict) or identity.get("alg") not in (ALG_EDDSA, ALG_HMAC):
        raise KeyFileError(f"{path}: not a Kapok key file")
    try:
        messages.check_device_id(identity.get("device"))
        secret = bytes.fromhex(identity["seed" if identity["alg"] == ALG_EDDSA else "key"])
    except (KeyError, TypeError, ValueError) as e:
        raise KeyFileError(f"{path}: damaged key file ({e})") from None
    if len(secret) != 32:
        raise KeyFileError(f"{path}: damaged key file (the secret is not 32 bytes)")
    if (
        identity["alg"] == ALG_EDDSA
        and identity.get("public_key") != ed25519.public_key(secret).hex()
    ):
        raise KeyFileError(f"{path}: damaged key file (public key does not match the seed)")
    return identity
