# The node's configuration: one CBOR map in DATA_DIR/config.cbor, written
# atomically by `provision` (installer, over the serial REPL) and `update`
# (e.g. the interval.set command). Keys:
#
#   "id"          device id, 1-16 chars of [a-z0-9-]; the COSE kid
#   "kind"        "gas-meter" | "water-meter" | "electricity-meter" |
#                 "water-quality" | "hub"
#   "app"         the app module under apps/ ("meter", "water_quality", "hub")
#   "board"       the board it was provisioned for (informational)
#   "gateway"     [host, port] of the gateway's CoAP endpoint
#   "seed"        32-byte Ed25519 seed (Sign1 nodes)   } exactly one:
#   "mac_key"     32-byte HMAC key (Mac0 nodes)        } the identity
#   "authorities" {kid: [32-byte Ed25519 public key, role]}; role "all" (the
#                 cloud: any op), "failsafe" (a gateway: valve.close,
#                 siren.on only) or "firmware" (signs release manifests only)
#   "sample_s"    seconds between samples            (default 900)
#   "send_s"      seconds between uplinks            (default 3600)
#   "thresholds"  {reading name: number or [low|None, high|None]}
#   "options"     app- and board-specific settings (a map)
#
# The identity is written once: provisioning again with a different key is
# refused unless forced, so a mistyped command cannot orphan a registered
# meter. Errors are ConfigError (a ValueError) saying which key is wrong.

from protocols import messages

from .identity import Identity

NAME = "config.cbor"
KINDS = ("gas-meter", "water-meter", "electricity-meter", "water-quality", "hub")
ROLES = ("all", "failsafe", "firmware")
DEFAULTS = {"sample_s": 900, "send_s": 3600}
_MAX_INTERVAL = 0xFFFFFFFF


class ConfigError(ValueError):
    pass


def _int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _key32(x, what):
    if isinstance(x, (bytearray, memoryview)):
        x = bytes(x)
    if not isinstance(x, bytes) or len(x) != 32:
        raise ConfigError(what + " must be 32 bytes")
    return x


def _name(x, what):
    if not isinstance(x, str) or not 1 <= len(x) <= 32:
        raise ConfigError(what + " must be 1-32 characters")
    for c in x:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "_" or c == "-"):
            raise ConfigError(f"bad character {c!r} in {what}")
    return x


def validate(cfg):
    """A checked copy of `cfg` with defaults filled in; ConfigError if bad."""
    if not isinstance(cfg, dict):
        raise ConfigError("config must be a map")
    out = {}
    for k in DEFAULTS:
        out[k] = DEFAULTS[k]
    out["thresholds"] = {}
    out["options"] = {}
    out["authorities"] = {}
    for k in cfg:
        out[k] = cfg[k]
    known = (
        "id",
        "kind",
        "app",
        "board",
        "gateway",
        "seed",
        "mac_key",
        "authorities",
        "sample_s",
        "send_s",
        "thresholds",
        "options",
    )
    for k in out:
        if k not in known:
            raise ConfigError(f"unknown config key {k!r}")
    if not messages.valid_device_id(out.get("id")):
        raise ConfigError("id must be 1-16 chars of a-z, 0-9, - (got {!r})".format(out.get("id")))
    if out.get("kind") not in KINDS:
        raise ConfigError("kind must be one of {}".format(", ".join(KINDS)))
    _name(out.get("app"), "app")
    if "board" in out:
        _name(out["board"], "board")
    gw = out.get("gateway")
    if (
        not isinstance(gw, (list, tuple))
        or len(gw) != 2
        or not isinstance(gw[0], str)
        or not gw[0]
        or not _int(gw[1])
        or not 0 < gw[1] < 65536
    ):
        raise ConfigError("gateway must be [host, port]")
    out["gateway"] = [gw[0], gw[1]]
    has_seed = out.get("seed") is not None
    has_mac = out.get("mac_key") is not None
    if has_seed == has_mac:
        raise ConfigError("identity: give exactly one of seed (Ed25519) and mac_key (HMAC)")
    if has_seed:
        out["seed"] = _key32(out["seed"], "seed")
        out.pop("mac_key", None)
    else:
        out["mac_key"] = _key32(out["mac_key"], "mac_key")
        out.pop("seed", None)
    auths = out["authorities"]
    if not isinstance(auths, dict):
        raise ConfigError("authorities must be a map {kid: [public key, role]}")
    checked = {}
    for kid in auths:
        if not isinstance(kid, str) or not 1 <= len(kid) <= 32:
            raise ConfigError("authority kid must be 1-32 characters")
        a = auths[kid]
        if not isinstance(a, (list, tuple)) or len(a) != 2:
            raise ConfigError(f"authority {kid!r} must be [public key, role]")
        if a[1] not in ROLES:
            raise ConfigError("authority {!r} role must be one of {}".format(kid, ", ".join(ROLES)))
        checked[kid] = [_key32(a[0], f"authority {kid!r} public key"), a[1]]
    out["authorities"] = checked
    for k in ("sample_s", "send_s"):
        if not _int(out[k]) or not 1 <= out[k] <= _MAX_INTERVAL:
            raise ConfigError(f"{k} must be whole seconds from 1 to 2**32-1")
    if not isinstance(out["thresholds"], dict):
        raise ConfigError("thresholds must be a map")
    if not isinstance(out["options"], dict):
        raise ConfigError("options must be a map")
    return out


def load(store):
    """The stored config, validated; None when there is none (or it is
    unreadable: the node then waits to be provisioned)."""
    cfg = store.read(NAME)
    if cfg is None:
        return None
    try:
        return validate(cfg)
    except ConfigError:
        return None


def _same_identity(a, b):
    return a.get("seed") == b.get("seed") and a.get("mac_key") == b.get("mac_key")


def provision(store, cfg, force=False):
    """Validate and store `cfg`. A node that already has a different
    identity keeps it unless `force` (its registration would be orphaned)."""
    new = validate(cfg)
    old = store.read(NAME)
    has_identity = isinstance(old, dict) and (
        old.get("seed") is not None or old.get("mac_key") is not None
    )
    if has_identity and not force:
        if not _same_identity(old, new):
            raise ConfigError(
                "this node already has an identity (device {!r}); provision with force=True "
                "to replace it".format(old.get("id"))
            )
        if old.get("id") != new["id"]:
            raise ConfigError(
                "this node is already device {!r}; rename it with force=True".format(old.get("id"))
            )
    store.write(NAME, new)
    return new


def update(store, cfg, changes):
    """Store `cfg` with `changes` applied (never the identity); returns the
    new config."""
    for k in changes:
        if k in ("id", "seed", "mac_key"):
            raise ConfigError("the identity is changed only by provisioning")
    new = dict(cfg)
    for k in changes:
        new[k] = changes[k]
    new = validate(new)
    store.write(NAME, new)
    return new


def identity(cfg):
    return Identity(cfg["id"], cfg.get("seed"), cfg.get("mac_key"))
