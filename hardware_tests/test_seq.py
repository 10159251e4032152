"""Seq persistence: the node's uplink counter never goes back, across a
hard reset (the board restarts as from its reset pin, the node's firmware
runs, and whatever was not on the flash is lost)."""

import ast


def next_seqs(board, n=3) -> list[int]:
    return ast.literal_eval(board.run(f"import kapok_hwtest\nkapok_hwtest.seq_next({n})"))


def test_seq_after_a_hard_reset_is_above_every_seq_before(board, node):
    before = next_seqs(board)
    assert before == sorted(set(before))
    board.reset(hard=True)
    board.reconnect()
    after = next_seqs(board)
    assert min(after) > max(before)


def test_seq_is_never_reused_over_several_resets(board, node):
    seen = []
    for hard in (True, False, True):
        seen += next_seqs(board, 2)
        board.reset(hard=hard)
        board.reconnect()
    seen += next_seqs(board, 2)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
