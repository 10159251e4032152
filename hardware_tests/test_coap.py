"""A CoAP exchange with the host: the node's runtime CoAP client sends a
signed uplink (Confirmable POST /u) over the board's network to a server on
this computer (aiocoap), which verifies it and answers 2.04 Changed with the
reply body; the board reads the answer."""

import ast

from hardware_tests.conftest import DEVICE
from kapok.protocols import coap_numbers, messages


def test_the_board_posts_a_signed_uplink_and_reads_the_2_04(board, node, gateway):
    before = len(gateway.uplinks)
    got = ast.literal_eval(
        board.run(
            f"import kapok_hwtest\nkapok_hwtest.post_uplink({gateway.host!r}, {gateway.port})",
            timeout=180,
        )
    )
    assert "error" not in got, got
    assert got["code"] == coap_numbers.CHANGED
    reply = messages.parse_reply(bytes.fromhex(got["payload"]))
    assert reply["acked_seq"] == got["seq"]
    # the server verified the node's signature and saw that seq
    mine = [u for u in gateway.uplinks[before:] if u["device"] == DEVICE]
    assert got["seq"] in [u["seq"] for u in mine]
