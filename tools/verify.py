"""`kapok verify`: re-check a signed reading against the node's public key."""

import json
from pathlib import Path

import typer

from kapok.protocols import cbor, cose, messages
from kapok.tools.errors import EXIT_FAILED, EXIT_USAGE, fail
from kapok.tools.keys import ALG_EDDSA, KeyFileError, read_key_file


def load_message(source: str) -> bytes:
    """A COSE message given as hex on the command line, or a file holding it
    as raw bytes or as hex text."""
    path = Path(source)
    if path.is_file():
        data = path.read_bytes()
        try:
            return bytes.fromhex(data.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return data
    try:
        return bytes.fromhex(source.strip())
    except ValueError:
        fail(f"{source!r} is neither a file nor hex", EXIT_USAGE)


def verify_message(message: bytes, *, public_key: bytes | None, mac_key: bytes | None) -> bytes:
    """The verified payload; ValueError saying why when it does not verify."""
    tag = cose.decode(message)[0]
    if tag == cose.TAG_SIGN1:
        if public_key is None:
            raise ValueError("a COSE_Sign1 needs the device's public key")
        return cose.verify1(message, public_key)
    if mac_key is None:
        raise ValueError("a COSE_Mac0 needs the device's shared key")
    return cose.verify_mac0(message, mac_key)


def _key_bytes(value: str | None, what: str) -> bytes | None:
    if value is None:
        return None
    try:
        key = bytes.fromhex(value)
    except ValueError:
        fail(f"{what} is not hex", EXIT_USAGE)
    if len(key) != 32:
        fail(f"{what} must be 32 bytes (64 hex digits)", EXIT_USAGE)
    return key


def verify(
    message: str = typer.Argument(..., help="COSE message as hex, or a file (raw or hex)."),
    public_key: str = typer.Option(None, "--public-key", help="Device Ed25519 public key (hex)."),
    mac_key: str = typer.Option(None, "--mac-key", help="Device HMAC key (hex), for COSE_Mac0."),
    key_file: Path = typer.Option(
        None, "--key-file", help="A key file from `kapok device keygen`."
    ),
) -> None:
    """Re-verify a signed reading: prints the device, the verified payload,
    and exits 0; exits 1 saying why when it does not verify."""
    pub = _key_bytes(public_key, "--public-key")
    mac = _key_bytes(mac_key, "--mac-key")
    data = load_message(message)
    try:
        kid = cose.kid(data).decode("utf-8", "replace")
    except ValueError as e:
        fail(f"not a Kapok COSE message: {e}", EXIT_FAILED)
    if key_file is not None:
        try:
            identity = read_key_file(key_file)
        except KeyFileError as e:
            fail(str(e), EXIT_USAGE)
        if identity["device"] != kid:
            fail(f"the message is from {kid}, the key file is {identity['device']}'s")
        if identity["alg"] == ALG_EDDSA:
            pub = bytes.fromhex(identity["public_key"])
        else:
            mac = bytes.fromhex(identity["key"])
    if pub is None and mac is None:
        fail("give the device's key: --public-key, --mac-key or --key-file", EXIT_USAGE)
    try:
        payload = verify_message(data, public_key=pub, mac_key=mac)
    except ValueError as e:
        fail(f"{kid}: does NOT verify: {e}", EXIT_FAILED)
    try:
        uplink = messages.parse_uplink(payload, kid)
        shown = json.dumps(uplink, ensure_ascii=False, default=str)
    except ValueError:
        shown = repr(cbor.loads(payload))
    typer.secho(f"{kid}: signature OK", fg=typer.colors.GREEN)
    typer.echo(shown)
