"""Group robots of the chat apps managers use: WeCom (企业微信) and DingTalk.

WeCom group robot: POST `{"msgtype": "markdown", "markdown": {"content"}}`
to the robot's webhook URL (…/cgi-bin/webhook/send?key=…); the answer is
`{"errcode": 0, "errmsg": "ok"}`, errcode 45009 is the rate limit (20
messages a minute per robot), content at most 4096 bytes.

DingTalk custom robot: POST `{"msgtype": "markdown", "markdown": {"title",
"text"}}` to …/robot/send?access_token=…; with the robot's "加签" secret
the URL also carries `timestamp` (ms) and `sign` = URL-encoded base64 of
HMAC-SHA256(secret, f"{timestamp}\\n{secret}"). The answer is `{"errcode":
0, "errmsg": "ok"}`; 130101 is the rate limit (20 a minute).
"""

import base64
import hashlib
import hmac
import time
import urllib.parse

from .adapters import DeliveryError, Message, Target
from .webhook import encode, post

WECOM_LIMIT = 4096
RATE_LIMITED = {"wecom": {45009, -1}, "dingtalk": {130101, -1}}


def _markdown(message: Message) -> str:
    first, *rest = message.text.split("\n")
    lines = [f"**{first}**", *rest]
    if message.url:
        lines[-1] = f"[{lines[-1]}]({message.url})"
    return "\n\n".join(lines)


def _answer(kind: str, response) -> None:
    try:
        answer = response.json()
        code = int(answer.get("errcode", -2))
    except (ValueError, AttributeError, TypeError) as e:
        raise DeliveryError(f"{kind}: not a robot's answer", retry=False) from e
    if code != 0:
        retry = code in RATE_LIMITED[kind]
        raise DeliveryError(f"{kind} errcode {code}: {answer.get('errmsg', '')}", retry=retry)


def wecom_body(message: Message) -> dict:
    content = _markdown(message).encode()[:WECOM_LIMIT].decode(errors="ignore")
    return {"msgtype": "markdown", "markdown": {"content": content}}


def send_wecom(target: Target, message: Message, settings) -> None:
    response = post(target.target, encode(wecom_body(message)), {}, settings.notify_timeout_seconds)
    _answer("wecom", response)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode())


def dingtalk_url(url: str, secret: str | None, *, now: float | None = None) -> str:
    if not secret:
        return url
    ms = int((time.time() if now is None else now) * 1000)
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}timestamp={ms}&sign={dingtalk_sign(secret, ms)}"


def dingtalk_body(message: Message) -> dict:
    return {
        "msgtype": "markdown",
        "markdown": {"title": message.subject, "text": _markdown(message)},
    }


def send_dingtalk(target: Target, message: Message, settings) -> None:
    url = dingtalk_url(target.target, target.secret)
    response = post(url, encode(dingtalk_body(message)), {}, settings.notify_timeout_seconds)
    _answer("dingtalk", response)
