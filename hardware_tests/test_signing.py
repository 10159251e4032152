"""Signing on the board: the node seals a payload with its key (COSE_Sign1,
Ed25519, in MicroPython) and the host verifies it with the public key from
the key file, as the gateway and the cloud do."""

import ast

import pytest

from hardware_tests.conftest import DEVICE
from kapok.protocols import cose, messages


def test_the_board_signs_what_the_host_verifies(board, node):
    payload = messages.build_uplink(7, 1767225600, events=[("boot", 1767225600, 0)])
    msg = bytes.fromhex(
        ast.literal_eval(board.run(f"import kapok_hwtest\nkapok_hwtest.sign({payload.hex()!r})"))
    )
    assert cose.kid(msg) == DEVICE.encode()
    assert cose.alg(msg) == -8  # EdDSA
    assert cose.verify1(msg, bytes.fromhex(node["public_key"])) == payload

    # one bit changed anywhere in the signature, and it no longer verifies
    tampered = bytearray(msg)
    tampered[-1] ^= 0x01
    with pytest.raises(ValueError):
        cose.verify1(bytes(tampered), bytes.fromhex(node["public_key"]))


def test_ed25519_signatures_are_deterministic_on_the_board(board, node):
    # RFC 8032: the same key and message give the same signature, so a
    # retransmitted uplink is byte for byte the one the gateway saw
    code = "import kapok_hwtest\nkapok_hwtest.sign('a10101')"
    assert board.run(code) == board.run(code)
