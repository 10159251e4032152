import json
import stat

from typer.testing import CliRunner

from kapok.protocols import cose, ed25519
from kapok.tools.cli import app
from kapok.tools.keys import read_key_file

runner = CliRunner()


def test_keygen_writes_a_0600_key_file_and_prints_the_public_key(tmp_path):
    path = tmp_path / "gm-0001a3.key"
    result = runner.invoke(app, ["device", "keygen", "gm-0001a3", "-o", str(path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    identity = read_key_file(path)
    seed = bytes.fromhex(identity["seed"])
    assert result.stdout.splitlines()[0] == ed25519.public_key(seed).hex()
    # the key signs messages the printed public key verifies
    msg = cose.sign1(b"\xa1\x01\x01", seed, b"gm-0001a3")
    assert cose.verify1(msg, bytes.fromhex(result.stdout.split()[0])) == b"\xa1\x01\x01"


def test_keygen_never_overwrites_an_identity_without_force(tmp_path):
    path = tmp_path / "k.key"
    assert runner.invoke(app, ["device", "keygen", "wm-1", "-o", str(path)]).exit_code == 0
    before = path.read_text()
    again = runner.invoke(app, ["device", "keygen", "wm-1", "-o", str(path)])
    assert again.exit_code == 1
    assert "--force" in again.stderr
    assert "Traceback" not in again.output
    assert path.read_text() == before
    forced = runner.invoke(app, ["device", "keygen", "wm-1", "-o", str(path), "--force"])
    assert forced.exit_code == 0
    assert path.read_text() != before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keygen_mac_key_for_boards_too_slow_to_sign(tmp_path):
    path = tmp_path / "k.key"
    result = runner.invoke(app, ["device", "keygen", "wq-7", "--mac", "-o", str(path)])
    assert result.exit_code == 0
    identity = json.loads(path.read_text())
    assert identity["alg"] == "HMAC 256/64"
    assert len(bytes.fromhex(result.stdout.split()[0])) == 32


def test_keygen_refuses_a_bad_device_id_with_one_line(tmp_path):
    result = runner.invoke(app, ["device", "keygen", "Gas Meter 1", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "bad device id" in result.stderr
    assert not (tmp_path / "x").exists()
