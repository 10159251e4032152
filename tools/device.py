"""`kapok device ...`: identities for nodes."""

from pathlib import Path

import typer

from kapok.tools.board import DATA_DIR, BoardFiles, open_board, runtime_module
from kapok.tools.errors import EXIT_USAGE, KapokError, fail
from kapok.tools.keys import ALG_EDDSA, KeyFileError, new_identity, read_key_file, write_key_file

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


# -- provision ---------------------------------------------------------------------------

DEFAULT_COAP_PORT = 5683
# The app each kind of node runs when --app is not given.
APP_FOR_KIND = {
    "gas-meter": "meter",
    "water-meter": "meter",
    "electricity-meter": "meter",
    "water-quality": "water_quality",
    "hub": "hub",
}
# An authority named "cloud" signs any command; any other (a gateway, by
# its id) only the fail-safe ones; "firmware" is the release-signing key.
_ROLES = ("all", "failsafe", "firmware")


def parse_gateway(text: str) -> list:
    """ "HOST:PORT", "HOST" (port 5683) or "[IPv6]:PORT" -> [host, port]."""
    host, port = text, str(DEFAULT_COAP_PORT)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad gateway address {text!r}: write IPv6 as [address]:port")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif ":" in text:
        raise ValueError(f"bad gateway address {text!r}: write IPv6 as [address]:port")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad gateway address {text!r}: HOST:PORT, port 1-65535")
    return [host, int(port)]


