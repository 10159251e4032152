"""Provisioning and config validation."""

import pytest
from runtime import config
from runtime.store import Store

from tests.firmware.runtime.conftest import SEED, make_config


def test_provision_fills_defaults_and_loads_back(tmp_path, keys):
    s = Store(str(tmp_path))
    cfg = make_config(keys)
    del cfg["sample_s"], cfg["send_s"]
    stored = config.provision(s, cfg)
    assert stored["sample_s"] == 900 and stored["send_s"] == 3600
    assert config.load(s) == stored
    ident = config.identity(stored)
    assert ident.kid == b"gm-0001a3" and ident.content_format == 18


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "GM-1"}, "id must be"),
        ({"id": "x" * 17}, "id must be"),
        ({"kind": "toaster"}, "kind must be"),
        ({"app": "Meter!"}, "bad character"),
        ({"gateway": ["gw", 0]}, "gateway"),
        ({"gateway": "gw:5683"}, "gateway"),
        ({"seed": b"short"}, "seed must be 32 bytes"),
        ({"mac_key": bytes(32)}, "exactly one"),
        ({"seed": None}, "exactly one"),
        ({"authorities": {"cloud": [bytes(32), "root"]}}, "role must be"),
        ({"authorities": {"cloud": [b"x", "all"]}}, "public key must be 32 bytes"),
        ({"sample_s": 0}, "sample_s"),
        ({"send_s": True}, "send_s"),
        ({"thresholds": []}, "thresholds"),
        ({"colour": "red"}, "unknown config key"),
    ],
)
def test_validation_errors_say_what_is_wrong(keys, change, message):
    with pytest.raises(config.ConfigError, match=message):
        config.validate(make_config(keys, **change))


def test_mac0_identity(keys):
    cfg = make_config(keys, mac_key=bytes(range(32)))
    del cfg["seed"]
    ident = config.identity(config.validate(cfg))
    assert ident.content_format == 17
    assert ident.public_key() is None


def test_identity_is_written_once_unless_forced(tmp_path, keys):
    s = Store(str(tmp_path))
    config.provision(s, make_config(keys))
    # same identity, new gateway: fine
    config.provision(s, make_config(keys, gateway=["10.0.0.2", 5683]))
    assert config.load(s)["gateway"] == ["10.0.0.2", 5683]
    other = make_config(keys, seed=bytes(32))
    with pytest.raises(config.ConfigError, match="already has an identity"):
        config.provision(s, other)
    with pytest.raises(config.ConfigError, match="already device"):
        config.provision(s, make_config(keys, id="gm-other"))
    assert config.load(s)["seed"] == SEED
    config.provision(s, other, force=True)
    assert config.load(s)["seed"] == bytes(32)


def test_update_keeps_identity(tmp_path, keys):
    s = Store(str(tmp_path))
    cfg = config.provision(s, make_config(keys))
    new = config.update(s, cfg, {"send_s": 120})
    assert config.load(s)["send_s"] == 120 == new["send_s"]
    with pytest.raises(config.ConfigError, match="identity"):
        config.update(s, cfg, {"seed": bytes(32)})
    with pytest.raises(config.ConfigError):
        config.update(s, cfg, {"send_s": -1})
    assert config.load(s)["send_s"] == 120


def test_corrupt_or_invalid_config_means_not_provisioned(tmp_path, keys):
    s = Store(str(tmp_path))
    (tmp_path / "config.cbor").write_bytes(b"\xa1")
    assert config.load(s) is None
    s.write("config.cbor", {"id": "x"})
    assert config.load(s) is None
