"""The replay window against a plain model: every seq ever accepted, kept."""

from hypothesis import given
from hypothesis import strategies as st

from kapok.edge_agent.replay import NEW, SEEN, TOO_OLD, ReplayWindow

SIZE = 64


def model_verdict(accepted: set[int], seq: int) -> str:
    if not accepted or seq > max(accepted):
        return NEW
    if max(accepted) - seq >= SIZE:
        return TOO_OLD
    return SEEN if seq in accepted else NEW


@given(st.lists(st.integers(0, 300), max_size=200))
def test_window_matches_the_model(seqs):
    window = ReplayWindow(SIZE)
    accepted: set[int] = set()
    for seq in seqs:
        verdict = window.check(seq)
        assert verdict == model_verdict(accepted, seq)
        if verdict == NEW:
            window.accept(seq)
            accepted.add(seq)
        # what the store writes and reads back is the same window
        again = ReplayWindow.from_bytes(SIZE, window.high, window.to_bytes())
        assert (again.high, again.bits) == (window.high, window.bits)


@given(st.lists(st.integers(0, 300), max_size=100))
def test_accepting_any_order_keeps_the_window_in_bounds(seqs):
    # two uplinks of one device can reach the disk in either order, so the
    # store may accept a seq that fell below the window meanwhile
    window = ReplayWindow(SIZE)
    for seq in seqs:
        window.accept(seq)
        assert window.bits < 1 << SIZE
        assert len(window.to_bytes()) == SIZE // 8
    if seqs:
        assert window.high == max(seqs)
        assert window.check(max(seqs)) == SEEN


def test_a_jump_beyond_the_window_forgets_the_old_bits():
    window = ReplayWindow(SIZE)
    window.accept(5)
    window.accept(5 + SIZE + 10)
    assert window.check(5) == TOO_OLD
    assert window.check(5 + SIZE + 9) == NEW
    assert window.check(5 + SIZE + 10) == SEEN
