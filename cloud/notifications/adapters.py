"""The one interface every notification channel speaks.

A channel kind (webhook, email, wecom, dingtalk, sms) is an adapter: a
function `send(channel, message, settings)` that delivers one rendered
`Message` to one `Target` or raises `DeliveryError`. Adapters hold no
state; the outbox (outbox.py) decides when to call them and what a
failure means: `retry=True` (timeouts, 5xx, a provider's rate limit) is
tried again with backoff, `retry=False` (a refused address, bad
credentials, a 4xx) goes to the dead letters at once.

Each adapter is tested against a real peer (aiosmtpd) or a local server
speaking the provider's documented request/response format.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class DeliveryError(Exception):
    """The message was not delivered. `retry`: a later try may succeed."""

    def __init__(self, reason: str, *, retry: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@dataclass(frozen=True)
class Target:
    """Where one notification goes: a channel row, as the adapter needs it."""

    kind: str
    target: str  # URL, e-mail address or phone number
    secret: str | None = None
    lang: str = "zh-CN"
    name: str | None = None


@dataclass(frozen=True)
class Message:
    """One notification, rendered in the recipient's language.

    `key` is unique per notification and stable across retries: adapters
    pass it on where the peer can de-duplicate (webhook header
    `X-Kapok-Delivery`, e-mail Message-ID), since a send that timed out may
    still have arrived. `body` is the JSON document of a webhook; `params`
    the short fields of an SMS template."""

    key: str
    subject: str
    text: str
    body: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    url: str | None = None


Adapter = Callable[[Target, Message, Any], None]
