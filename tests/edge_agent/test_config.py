import pytest

from kapok.edge_agent.backoff import Backoff
from kapok.edge_agent.config import Address


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("[::]:5683", "::", 5683),
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("[fe80::1%eth0]:5683", "fe80::1%eth0", 5683),
        ("gateway.local:5683", "gateway.local", 5683),
    ],
)
def test_addresses(text, host, port):
    address = Address.parse(text)
    assert (address.host, address.port) == (host, port)
    assert Address.parse(str(address)) == address


@pytest.mark.parametrize("text", ["::1:5683", "5683", "[::1]", "host:", "host:70000", "[xyz]:1"])
def test_bad_addresses(text):
    with pytest.raises(ValueError):
        Address.parse(text)


def test_backoff_grows_to_its_cap_with_jitter_and_resets():
    top = Backoff(1.0, 8.0, rand=lambda: 1.0)
    assert [top.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    top.reset()
    assert top.next_delay() == 1
    bottom = Backoff(1.0, 8.0, rand=lambda: 0.0)
    assert bottom.next_delay() == 0.1  # never a zero wait
