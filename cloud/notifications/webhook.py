"""Generic webhook: the alarm document as JSON, POSTed to the channel's URL.

Headers: `X-Kapok-Signature: sha256=<hex HMAC-SHA256 of the exact body
bytes with the channel's secret>` (when it has one), `X-Kapok-Event`, and
`X-Kapok-Delivery` (the message key, the same on every retry: receivers
de-duplicate on it). Any 2xx is delivered; 408, 429 and 5xx are tried
again; other statuses are a refusal (dead letter).
"""

import hashlib
import hmac
import json

import httpx

from .adapters import DeliveryError, Message, Target

RETRY_STATUSES = {408, 425, 429}


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(document: dict) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> httpx.Response:
    """POST and classify transport failures and statuses as DeliveryError."""
    try:
        response = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/json; charset=utf-8", **headers},
            timeout=timeout,
        )
    except httpx.HTTPError as e:
        raise DeliveryError(f"{type(e).__name__}: {e}") from e
    if response.status_code >= 500 or response.status_code in RETRY_STATUSES:
        raise DeliveryError(f"HTTP {response.status_code}")
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"HTTP {response.status_code}: refused", retry=False)
    return response


def send(target: Target, message: Message, settings) -> None:
    body = encode(message.body)
    headers = {
        "User-Agent": "Kapok-Webhook",
        "X-Kapok-Event": str(message.body.get("type", "")),
        "X-Kapok-Delivery": message.key,
    }
    if target.secret:
        headers["X-Kapok-Signature"] = signature(target.secret, body)
    post(target.target, body, headers, settings.notify_timeout_seconds)
