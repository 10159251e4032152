"""`kapok verify`: re-check a signed reading against the node's public key,
or every row of a billing export against what the meters signed."""

import json
from pathlib import Path

import typer

from kapok.protocols import cbor, cose, messages
from kapok.tools.errors import EXIT_FAILED, EXIT_USAGE, KapokError, fail
from kapok.tools.keys import ALG_EDDSA, KeyFileError, read_key_file

EXPORT_SUFFIXES = (".csv", ".xlsx")


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
    message: str = typer.Argument(
        None,
        help="COSE message as hex, or a file (raw or hex); or a billing export (.csv, .xlsx).",
        show_default=False,
    ),
    public_key: str = typer.Option(None, "--public-key", help="Device Ed25519 public key (hex)."),
    mac_key: str = typer.Option(None, "--mac-key", help="Device HMAC key (hex), for COSE_Mac0."),
    key_file: Path = typer.Option(
        None, "--key-file", help="A key file from `kapok device keygen`."
    ),
    export: Path = typer.Option(
        None,
        "--export",
        help="A billing export (CSV or XLSX, from the cloud's billing page): check every row.",
        show_default=False,
    ),
    keys: Path = typer.Option(
        None,
        "--keys",
        help="For an export: the meters' public keys, JSON {device: hex}.",
        show_default=False,
    ),
    cloud: str = typer.Option(
        None, "--cloud", help="For an export: fetch the meters' public keys from this cloud."
    ),
    token: str = typer.Option(None, "--token", help="... with this login token ($KAPOK_TOKEN)."),
    user: str = typer.Option(None, "--user", help="... or logging in as this user."),
    password: str = typer.Option(None, "--password", help="... with this password."),
) -> None:
    """Re-verify a signed reading: prints the device, the verified payload,
    and exits 0; exits 1 saying why when it does not verify.

    With a billing export (--export FILE, or a .csv/.xlsx file as the
    argument) every row is checked: each boundary reading's COSE against
    the meter's public key (--keys FILE or --cloud), its seq and time, and
    the row's registers, consumption and unit total re-derived from the
    signed values. Rows that fail are listed; exit 1 when any does.

    With an audit export (`GET /api/v1/audit/export`, the audit page's CSV)
    the hash chain is re-derived: exit 1 naming the first entry removed or
    changed.

      kapok verify bill.csv --keys meters.json

      kapok verify --export bill.xlsx --cloud http://127.0.0.1:8000 --user admin --password ...
    """
    if export is None and message and _is_audit_export(Path(message)):
        verify_audit_command(Path(message))
        return
    if export is None and message and Path(message).suffix.lower() in EXPORT_SUFFIXES:
        export = Path(message)
    if export is not None:
        try:
            verify_export_command(export, keys, cloud, token, user, password)
        except KapokError as e:
            fail(str(e), e.code)
        return
    if message is None:
        fail("give the COSE message (hex or a file), or --export FILE", EXIT_USAGE)
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


# -- billing exports ---------------------------------------------------------------------


class ExportError(KapokError):
    pass


def read_export(path: Path) -> tuple[list[str], list[list]]:
    """(header, rows) of a CSV or XLSX billing export, cells as text."""
    try:
        if path.suffix.lower() == ".xlsx":
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True, data_only=True)
            table = [
                ["" if c is None else c for c in row]
                for row in wb.worksheets[0].iter_rows(values_only=True)
            ]
            wb.close()
        else:
            import csv
            import io

            text = path.read_bytes().decode("utf-8-sig")
            table = list(csv.reader(io.StringIO(text)))
    except FileNotFoundError:
        raise ExportError(f"{path}: no such file", EXIT_USAGE) from None
    except (OSError, ValueError, KeyError) as e:  # unreadable, not UTF-8, not a workbook
        raise ExportError(f"{path}: not a billing export ({e})", EXIT_USAGE) from None
    table = [row for row in table if any(str(c).strip() for c in row)]
    if not table:
        raise ExportError(f"{path}: empty", EXIT_USAGE)
    return [str(c) for c in table[0]], table[1:]


def _columns(header: list[str]) -> dict[str, int]:
    """Column key -> index, from Chinese or English headers."""
    from kapok.cloud.crud.billing import HEADERS

    names = {}
    for lang in HEADERS.values():
        for key, text in lang.items():
            names[text] = key
    out = {}
    for i, text in enumerate(header):
        key = names.get(text.strip())
        if key is not None:
            out[key] = i
    missing = [k for k in ("device", "utility", "start_time", "end_cose") if k not in out]
    if missing:
        raise ExportError(
            "not a Kapok billing export: no column for " + ", ".join(missing), EXIT_USAGE
        )
    return out


def _number(cell) -> float | None:
    if cell is None or str(cell).strip() == "":
        return None
    try:
        return float(cell)
    except ValueError:
        raise ValueError(f"{cell!r} is not a number") from None


