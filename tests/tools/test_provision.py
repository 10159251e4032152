"""`kapok device provision`: the node's config map, built from a key file
and the installer's options, checked by the firmware's own config.validate
and stored by the firmware's own config.provision (atomic write, no
identity replaced without --force) into a virtual board's image folder
(--virtual) or onto a board over its serial console (--port, with
mpremote); the node then reads it at boot."""

import os
import tty

import pytest
from typer.testing import CliRunner

from kapok.protocols import cbor
from kapok.tools import board as board_mod
from kapok.tools.board import runtime_module
from kapok.tools.cli import app
from kapok.tools.device import parse_authority, parse_gateway
from kapok.tools.keys import read_key_file
from kapok.tools.virtualboard import VirtualBoard, build_image, config_file_name
from kapok.tools.virtualboard.console import SerialConsole

runner = CliRunner()
CLOUD = "ab" * 32
GW = "cd" * 32
FIRMWARE = "ef" * 32


def kapok(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code):
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def keyfile(tmp_path):
    def make(device="gm-0001a3", *extra):
        path = tmp_path / f"{device}.key"
        assert kapok("device", "keygen", device, "-o", path, *extra).exit_code == 0
        return path

    return make


@pytest.fixture
def image(tmp_path):
    """A virtual board flashed with the meter firmware, not provisioned."""
    return build_image(tmp_path / "img", app="meter")


def stored(img):
    return cbor.loads((img / "data" / config_file_name()).read_bytes())


def provision(target, key, *extra):
    where = ["--virtual", target] if not isinstance(target, str) else ["--port", target]
    return kapok(
        "device", "provision", *where, "--key-file", key,
        "--gateway", "192.168.1.10:5683", "--kind", "gas-meter", *extra,
    )  # fmt: skip


def test_provision_writes_the_config_the_node_validates(image, keyfile):
    key = keyfile()
    result = provision(
        image, key,
        "--authority", f"cloud={CLOUD}", "--authority", f"gw-3={GW}",
        "--firmware-key", FIRMWARE, "--wifi-ssid", "kapok-net", "--wifi-key", "s3cret",
        "--send-s", "1800",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "provisioned gm-0001a3" in result.stdout
    assert not result.stderr  # the board has the app: nothing to warn of
    cfg = stored(image)
    identity = read_key_file(key)
    assert cfg["id"] == "gm-0001a3" and cfg["seed"] == bytes.fromhex(identity["seed"])
    assert (cfg["kind"], cfg["app"], cfg["board"]) == ("gas-meter", "meter", "virtual")
    assert cfg["gateway"] == ["192.168.1.10", 5683]
    assert cfg["authorities"] == {
        "cloud": [bytes.fromhex(CLOUD), "all"],
        "gw-3": [bytes.fromhex(GW), "failsafe"],
        "firmware": [bytes.fromhex(FIRMWARE), "firmware"],
    }
    assert cfg["options"] == {"wifi": {"ssid": "kapok-net", "key": "s3cret"}}
    assert (cfg["send_s"], cfg["sample_s"]) == (1800, 900)
    # exactly what the firmware's own loader accepts at boot
    config = runtime_module("config")
    assert config.validate(cfg) == cfg
    assert not list((image / "data").glob("*.new"))  # written then renamed


def test_a_mac_identity_is_stored_as_the_shared_key(image, keyfile):
    key = keyfile("wq-7", "--mac")
    result = kapok(
        "device", "provision", "--virtual", image, "--key-file", key,
        "--gateway", "gw.local", "--kind", "water-quality",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg = stored(image)
    assert cfg["mac_key"] == bytes.fromhex(read_key_file(key)["key"]) and "seed" not in cfg
    assert cfg["app"] == "water_quality"  # the kind's app
    assert cfg["gateway"] == ["gw.local", 5683]
    # the image holds the meter app only: the installer hears of it
    assert "warning: the board has no app 'water_quality'" in result.stderr


def test_another_identity_is_refused_without_force(image, keyfile):
    assert provision(image, keyfile("gm-0001a3")).exit_code == 0
    before = (image / "data" / config_file_name()).read_bytes()
    other = keyfile("gm-0001a4")
    refused = provision(image, other)
    one_line_error(refused, 1)
    assert "already has an identity" in refused.stderr and "--force" in refused.stderr
    assert (image / "data" / config_file_name()).read_bytes() == before

    forced = provision(image, other, "--force")
    assert forced.exit_code == 0, forced.output
    assert stored(image)["id"] == "gm-0001a4"


def test_the_same_identity_takes_new_settings_without_force(image, keyfile):
    key = keyfile()
    assert provision(image, key).exit_code == 0
    again = provision(image, key, "--sample-s", "60", "--authority", f"cloud={CLOUD}")
    assert again.exit_code == 0, again.output
    assert stored(image)["sample_s"] == 60 and "cloud" in stored(image)["authorities"]


def test_an_unreadable_old_config_is_no_identity(image, keyfile):
    # the node itself treats a config it cannot decode as absent
    (image / "data" / config_file_name()).write_bytes(b"\xff\x00 torn write")
    result = provision(image, keyfile())
    assert result.exit_code == 0, result.output
    assert stored(image)["id"] == "gm-0001a3"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--gateway", "gw:99999"], "port 1-65535"),
        (["--gateway", "fe80::1"], "[address]:port"),
        (["--kind", "toaster"], "kind must be one of"),
        (["--authority", "cloud=abcd"], "64 hex digits"),
        (["--authority", "gw-3"], "KID=HEX"),
        (["--authority", f"gw-3={GW}:root"], "bad role"),
        (["--firmware-key", "zz"], "64 hex digits"),
        (["--wifi-key", "x"], "--wifi-ssid"),
        (["--sample-s", "0"], "sample_s"),
        (["--app", "Meter!"], "app"),
    ],
)
def test_wrong_arguments_are_one_line_exit_2_and_write_nothing(image, keyfile, args, needle):
    key = keyfile()
    base = {"--gateway": "10.0.0.2:5683", "--kind": "gas-meter"}
    for flag in args[::2]:
        base.pop(flag, None)
    extra = [x for pair in base.items() for x in pair]
    result = kapok("device", "provision", "--virtual", image, "--key-file", key, *extra, *args)
    one_line_error(result, 2)
    assert needle in result.stderr
    assert not (image / "data" / config_file_name()).exists()