def _public_key(text: str, what: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ValueError(f"{what}: an Ed25519 public key is 64 hex digits")
    return key


def parse_authority(text: str) -> tuple[str, list]:
    """ "KID=HEX" or "KID=HEX:ROLE" -> (kid, [public key, role])."""
    kid, sep, rest = text.partition("=")
    if not sep or not kid:
        raise ValueError(f"bad --authority {text!r}: KID=HEX, e.g. cloud=<64 hex digits>")
    key_hex, _, role = rest.partition(":")
    role = role or ("all" if kid == "cloud" else "firmware" if kid == "firmware" else "failsafe")
    if role not in _ROLES:
        raise ValueError(f"bad role {role!r} for {kid}: one of {', '.join(_ROLES)}")
    return kid, [_public_key(key_hex, f"authority {kid}"), role]


def node_config(
    identity: dict,
    *,
    gateway: str,
    kind: str,
    app_name: str | None = None,
    board: str | None = None,
    authorities: list[str] = (),
    firmware_key: str | None = None,
    wifi: dict | None = None,
    sample_s: int | None = None,
    send_s: int | None = None,
) -> dict:
    """The node's config map (firmware/runtime/config.py) from a key file's
    identity and the provisioning options; ValueError says what is wrong."""
    cfg = {
        "id": identity["device"],
        "kind": kind,
        "app": app_name or APP_FOR_KIND.get(kind, ""),
        "gateway": parse_gateway(gateway),
        "authorities": dict(parse_authority(a) for a in authorities),
    }
    if identity["alg"] == ALG_EDDSA:
        cfg["seed"] = bytes.fromhex(identity["seed"])
    else:
        cfg["mac_key"] = bytes.fromhex(identity["key"])
    if board:
        cfg["board"] = board
    if firmware_key:
        cfg["authorities"]["firmware"] = [_public_key(firmware_key, "firmware key"), "firmware"]
    if wifi:
        cfg["options"] = {"wifi": wifi}
    if sample_s is not None:
        cfg["sample_s"] = sample_s
    if send_s is not None:
        cfg["send_s"] = send_s
    config = runtime_module("config")
    try:
        return config.validate(cfg)
    except config.ConfigError as e:
        raise ValueError(str(e)) from None


def provision_board(board: BoardFiles, cfg: dict, *, force: bool = False) -> dict:
    """Store `cfg` on the board with the runtime's own config.provision: the
    existing config is read first, an identity is never replaced unless
    `force`, and the file is written atomically (temporary name, rename).
    KapokError when the board refuses."""
    config = runtime_module("config")
    store = runtime_module("store").Store(DATA_DIR, fs=board)
    try:
        return config.provision(store, cfg, force)
    except config.ConfigError as e:
        raise KapokError(str(e).replace("with force=True", "with --force")) from None


def has_app_module(board: BoardFiles, app_name: str) -> bool:
    """Whether the firmware on the board has the app (in its factory image
    or an update's slot)."""
    slots = runtime_module("slots")
    libs = ["/lib"] + [f"{slots.ROOT}/{name}/lib" for name in slots.NAMES]
    return any(
        board.exists(f"{lib}/apps/{app_name}{suffix}")
        for lib in libs
        for suffix in (".mpy", ".py", "/__init__.mpy", "/__init__.py")
    )


@app.command()
def provision(
    port: str = typer.Option(
        None,
        "--port",
        "-p",
        help="The board's serial port, e.g. /dev/ttyUSB0.",
        show_default=False,
    ),
    virtual: Path = typer.Option(
        None,
        "--virtual",
        help="A virtual board's image folder instead of a serial port.",
        show_default=False,
    ),
    key_file: Path = typer.Option(
        None,
        "--key-file",
        "-k",
        help="The node's key file (kapok device keygen): its id and secret key.",
        show_default=False,
    ),
    gateway: str = typer.Option(
        None,
        "--gateway",
        "-g",
        help="The gateway's CoAP address, HOST:PORT (port 5683 when left out).",
        show_default=False,
    ),
    kind: str = typer.Option(
        None,
        "--kind",
        help="gas-meter, water-meter, electricity-meter, water-quality or hub.",
        show_default=False,
    ),
    app_name: str = typer.Option(
        None,
        "--app",
        "-a",
        help="The app the node runs (default: the kind's: meter, water_quality or hub).",
        show_default=False,
    ),
    board_name: str = typer.Option(
        None, "--board", help="The board (esp32, rp2, virtual), for the record.", show_default=False
    ),
    authority: list[str] = typer.Option(
        [],
        "--authority",
        help="A key the node takes commands from, KID=HEX (repeat it): cloud=HEX signs any "
        "command, a gateway (gw-3=HEX) only valve.close and siren.on; KID=HEX:ROLE to say.",
        show_default=False,
    ),
    firmware_key: str = typer.Option(
        None,
        "--firmware-key",
        help="The cloud's firmware key (HEX): updates signed by it are installed.",
        show_default=False,
    ),
    wifi_ssid: str = typer.Option(None, "--wifi-ssid", help="Wi-Fi network the node joins."),
    wifi_key: str = typer.Option(None, "--wifi-key", help="Its password."),
    wifi_country: str = typer.Option(None, "--wifi-country", help="Its country code, e.g. CN."),
    sample_s: int = typer.Option(None, "--sample-s", help="Seconds between samples (900)."),
    send_s: int = typer.Option(None, "--send-s", help="Seconds between uplinks (3600)."),
    force: bool = typer.Option(
        False, "--force", help="Replace the identity of a node provisioned before."
    ),
) -> None:
    """Write a node's identity and settings onto a board.

    Reads the board's config first and refuses to give a node that already
    has an identity another one, unless --force (its registration in the
    cloud would be orphaned). The config is written the way the node writes
    it, atomically, then the board restarts as that node. Flash the firmware
    first (kapok fw flash).

    Example:

      kapok device provision --port /dev/ttyUSB0 --key-file gm-0001a3.key
      --gateway 192.168.1.10:5683 --kind gas-meter --authority cloud=HEX
      --authority gw-3=HEX --firmware-key HEX
    """
    for value, flag in ((key_file, "--key-file FILE"), (gateway, "--gateway HOST:PORT")):
        if value is None:
            fail(f"give {flag}", EXIT_USAGE)
    if kind is None:
        fail(f"give the node's --kind: {', '.join(APP_FOR_KIND)}", EXIT_USAGE)
    if (port is None) == (virtual is None):
        fail("give the board: --port /dev/ttyUSB0, or --virtual DIR for a virtual one", EXIT_USAGE)
    if (wifi_key or wifi_country) and not wifi_ssid:
        fail("--wifi-key and --wifi-country go with --wifi-ssid", EXIT_USAGE)
    wifi = None
    if wifi_ssid:
        wifi = {"ssid": wifi_ssid, "key": wifi_key or ""}
        if wifi_country:
            wifi["country"] = wifi_country
    try:
        identity = read_key_file(key_file)
    except KeyFileError as e:
        fail(str(e), EXIT_USAGE)
    try:
        cfg = node_config(
            identity,
            gateway=gateway,
            kind=kind,
            app_name=app_name,
            board=board_name or ("virtual" if virtual is not None else None),
            authorities=authority,
            firmware_key=firmware_key,
            wifi=wifi,
            sample_s=sample_s,
            send_s=send_s,
        )
    except ValueError as e:
        fail(str(e), EXIT_USAGE)
    try:
        with open_board(port=port, virtual=virtual) as board:
            stored = provision_board(board, cfg, force=force)
            has_app = has_app_module(board, stored["app"])
            board.restart()
    except KapokError as e:
        fail(str(e), e.code)
    except OSError as e:
        fail(f"the board could not store the config: {e.strerror or e}")
    if not has_app:
        typer.secho(
            f"warning: the board has no app {stored['app']!r} yet: flash it before the node "
            f"can run (kapok fw flash --app {stored['app']})",
            err=True,
            fg=typer.colors.YELLOW,
        )
    auths = ", ".join(f"{kid} ({a[1]})" for kid, a in sorted(stored["authorities"].items()))
    host, gw_port = stored["gateway"]
    typer.echo(
        f"provisioned {stored['id']} on {port or virtual}: {stored['kind']}, app {stored['app']}, "
        f"gateway {host}:{gw_port}, authorities: {auths or 'none'}"
        + ("; the board restarts as this node" if port else "")
    )


# -- register ----------------------------------------------------------------------------


@app.command()
def register(
    device: str = typer.Argument(..., help="Device id: 1-16 characters of a-z, 0-9 and '-'."),
    kind: str = typer.Option(
        None,
        "--kind",
        help="gas-meter, water-meter, electricity-meter, water-quality or hub.",
        show_default=False,
    ),
    public_key: str = typer.Option(
        None, "--public-key", help="The node's Ed25519 public key (hex).", show_default=False
    ),
    key_file: Path = typer.Option(
        None,
        "--key-file",
        "-k",
        help="The node's key file (kapok device keygen): its public key is sent, never its "
        "secret (for a --mac node: the shared key, which the cloud must have).",
        show_default=False,
    ),
    gateway: str = typer.Option(
        None,
        "--gateway",
        help="The cloud's id of the gateway the node reaches it through (e.g. gw-3).",
        show_default=False,
    ),
    unit: int = typer.Option(
        None, "--unit", help="The unit (household) it measures, by its id in the cloud."
    ),
    board: str = typer.Option(None, "--board", help="esp32, rp2 or virtual (for rollouts)."),
    interval: int = typer.Option(
        None, "--interval", min=1, help="Seconds between its uplinks (to tell silence)."
    ),
    always_on: bool = typer.Option(
        None, "--always-on/--sleepy", help="Takes commands at once (hubs), or on its uplinks."
    ),
    cloud: str = typer.Option(
        None,
        "--cloud",
        envvar="KAPOK_CLOUD",
        help="The cloud's URL (default http://127.0.0.1:8000).",
    ),
    token: str = typer.Option(None, "--token", help="A login token (else $KAPOK_TOKEN)."),
    user: str = typer.Option(None, "--user", help="Log in as this user instead."),
    password: str = typer.Option(None, "--password", help="... with this password."),
) -> None:
    """Register a node with the cloud: its id, kind, key, gateway and unit.

    The cloud then verifies everything the node signs, and its gateway takes
    its uplinks. Prints the registration as JSON.

    Example:

      kapok device register gm-0001a3 --kind gas-meter --key-file gm-0001a3.key
      --gateway gw-3 --unit 12 --cloud http://127.0.0.1:8000 --user admin --password ...
    """
    import json

    from kapok.tools.cloudclient import DEFAULT_CLOUD, CloudClient

    if kind is None:
        fail(f"give the node's --kind: {', '.join(APP_FOR_KIND)}", EXIT_USAGE)
    if kind not in APP_FOR_KIND:
        fail(f"no kind {kind!r}: one of {', '.join(APP_FOR_KIND)}", EXIT_USAGE)
    if gateway is None:
        fail("give the node's gateway: --gateway GATEWAY_ID (e.g. gw-3)", EXIT_USAGE)
    if (public_key is None) == (key_file is None):
        fail("give the node's key: --public-key HEX or --key-file FILE (one of them)", EXIT_USAGE)
    body = {"id": device, "kind": kind, "gateway": gateway}
    if key_file is not None:
        try:
            identity = read_key_file(key_file)
        except KeyFileError as e:
            fail(str(e), EXIT_USAGE)
        if identity["device"] != device:
            fail(f"{key_file} is {identity['device']}'s key, not {device}'s", EXIT_USAGE)
        if identity["alg"] == ALG_EDDSA:
            body["public_key"] = identity["public_key"]
        else:
            body["mac_key"] = identity["key"]
    else:
        try:
            body["public_key"] = _public_key(public_key, "--public-key").hex()
        except ValueError as e:
            fail(str(e), EXIT_USAGE)
    for name, value in (
        ("unit", unit),
        ("board", board),
        ("interval", interval),
        ("always_on", always_on),
    ):
        if value is not None:
            body[name] = value
    try:
        with CloudClient.connect(
            cloud or DEFAULT_CLOUD, token=token, user=user, password=password
        ) as client:
            created = client.register_device(body)
    except KapokError as e:
        if getattr(e, "status", None) == 409:
            fail(f"{device} is registered already: {e}", e.code)
        fail(str(e), e.code)
    typer.echo(json.dumps(created, ensure_ascii=False))
    typer.secho(
        f"registered {device} ({kind}) to gateway {gateway}"
        + (f", unit {unit}" if unit is not None else ""),
        err=True,
    )
