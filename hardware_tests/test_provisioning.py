"""Provisioning: `kapok device provision` writes the node's identity and
settings onto the board, the node's own runtime reads them back there, and
an identity is never replaced without --force."""

import ast

from hardware_tests.conftest import DEVICE, KIND, OTHER_DEVICE


def stored_config(board) -> dict:
    return ast.literal_eval(board.run("import kapok_hwtest\nkapok_hwtest.node_config()"))


def test_the_node_reads_the_provisioned_identity_and_settings(board, node, gateway):
    cfg = stored_config(board)
    assert cfg["id"] == DEVICE
    assert cfg["kind"] == KIND
    assert cfg["app"] == "meter"
    assert cfg["gateway"] == [gateway.host, gateway.port]
    # the board's key is the key file's: it derives the same public key
    assert cfg["public_key"] == node["public_key"]
    assert cfg["board"] == board.name


def test_another_identity_is_refused_without_force_and_taken_with_it(board, node, keys, provision):
    other = keys[OTHER_DEVICE]
    refused = provision(other["path"])
    assert refused.exit_code == 1
    assert "--force" in refused.stderr
    assert refused.stderr.count("\n") == 1  # one line, no traceback
    assert stored_config(board)["public_key"] == node["public_key"]

    forced = provision(other["path"], "--force")
    assert forced.exit_code == 0, forced.output
    cfg = stored_config(board)
    assert (cfg["id"], cfg["public_key"]) == (OTHER_DEVICE, other["public_key"])


def test_the_same_identity_is_provisioned_again_with_new_settings(board, node, provision):
    result = provision(node["path"], "--send-s", "600")
    assert result.exit_code == 0, result.output
    assert stored_config(board)["id"] == DEVICE
    read = board.run(
        "import board\nfrom runtime import config\nfrom runtime.store import Store\n"
        "print(config.load(Store(board.DATA_DIR))['send_s'])"
    )
    assert read.strip() == "600"