def _instant(text) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(text).strip()).timestamp()


def _canonical(cell) -> str:
    """A cell's word in English (the Chinese export translates them)."""
    from kapok.cloud.crud.billing import WORDS

    back = {v: k for k, v in WORDS["zh-CN"].items()}
    text = str(cell).strip()
    return back.get(text, text)


class RowCheck:
    """One export row re-derived from the signed readings it rests on."""

    def __init__(self, cells: list, col: dict[str, int], capacity_of):
        self.cells = cells
        self.col = col
        self.capacity_of = capacity_of
        self.problems: list[str] = []
        self.consumption: float | None = None  # re-derived, unrounded

    def cell(self, key: str):
        i = self.col.get(key)
        return "" if i is None or i >= len(self.cells) else self.cells[i]

    def run(self, public_key: bytes | None) -> None:
        from kapok.cloud import billing
        from kapok.cloud.crud.billing import UTILITIES

        device = str(self.cell("device")).strip()
        utility = _canonical(self.cell("utility"))
        if utility not in UTILITIES:
            self.problems.append(f"unknown utility {self.cell('utility')!r}")
            return
        name = UTILITIES[utility][1]
        capacity = self.capacity_of(device, UTILITIES[utility][0])
        sides = {}
        for side in ("start", "end"):
            sides[side] = self._boundary(side, device, name, public_key, capacity)
            if sides[side] is None:
                return
        start, end = sides["start"], sides["end"]
        part = billing.part(start, end, capacity=capacity)
        self.consumption = part.consumption
        self._compare("consumption", part.consumption)

    def _boundary(self, side, device, name, public_key, capacity):
        from kapok.cloud import billing

        seqs = str(self.cell(f"{side}_seq")).split()
        times = str(self.cell(f"{side}_reading_time")).split()
        coses = str(self.cell(f"{side}_cose")).split()
        if not (len(seqs) == len(times) == len(coses)):
            self.problems.append(f"{side}: {len(seqs)} seqs, {len(times)} times, {len(coses)} COSE")
            return None
        if coses and public_key is None:
            self.problems.append(f"no public key for {device}")
            return None
        try:
            at = _instant(self.cell(f"{side}_time"))
            points = []
            for seq, t, hexmsg in zip(seqs, times, coses, strict=True):
                points.append(
                    self._signed_point(device, name, int(seq), _instant(t), hexmsg, public_key)
                )
        except ValueError as e:
            self.problems.append(f"{side}: {e}")
            return None
        flag = _canonical(self.cell(f"{side}_flag"))
        if len(points) == 0:
            value, want = None, billing.MISSING
        elif len(points) == 1:
            value, want = points[0].v, flag if flag in (billing.ACTUAL, billing.ESTIMATED) else "?"
        else:
            before, after = sorted(points, key=lambda p: p.t)
            b = billing.boundary(at, before, after, capacity=capacity, window=0)
            value, want = b.value, billing.ESTIMATED
        if flag != want:
            self.problems.append(f"{side} flag {flag} does not fit its {len(points)} readings")
        self._compare(f"{side}_value", value)
        used = tuple(points)
        return billing.Boundary(at, value, want, used)

    def _signed_point(self, device, name, seq, t, hexmsg, public_key):
        from kapok.cloud import billing

        try:
            msg = bytes.fromhex(hexmsg)
        except ValueError:
            raise ValueError(f"seq {seq}: the COSE is not hex") from None
        try:
            kid = cose.kid(msg).decode("utf-8", "replace")
        except ValueError as e:
            raise ValueError(f"seq {seq}: not a COSE message ({e})") from None
        if kid != device:
            raise ValueError(f"seq {seq}: a message of {kid}, not {device}")
        try:
            payload = cose.verify1(msg, public_key)
        except ValueError as e:
            raise ValueError(f"seq {seq}: the signature does NOT verify ({e})") from None
        uplink = messages.parse_uplink(payload, device)
        if uplink["seq"] != seq:
            raise ValueError(f"the message says seq {uplink['seq']}, the row {seq}")
        for r in uplink["readings"]:
            if r["n"] == name and r.get("t") is not None and abs(r["t"] - t) < 1:
                return billing.Point(r["t"], r["v"])
        raise ValueError(f"seq {seq} holds no {name} reading at the row's time")

    def _compare(self, key: str, derived: float | None) -> None:
        try:
            shown = _number(self.cell(key))
        except ValueError as e:
            self.problems.append(f"{key}: {e}")
            return
        if derived is None or shown is None:
            if derived != shown:
                self.problems.append(
                    f"{_LABEL[key]} is {shown}, the signed readings give {derived}"
                )
            return
        if abs(round(derived, 3) - shown) > 1e-6:
            self.problems.append(
                f"{_LABEL[key]} is {shown:.3f}, the signed readings give {round(derived, 3):.3f}"
            )


