"""`kapok device ...`: identities for nodes."""

from pathlib import Path

import typer

from kapok.tools.errors import EXIT_USAGE, fail
from kapok.tools.keys import KeyFileError, new_identity, write_key_file

app = typer.Typer(
    name="device",
    help="Create node identities, register nodes with the cloud, provision boards.",
    no_args_is_help=True,
)


@app.command()
def keygen(
    device: str = typer.Argument(..., help="Device id: 1-16 characters of a-z, 0-9 and '-'."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Key file to write (default: <device>.key here)."
    ),
    mac: bool = typer.Option(
        False, "--mac", help="A shared HMAC key (COSE_Mac0) for boards too slow to sign."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing key file."),
) -> None:
    """Create a node's identity key (file mode 0600) and print its public key.

    The public key (or, with --mac, the shared key) is what `kapok device
    register` gives the cloud; the file itself goes onto the board with
    `kapok device provision` and should then be kept offline.
    """
    try:
        identity = new_identity(device, mac=mac)
    except ValueError as e:
        fail(str(e), EXIT_USAGE)
    path = out or Path(f"{device}.key")
    try:
        write_key_file(path, identity, force=force)
    except KeyFileError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write {path}: {e.strerror}")
    typer.echo(identity.get("public_key") or identity["key"])
    typer.secho(f"wrote {path} (mode 0600, {identity['alg']})", err=True)