def test_missing_things_are_one_line_errors(tmp_path, image, keyfile):
    key = keyfile()
    one_line_error(provision(image, tmp_path / "nope.key"), 2)
    no_target = kapok("device", "provision", "--key-file", key, "--gateway", "h", "--kind", "hub")
    one_line_error(no_target, 2)
    both = kapok(
        "device", "provision", "--virtual", image, "--port", "/dev/ttyUSB0",
        "--key-file", key, "--gateway", "h", "--kind", "hub",
    )  # fmt: skip
    one_line_error(both, 2)
    missing_image = provision(tmp_path / "no-such-board", key)
    one_line_error(missing_image, 3)
    assert "board not found" in missing_image.stderr
    missing_port = provision(str(tmp_path / "ttyUSB7"), key)
    one_line_error(missing_port, 3)
    assert "board not found" in missing_port.stderr


def test_a_silent_port_is_one_line_exit_3(keyfile, monkeypatch):
    monkeypatch.setattr(board_mod, "REPL_TIMEOUT_S", 1)
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        result = provision(os.ttyname(slave), keyfile())
    finally:
        os.close(master)
        os.close(slave)
    one_line_error(result, 3)
    assert "does not answer" in result.stderr


def test_provision_over_serial_and_the_node_boots_with_it(image, keyfile):
    key = keyfile()
    with VirtualBoard(image, power_on=False) as vb, SerialConsole(vb) as console:
        result = provision(console.port, key, "--authority", f"cloud={CLOUD}")
        assert result.exit_code == 0, result.output
        # the same bytes an image-folder provisioning writes
        cfg = stored(image)
        assert cfg["id"] == "gm-0001a3" and cfg["authorities"]["cloud"][1] == "all"
        # the board restarted into its firmware: the node starts with it
        assert vb.wait_console("kapok:", timeout=30) is not None, "\n".join(vb.console)
        assert not [line for line in vb.console if "provision this node first" in line]

        refused = provision(console.port, keyfile("gm-0001a4"))
        one_line_error(refused, 1)
        assert "--force" in refused.stderr
        assert stored(image)["id"] == "gm-0001a3"


def test_gateway_and_authority_syntax():
    assert parse_gateway("10.0.0.2") == ["10.0.0.2", 5683]
    assert parse_gateway("gw.example:6000") == ["gw.example", 6000]
    assert parse_gateway("[fd00::2]:5684") == ["fd00::2", 5684]
    assert parse_gateway("[fd00::2]") == ["fd00::2", 5683]
    for bad in ("", ":5683", "h:", "h:x", "[fd00::2", "[fd00::2]x"):
        with pytest.raises(ValueError):
            parse_gateway(bad)
    assert parse_authority(f"cloud={CLOUD}") == ("cloud", [bytes.fromhex(CLOUD), "all"])
    assert parse_authority(f"gw-3={GW}")[1][1] == "failsafe"
    assert parse_authority(f"ops={GW}:all")[1][1] == "all"
