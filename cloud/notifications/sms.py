"""SMS channels: one provider per installation, Aliyun SMS or Tencent Cloud SMS.

`send(target, message, settings)` sends the template `settings.sms_template`
with `message.params` to the phone number `target.target`, signed with
`settings.sms_sign_name`. Both providers take template parameters, never
free text: the template itself is approved beforehand in the provider's
console.

- Aliyun (dysmsapi): the RPC-style API `SendSms`, Version 2017-05-25, a form
  POST signed with HMAC-SHA1 (signature version 1.0). `OutId` carries the
  message key.
- Tencent Cloud: API 3.0 `SendSms`, Version 2021-01-11, a JSON POST signed
  with TC3-HMAC-SHA256. `SessionContext` carries the message key.

The signatures are pure functions, tested against the providers' published
examples. `settings.sms_endpoint` replaces the public endpoint (tests point
it at a local server speaking the provider's format).
"""

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from .adapters import DeliveryError, Message, Target

ALIYUN_ENDPOINT = "https://dysmsapi.aliyuncs.com/"
TENCENT_ENDPOINT = "https://sms.tencentcloudapi.com/"
TENCENT_CONTENT_TYPE = "application/json; charset=utf-8"

# Aliyun codes worth another try later; every other code is final
ALIYUN_RETRY = ("isv.BUSINESS_LIMIT_CONTROL", "Throttling", "ServiceUnavailable")
ALIYUN_RETRY += ("InternalError", "isp.SYSTEM_ERROR", "SignatureNonceUsed")
# Tencent Cloud error-code prefixes worth another try (the rest: AuthFailure.*,
# InvalidParameterValue.*, FailedOperation.*, UnauthorizedOperation.*, ... are final)
TENCENT_RETRY = ("LimitExceeded", "RequestLimitExceeded", "InternalError")

