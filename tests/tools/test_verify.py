import json

from typer.testing import CliRunner

from kapok.protocols import cose, messages, senml
from kapok.tools.cli import app
from kapok.tools.keys import new_identity, write_key_file

runner = CliRunner()
SEED = bytes(range(32))
PUBLIC = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"


def signed_reading(seq=7, vol=12.5):
    payload = messages.build_uplink(seq, 1767225600, compact=senml.compact(1, [vol, 3.5, -100]))
    return cose.sign1(payload, SEED, b"gm-1")


def test_a_genuine_reading_verifies_and_is_shown():
    result = runner.invoke(app, ["verify", signed_reading().hex(), "--public-key", PUBLIC])
    assert result.exit_code == 0, result.output
    assert "gm-1: signature OK" in result.stdout
    shown = json.loads(result.stdout.splitlines()[1])
    assert shown["seq"] == 7
    assert shown["readings"][0] == {
        "n": "vol",
        "u": "m3",
        "v": 12.5,
        "t": 1767225600,
        "time_source": "message",
    }


def test_an_altered_reading_fails_with_exit_1(tmp_path):
    genuine = signed_reading(vol=12.5)
    forged_payload = cose.decode(signed_reading(vol=99.5))[3]
    # same signature, payload swapped for one with another register value
    forged = genuine.replace(cose.decode(genuine)[3], forged_payload)
    assert forged != genuine
    result = runner.invoke(app, ["verify", forged.hex(), "--public-key", PUBLIC])
    assert result.exit_code == 1
    assert "does NOT verify" in result.stderr


def test_message_from_a_file_raw_or_hex_and_a_key_file(tmp_path):
    identity = new_identity("gm-1")
    key = tmp_path / "gm-1.key"
    write_key_file(key, identity)
    msg = cose.sign1(b"\xa1\x01\x05", bytes.fromhex(identity["seed"]), b"gm-1")
    (tmp_path / "m.bin").write_bytes(msg)
    (tmp_path / "m.hex").write_text(msg.hex() + "\n")
    for name in ("m.bin", "m.hex"):
        result = runner.invoke(app, ["verify", str(tmp_path / name), "--key-file", str(key)])
        assert result.exit_code == 0, result.output


def test_key_file_of_another_device_is_refused(tmp_path):
    key = tmp_path / "other.key"
    write_key_file(key, new_identity("gm-2"))
    result = runner.invoke(app, ["verify", signed_reading().hex(), "--key-file", str(key)])
    assert result.exit_code == 1
    assert "gm-2" in result.stderr


def test_mac0_reading_needs_the_shared_key():
    key = bytes(range(32, 64))
    msg = cose.mac0(b"\xa1\x01\x05", key, b"wq-1").hex()
    assert runner.invoke(app, ["verify", msg, "--mac-key", key.hex()]).exit_code == 0
    wrong = runner.invoke(app, ["verify", msg, "--mac-key", bytes(32).hex()])
    assert wrong.exit_code == 1
    no_key = runner.invoke(app, ["verify", msg, "--public-key", PUBLIC])
    assert no_key.exit_code == 1
    assert "shared key" in no_key.stderr


def test_garbage_and_usage_errors_are_one_line():
    for args, code in (
        (["verify", "zz-not-hex"], 2),
        (["verify", "a1", "--public-key", PUBLIC], 1),
        (["verify", signed_reading().hex()], 2),
        (["verify", signed_reading().hex(), "--public-key", "abcd"], 2),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output
        assert result.stderr.startswith("error: ")