_LABEL = {
    "start_value": "start register",
    "end_value": "end register",
    "consumption": "consumption",
    "unit_total": "unit total",
}


def verify_rows(header: list[str], rows: list[list], public_keys: dict, capacities=None):
    """[(row number in the file, device, [problems])] for every row."""
    from kapok.cloud.crud.billing import DEFAULT_CAPACITY

    capacities = capacities or {}
    col = _columns(header)

    def capacity_of(device, kind):
        return capacities.get(device) or DEFAULT_CAPACITY[kind]

    checks = []
    for cells in rows:
        check = RowCheck(list(cells), col, capacity_of)
        device = str(check.cell("device")).strip()
        check.run(public_keys.get(device))
        checks.append(check)
    # a unit's total is the sum of its meters' parts (a replaced meter: two rows)
    units: dict[tuple, list[RowCheck]] = {}
    for check in checks:
        key = tuple(str(check.cell(k)) for k in ("month", "building", "unit", "utility"))
        units.setdefault(key, []).append(check)
    for group in units.values():
        parts = [c.consumption for c in group]
        total = None if any(p is None for p in parts) else sum(parts)
        for check in group:
            if not check.problems:
                check._compare("unit_total", total)
    return [(i + 2, str(c.cell("device")).strip(), c.problems) for i, c in enumerate(checks)]


def _export_keys(devices, keys_file, cloud, token, user, password):
    """{device: public key bytes} and {device: register capacity}."""
    public, capacities = {}, {}
    if keys_file is not None:
        try:
            given = json.loads(Path(keys_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ExportError(f"{keys_file}: not a JSON map of keys ({e})", EXIT_USAGE) from None
        if not isinstance(given, dict):
            raise ExportError(f"{keys_file}: expected {{device: public key hex}}", EXIT_USAGE)
        for device, key in given.items():
            key = key.get("public_key") if isinstance(key, dict) else key
            try:
                public[device] = bytes.fromhex(key)
            except (TypeError, ValueError):
                raise ExportError(
                    f"{keys_file}: the key of {device} is not hex", EXIT_USAGE
                ) from None
    if cloud is not None:
        from kapok.tools.cloudclient import CloudClient, CloudClientError

        with CloudClient.connect(cloud, token=token, user=user, password=password) as client:
            for device in sorted(devices - set(public)):
                try:
                    found = client.device(device)
                except CloudClientError as e:
                    if e.status == 404:
                        continue  # reported with its rows
                    raise
                if found.get("public_key"):
                    public[device] = bytes.fromhex(found["public_key"])
                if found.get("register_capacity"):
                    capacities[device] = found["register_capacity"]
    if keys_file is None and cloud is None:
        raise ExportError(
            "give the meters' public keys: --keys FILE (JSON {device: hex}) or --cloud URL",
            EXIT_USAGE,
        )
    return public, capacities


def verify_export_command(path, keys_file, cloud, token, user, password) -> None:
    header, rows = read_export(path)
    col = _columns(header)
    devices = {str(r[col["device"]]).strip() for r in rows if col["device"] < len(r)}
    public, capacities = _export_keys(devices, keys_file, cloud, token, user, password)
    results = verify_rows(header, rows, public, capacities)
    failed = [(n, d, p) for n, d, p in results if p]
    for number, device, problems in failed:
        typer.secho(f"row {number} ({device}): FAILS: {'; '.join(problems)}", fg=typer.colors.RED)
    ok = len(results) - len(failed)
    summary = f"{path.name}: {len(results)} rows, {ok} verified against the meters' signatures"
    if failed:
        typer.secho(f"{summary}, {len(failed)} FAIL", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.secho(summary, fg=typer.colors.GREEN)


AUDIT_HEADER = "id,at,actor,action,target,community,detail,prev_hash,hash"


def _is_audit_export(path: Path) -> bool:
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with path.open(encoding="utf-8", errors="replace") as f:
        return f.readline().strip() == AUDIT_HEADER


def verify_audit_command(path: Path) -> None:
    """Re-derive an audit export's hash chain from its first entry."""
    from kapok.cloud import auditchain
    from kapok.cloud.crud.audit import from_csv

    try:
        rows = from_csv(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError) as e:
        fail(f"{path}: not an audit export Kapok wrote: {e}", EXIT_USAGE)
    problems = auditchain.check(rows)
    if problems:
        for p in problems[:20]:
            typer.secho(p, fg=typer.colors.RED)
        fail(f"{path}: the audit chain is broken ({len(problems)} problems)", EXIT_FAILED)
    typer.secho(
        f"{path}: {len(rows)} audit entries, the chain is whole from its first entry",
        fg=typer.colors.GREEN,
    )
