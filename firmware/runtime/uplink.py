# What the gateway's answer to `POST /u` means for the in-flight message,
# and how long to wait before trying again. Sans-IO: the node's uplink loop
# does the sending and the waiting.
#
#   2.04 + reply {1: seq, 2: time, ? 3: commands}  ACKED (or RETRY when
#         it acknowledges another seq)
#   4.01  unknown kid / bad signature: most often a node registered a
#         moment ago; RETRY with backoff, keep the data
#   4.00, 4.02, 4.13, 4.15  the gateway can never take THESE bytes:
#         REJECTED (the message is dropped, later ones may pass)
#   other 4.xx  not a Kapok gateway at that address (yet): RETRY
#   5.03  cannot store now: RETRY after its Max-Age
#   other 5.xx, no answer  RETRY with backoff

from micropython import const

from protocols import messages
from protocols.coap_numbers import (
    BAD_OPTION,
    BAD_REQUEST,
    CF_CBOR,
    CHANGED,
    REQUEST_ENTITY_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    UNSUPPORTED_CONTENT_FORMAT,
    code_str,
)

ACKED = const(0)
RETRY = const(1)
REJECTED = const(2)

_PERMANENT = (BAD_REQUEST, BAD_OPTION, REQUEST_ENTITY_TOO_LARGE, UNSUPPORTED_CONTENT_FORMAT)


def outcome(response, seq):
    """(ACKED | RETRY | REJECTED, reply dict or None, seconds to hold off
    or None for the usual backoff, why). A reply that parses is returned
    even when it acknowledges another seq: its time and commands are good."""
    code = response.code
    if code == CHANGED:
        cf = response.content_format
        if cf is not None and cf != CF_CBOR:
            return RETRY, None, None, "reply is not CBOR"
        try:
            reply = messages.parse_reply(response.payload)
        except ValueError as e:
            return RETRY, None, None, f"bad reply: {e}"
        if reply["acked_seq"] != seq:
            return RETRY, reply, None, "gateway acked {}, not {}".format(reply["acked_seq"], seq)
        return ACKED, reply, None, "ok"
    why = _diagnostic(response)
    if code in _PERMANENT:
        return REJECTED, None, None, why
    if code == SERVICE_UNAVAILABLE:
        return RETRY, None, response.max_age, why
    return RETRY, None, None, why


def _diagnostic(response):
    text = code_str(response.code)
    if response.payload:
        try:
            text += " " + response.payload[:60].decode()
        except UnicodeError:
            text += " (binary diagnostic)"
    return text


class Backoff:
    """Exponential backoff: `first_s`, doubling up to `max_s`, each delay
    stretched by a random factor in [1, 1.5) so a community's nodes do not
    all come back at once after a gateway outage."""

    def __init__(self, first_s=10, max_s=900):
        self.first_s = first_s
        self.max_s = max_s
        self.current = 0

    def reset(self):
        self.current = 0

    def next_s(self, rand):
        """The next delay in seconds; `rand` is in [0, 1]."""
        if self.current:
            self.current = min(self.current * 2, self.max_s)
        else:
            self.current = self.first_s
        return self.current + int(self.current * rand / 2)
