"""Local stand-ins for the two SMS providers, speaking their documented
request and response formats.

Each server checks a request on its own terms, without the adapter's code:
it recomputes the signature from the request it received with the secret
it knows, checks the required parameters, and records the messages it
accepted (`sent`) beside every request it saw (`requests`). `mode` makes it
answer a documented failure instead: "throttle", "bad_number", "http500".
"""

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote


class ProviderServer:
    """An HTTP server on 127.0.0.1 (a free port) in a thread; a context manager."""

    def __init__(self, key_id: str, secret: str):
        self.key_id = key_id
        self.secret = secret
        self.mode = "ok"
        self.requests: list[dict] = []
        self.sent: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append({"headers": dict(self.headers), "body": body})
                status, answer = server.handle(self.command, dict(self.headers), body)
                data = json.dumps(answer, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, method: str, headers: dict, body: bytes) -> tuple[int, dict]:
        raise NotImplementedError


class AliyunServer(ProviderServer):
    """dysmsapi `SendSms` (RPC style, Version 2017-05-25, signature 1.0)."""

    REQUIRED = (
        "AccessKeyId",
        "Action",
        "Format",
        "SignatureMethod",
        "SignatureNonce",
        "SignatureVersion",
        "Timestamp",
        "Version",
        "Signature",
        "PhoneNumbers",
        "SignName",
        "TemplateCode",
    )

    def __init__(self, key_id: str, secret: str):
        super().__init__(key_id, secret)
        self.nonces: set[str] = set()

    @staticmethod
    def error(status: int, code: str, message: str) -> tuple[int, dict]:
        return status, {
            "RequestId": "req-1",
            "HostId": "dysmsapi.aliyuncs.com",
            "Code": code,
            "Message": message,
        }

    def handle(self, method, headers, body):
        if self.mode == "http500":
            return self.error(500, "InternalError", "The request processing has failed.")
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        missing = [p for p in self.REQUIRED if not params.get(p)]
        if missing:
            return self.error(400, "MissingParameter", f"missing {', '.join(missing)}")
        if params["Action"] != "SendSms" or params["Version"] != "2017-05-25":
            return self.error(400, "InvalidAction.NotFound", "no such action")
        if params["Format"] != "JSON" or params["SignatureMethod"] != "HMAC-SHA1":
            return self.error(400, "InvalidParameter", "unsupported format or method")
        if params["AccessKeyId"] != self.key_id:
            return self.error(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        canonical = "&".join(
            f"{quote(k, safe='~')}={quote(v, safe='~')}"
            for k, v in sorted(params.items())
            if k != "Signature"
        )
        to_sign = method + "&%2F&" + quote(canonical, safe="~")
        mac = hmac.new((self.secret + "&").encode(), to_sign.encode(), hashlib.sha1)
        if not hmac.compare_digest(base64.b64encode(mac.digest()).decode(), params["Signature"]):
            return self.error(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )
        stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if abs(stamp.timestamp() - time.time()) > 900:
            return self.error(400, "InvalidTimeStamp.Expired", "timestamp expired")
        if params["SignatureNonce"] in self.nonces:
            return self.error(400, "SignatureNonceUsed", "nonce used")
        self.nonces.add(params["SignatureNonce"])
        if self.mode == "throttle":
            return self.error(200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
        if self.mode == "bad_number" or not re.fullmatch(r"1\d{10}", params["PhoneNumbers"]):
            return self.error(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        try:
            template_param = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            return self.error(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法")
        self.sent.append({**params, "TemplateParam": template_param})
        return 200, {
            "Message": "OK",
            "RequestId": "req-1",
            "Code": "OK",
            "BizId": "900619746936498440^0",
        }


class TencentServer(ProviderServer):
    """Tencent Cloud API 3.0 `SendSms` (Version 2021-01-11, TC3-HMAC-SHA256)."""

    def __init__(self, key_id: str, secret: str, app_id: str):
        super().__init__(key_id, secret)
        self.app_id = app_id

    @staticmethod
    def error(code: str, message: str) -> tuple[int, dict]:
        return 200, {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "r-1"}}

    def verify(self, headers: dict, body: bytes) -> tuple[int, dict] | None:
        h = {k.lower(): v for k, v in headers.items()}
        auth = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d\d-\d\d)/([a-z]+)/tc3_request, "
            r"SignedHeaders=([a-z;-]+), Signature=([0-9a-f]{64})",
            h.get("authorization", ""),
        )
        if not auth:
            return self.error("AuthFailure.InvalidAuthorization", "Authorization is invalid")
        key_id, date, service, signed, signature = auth.groups()
        if key_id != self.key_id:
            return self.error("AuthFailure.SecretIdNotFound", "The SecretId is not found")
        stamp = int(h.get("x-tc-timestamp", "0"))
        if abs(stamp - time.time()) > 300:
            return self.error("AuthFailure.SignatureExpire", "Signature expired")
        if date != datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d") or service != "sms":
            return self.error("AuthFailure.InvalidAuthorization", "bad credential scope")
        names = signed.split(";")
        if "content-type" not in names or "host" not in names or names != sorted(names):
            return self.error("AuthFailure.InvalidAuthorization", "bad SignedHeaders")
        canonical_headers = "".join(f"{n}:{h.get(n, '').strip().lower()}\n" for n in names)
        request = "\n".join(
            ["POST", "/", "", canonical_headers, signed, hashlib.sha256(body).hexdigest()]
        )
        scope = f"{date}/{service}/tc3_request"
        to_sign = "\n".join(
            ["TC3-HMAC-SHA256", str(stamp), scope, hashlib.sha256(request.encode()).hexdigest()]
        )
        key = ("TC3" + self.secret).encode()
        for part in (date, service, "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return self.error(
                "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
            )
        if h.get("x-tc-action") != "SendSms" or h.get("x-tc-version") != "2021-01-11":
            return self.error("InvalidAction", "no such action or version")
        if not h.get("x-tc-region"):
            return self.error("MissingParameter", "X-TC-Region")
        return None

    def handle(self, method, headers, body):
        if self.mode == "http500":
            return 500, {"Response": {"Error": {"Code": "InternalError", "Message": "oops"}}}
        failure = self.verify(headers, body)
        if failure:
            return failure
        req = json.loads(body)
        for name in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId"):
            if not req.get(name):
                return self.error("MissingParameter", f"missing {name}")
        if req["SmsSdkAppId"] != self.app_id:
            return self.error("FailedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verify fail")
        if not isinstance(req.get("TemplateParamSet", []), list):
            return self.error("InvalidParameterValue.TemplateParameterFormatError", "not a list")
        if self.mode == "throttle":
            code, msg = "LimitExceeded.PhoneNumberOneHourLimit", "the number of sms in one hour"
        elif self.mode == "bad_number" or not all(
            re.fullmatch(r"\+\d{8,15}", n) for n in req["PhoneNumberSet"]
        ):
            code, msg = "InvalidParameterValue.IncorrectPhoneNumber", "incorrect phone number"
        else:
            code, msg = "Ok", "send success"
            self.sent.append({**req, "Region": headers.get("X-TC-Region")})
        statuses = [
            {
                "SerialNo": "2028:f825e6b16e23f73f4123",
                "PhoneNumber": n,
                "Fee": 1 if code == "Ok" else 0,
                "SessionContext": req.get("SessionContext", ""),
                "Code": code,
                "Message": msg,
                "IsoCode": "CN",
            }
            for n in req["PhoneNumberSet"]
        ]
        return 200, {"Response": {"SendStatusSet": statuses, "RequestId": "r-1"}}