_MAINLAND = re.compile(r"1[3-9]\d{9}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


def e164(number: str) -> str:
    """`13800138000` or `+8613800138000` (spaces and dashes allowed) as
    E.164, `+8613800138000`; other countries must come as E.164 already."""
    n = re.sub(r"[\s\-]", "", number or "")
    if _MAINLAND.fullmatch(n):
        return "+86" + n
    if n.startswith("+86"):
        if _MAINLAND.fullmatch(n[3:]):
            return n
    elif _E164.fullmatch(n):
        return n
    raise DeliveryError(f"not a mobile phone number: {number!r}", retry=False)


def aliyun_number(number: str) -> str:
    """Aliyun's form: mainland numbers bare, others country code + number
    without `+` or `00`."""
    n = e164(number)
    return n[3:] if n.startswith("+86") else n[1:]


# -- Aliyun -------------------------------------------------------------------


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, as Aliyun's signature wants it:
    only A-Z a-z 0-9 - _ . ~ stay as they are (space is %20, `*` is %2A)."""
    return quote(value, safe="~")


def aliyun_canonical_query(params: dict[str, str]) -> str:
    """The parameters (without `Signature`) sorted by name, percent-encoded."""
    return "&".join(
        f"{percent_encode(k)}={percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )


def aliyun_signature(params: dict[str, str], secret: str, method: str = "POST") -> str:
    """Signature version 1.0: base64(HMAC-SHA1(secret + "&", StringToSign)),
    StringToSign = METHOD + "&%2F&" + percent_encode(canonical query)."""
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(aliyun_canonical_query(params))}"
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _send_aliyun(number: str, message: Message, settings) -> None:
    params = {
        "AccessKeyId": settings.sms_key_id,
        "Action": "SendSms",
        "Format": "JSON",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": uuid.uuid4().hex,
        "SignatureVersion": "1.0",
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2017-05-25",
        "PhoneNumbers": aliyun_number(number),
        "SignName": settings.sms_sign_name,
        "TemplateCode": settings.sms_template,
        "TemplateParam": json.dumps(message.params, ensure_ascii=False, separators=(",", ":")),
        "OutId": message.key,
    }
    signature = aliyun_signature(params, settings.sms_key_secret)
    body = aliyun_canonical_query(params) + "&Signature=" + percent_encode(signature)
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    resp = _post(settings.sms_endpoint or ALIYUN_ENDPOINT, body.encode(), headers, settings)
    data = _json(resp)
    code = str(data.get("Code", ""))
    if code == "OK":
        return
    reason = f"Aliyun SMS {code or resp.status_code}: {data.get('Message', '')}".rstrip(": ")
    raise DeliveryError(reason, retry=resp.status_code >= 500 or code.startswith(ALIYUN_RETRY))


# -- Tencent Cloud -------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tc3_authorization(
    secret_id: str,
    secret_key: str,
    *,
    host: str,
    payload: bytes,
    timestamp: int,
    service: str = "sms",
    content_type: str = TENCENT_CONTENT_TYPE,
) -> str:
    """The `Authorization` header of a TC3-HMAC-SHA256 signed POST to `/`
    (signed headers content-type and host)."""
    headers = f"content-type:{content_type.strip().lower()}\nhost:{host.strip().lower()}\n"
    canonical_request = f"POST\n/\n\n{headers}\ncontent-type;host\n{_sha256(payload)}"
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{_sha256(canonical_request.encode())}"
    key = _hmac256(_hmac256(_hmac256(("TC3" + secret_key).encode(), date), service), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )


def _send_tencent(number: str, message: Message, settings) -> None:
    body = {
        "PhoneNumberSet": [e164(number)],
        "SmsSdkAppId": settings.sms_app_id,
        "SignName": settings.sms_sign_name,
        "TemplateId": settings.sms_template,
        "TemplateParamSet": [str(v) for v in message.params.values()],
        "SessionContext": message.key,
    }
    payload = json.dumps(body, ensure_ascii=False).encode()
    url = settings.sms_endpoint or TENCENT_ENDPOINT
    host = httpx.URL(url).netloc.decode()
    now = int(time.time())
    headers = {
        "Authorization": tc3_authorization(
            settings.sms_key_id, settings.sms_key_secret, host=host, payload=payload, timestamp=now
        ),
        "Content-Type": TENCENT_CONTENT_TYPE,
        "Host": host,
        "X-TC-Action": "SendSms",
        "X-TC-Version": "2021-01-11",
        "X-TC-Timestamp": str(now),
        "X-TC-Region": settings.sms_region,
    }
    resp = _post(url, payload, headers, settings)
    data = _json(resp).get("Response") or {}
    error = data.get("Error")
    if error:
        code = str(error.get("Code", ""))
        reason = f"Tencent Cloud SMS {code}: {error.get('Message', '')}"
    else:
        statuses = data.get("SendStatusSet") or [{}]
        code = str(statuses[0].get("Code", ""))
        if code == "Ok":
            return
        reason = f"Tencent Cloud SMS {code or 'no status'}: {statuses[0].get('Message', '')}"
    retry = resp.status_code >= 500 or code.startswith(TENCENT_RETRY)
    raise DeliveryError(reason.rstrip(": "), retry=retry)


# -- both ---------------------------------------------------------------------


def _post(url: str, content: bytes, headers: dict[str, str], settings) -> httpx.Response:
    try:
        resp = httpx.post(
            url, content=content, headers=headers, timeout=settings.notify_timeout_seconds
        )
    except httpx.HTTPError as e:
        raise DeliveryError(f"SMS provider unreachable: {e!r}", retry=True) from e
    if resp.status_code >= 500 or resp.status_code == 429:
        raise DeliveryError(f"SMS provider answered HTTP {resp.status_code}", retry=True)
    return resp


def _json(resp: httpx.Response) -> dict:
    try:
        data = resp.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise DeliveryError(
            f"SMS provider answered HTTP {resp.status_code} without a JSON object", retry=False
        )
    return data


def send(target: Target, message: Message, settings) -> None:
    """Send one SMS, or raise `DeliveryError` (`retry` says if a later try may work)."""
    provider = settings.sms_provider
    if not provider:
        raise DeliveryError("no SMS provider configured (KAPOK_SMS_PROVIDER)", retry=False)
    e164(target.target)  # a malformed number fails before any request
    missing = [
        name
        for name in ("sms_key_id", "sms_key_secret", "sms_sign_name", "sms_template")
        + (("sms_app_id",) if provider == "tencent" else ())
        if not getattr(settings, name)
    ]
    if missing:
        names = ", ".join("KAPOK_" + n.upper() for n in missing)
        raise DeliveryError(f"SMS provider {provider}: {names} not set", retry=False)
    if provider == "aliyun":
        _send_aliyun(target.target, message, settings)
    elif provider == "tencent":
        _send_tencent(target.target, message, settings)
    else:
        raise DeliveryError(f"unknown SMS provider {provider!r}", retry=False)
