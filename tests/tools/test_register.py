"""`kapok device register` against a real `kapok cloud serve` (SQLite), as
an installer uses it: a key file or a public key, a login or a token, and
every way it goes wrong said in one line with an exit code scripts trust."""

import json

import pytest

from kapok.protocols import ed25519
from kapok.tools.keys import new_identity, write_key_file
from tests.e2e.helpers import ADMIN_PASSWORD, Stack, free_port, kapok


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("register")
    s = Stack(folder, f"sqlite:///{folder / 'kapok.db'}")
    try:
        s.set_up(agent=False)
        yield s
    finally:
        s.tear_down()


def one_line_error(result, code: int, *words: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_register_with_a_key_file_then_again(stack, tmp_path):
    key = tmp_path / "gm-reg-1.key"
    kapok("device", "keygen", "gm-reg-1", "--out", key)
    args = [
        "device", "register", "gm-reg-1", "--kind", "gas-meter", "--key-file", key,
        "--gateway", stack.gateway, "--unit", stack.units[0], "--board", "esp32",
        "--cloud", stack.url, "--user", "admin", "--password", ADMIN_PASSWORD,
    ]  # fmt: skip
    result = kapok(*args)
    shown = json.loads(result.stdout)
    public = json.loads(key.read_text())["public_key"]
    assert shown["id"] == "gm-reg-1" and shown["public_key"] == public
    device = stack.admin.device("gm-reg-1")
    assert device["unit"] == stack.units[0] and device["gateway"] == stack.gateway
    assert device["board"] == "esp32" and device["kind"] == "gas-meter"
    assert "seed" not in result.stdout and json.loads(key.read_text())["seed"] not in result.output

    again = kapok(*args, ok=False)
    one_line_error(again, 1, "gm-reg-1 is registered already")


def test_register_with_a_public_key_and_a_token_from_the_environment(stack, monkeypatch):
    public = ed25519.public_key(bytes(range(32))).hex()
    monkeypatch.setenv("KAPOK_TOKEN", stack.admin.token)
    kapok(
        "device", "register", "hub-reg-1", "--kind", "hub", "--public-key", public,
        "--gateway", stack.gateway, "--always-on", "--cloud", stack.url,
    )  # fmt: skip
    device = stack.admin.device("hub-reg-1")
    assert device["public_key"] == public and device["always_on"] is True
    assert device["unit"] is None


def test_a_mac0_node_gives_its_shared_key(stack, tmp_path):
    key = tmp_path / "wq-reg-1.key"
    write_key_file(key, new_identity("wq-reg-1", mac=True))
    kapok(
        "device", "register", "wq-reg-1", "--kind", "water-quality", "--key-file", key,
        "--gateway", stack.gateway, "--cloud", stack.url, "--token", stack.admin.token,
    )  # fmt: skip
    device = stack.admin.device("wq-reg-1")
    assert device["has_mac_key"] is True and device["public_key"] is None


@pytest.mark.parametrize(
    ("login", "code", "words"),
    [
        (["--user", "admin", "--password", "wrong"], 1, ["refused", "401"]),
        (["--token", "not-a-token"], 1, ["refused", "401"]),
    ],
)
def test_a_refused_login_is_one_line(stack, login, code, words):
    public = ed25519.public_key(bytes(32)).hex()
    result = kapok(
        "device", "register", "gm-reg-2", "--kind", "gas-meter", "--public-key", public,
        "--gateway", stack.gateway, "--cloud", stack.url, *login, ok=False,
    )  # fmt: skip
    one_line_error(result, code, *words)


def test_the_cloud_down_is_exit_3(stack):
    public = ed25519.public_key(bytes(32)).hex()
    nobody = f"http://127.0.0.1:{free_port()}"
    result = kapok(
        "device", "register", "gm-reg-3", "--kind", "gas-meter", "--public-key", public,
        "--gateway", stack.gateway, "--cloud", nobody, "--token", "t", ok=False,
    )  # fmt: skip
    one_line_error(result, 3, "cannot reach the cloud", nobody)


def test_what_the_cloud_refuses_is_said_in_its_words(stack):
    public = ed25519.public_key(bytes(32)).hex()
    result = kapok(
        "device", "register", "gm-reg-4", "--kind", "gas-meter", "--public-key", public,
        "--gateway", "gw-nowhere", "--cloud", stack.url, "--token", stack.admin.token, ok=False,
    )  # fmt: skip
    one_line_error(result, 1, "gw-nowhere", "404")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--gateway", "gw-1", "--public-key", "00" * 32], ["--kind"]),
        (["--kind", "toaster", "--gateway", "gw-1", "--public-key", "00" * 32], ["toaster"]),
        (["--kind", "hub", "--public-key", "00" * 32], ["--gateway"]),
        (["--kind", "hub", "--gateway", "gw-1"], ["--public-key", "--key-file"]),
        (["--kind", "hub", "--gateway", "gw-1", "--public-key", "abcd"], ["64 hex digits"]),
        (["--kind", "hub", "--gateway", "gw-1", "--public-key", "00" * 32], ["--token"]),
    ],
)
def test_usage_errors_are_exit_2(args, words, monkeypatch, tmp_path):
    monkeypatch.delenv("KAPOK_TOKEN", raising=False)
    result = kapok("device", "register", "hub-x", *args, "--cloud", "http://127.0.0.1:9", ok=False)
    one_line_error(result, 2, *words)


def test_a_key_file_of_another_node_is_refused(tmp_path):
    key = tmp_path / "other.key"
    write_key_file(key, new_identity("gm-other"))
    result = kapok(
        "device", "register", "gm-reg-5", "--kind", "gas-meter", "--key-file", key,
        "--gateway", "gw-1", ok=False,
    )  # fmt: skip
    one_line_error(result, 2, "gm-other")
