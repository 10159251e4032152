"""Real and protocol-faithful peers of the notification channels.

- `HookServer`: an HTTP receiver in a thread. As a generic webhook it
  checks `X-Kapok-Signature` with its own HMAC of the bytes it received;
  as a WeCom or DingTalk group robot it checks the documented body
  (`msgtype` markdown, the content limits) and, for DingTalk, the
  `timestamp`/`sign` query of a signed robot, and answers `{"errcode",
  "errmsg"}` as they do. `statuses` (HTTP) and `errcodes` (robots) queue
  failures to answer before succeeding.
- `Mailbox`: aiosmtpd's SMTP server with STARTTLS (a self-signed
  certificate made here) and AUTH LOGIN/PLAIN, keeping what it received.
"""

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class HookServer:
    def __init__(self, *, kind: str = "webhook", secret: str | None = None):
        self.kind = kind
        self.secret = secret
        self.received: list[dict] = []  # accepted deliveries
        self.requests = 0
        self.statuses: list[int] = []  # HTTP statuses answered before accepting
        self.errcodes: list[int] = []  # robot errcodes answered before accepting
        self.arrived = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = server.handle(self.path, dict(self.headers), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.httpd.server_address[1]
        path = {
            "webhook": "/hooks/kapok",
            "wecom": "/cgi-bin/webhook/send?key=robot-key-1",
            "dingtalk": "/robot/send?access_token=robot-token-1",
        }[kind]
        self.url = f"http://127.0.0.1:{port}{path}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        self.requests += 1
        if self.statuses:  # an HTTP status to answer first
            return self.statuses.pop(0), {"error": "as asked"}
        if self.errcodes:  # a robot's errcode to answer first
            return 200, {"errcode": self.errcodes.pop(0), "errmsg": "as asked"}
        check = getattr(self, f"_check_{self.kind}")
        refusal = check(path, headers, body)
        if refusal:
            return refusal
        self.arrived.set()
        return 200, {"errcode": 0, "errmsg": "ok"} if self.kind != "webhook" else {"ok": True}

    def _check_webhook(self, path, headers, body):
        if self.secret is not None:
            mine = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mine, headers.get("X-Kapok-Signature", "")):
                return 401, {"error": "bad signature"}
        doc = json.loads(body)
        self.received.append({"headers": headers, "body": doc})
        return None

    def _check_wecom(self, path, headers, body):
        if parse_qs(urlsplit(path).query).get("key") != ["robot-key-1"]:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
        doc = json.loads(body)
        content = doc.get("markdown", {}).get("content")
        if doc.get("msgtype") != "markdown" or not isinstance(content, str):
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        if len(content.encode()) > 4096:
            return 200, {"errcode": 40058, "errmsg": "content exceed max length"}
        self.received.append({"headers": headers, "body": doc})
        return None

    def _check_dingtalk(self, path, headers, body):
        query = parse_qs(urlsplit(path).query)
        if query.get("access_token") != ["robot-token-1"]:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        if self.secret is not None:
            stamp = query.get("timestamp", ["0"])[0]
            string = f"{stamp}\n{self.secret}".encode()
            mine = base64.b64encode(hmac.new(self.secret.encode(), string, hashlib.sha256).digest())
            if query.get("sign", [""])[0] != mine.decode():
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
            if abs(time.time() * 1000 - int(stamp)) > 3600 * 1000:
                return 200, {"errcode": 310000, "errmsg": "timestamp expired"}
        doc = json.loads(body)
        md = doc.get("markdown", {})
        if doc.get("msgtype") != "markdown" or not md.get("title") or not md.get("text"):
            return 200, {"errcode": 40035, "errmsg": "missing parameter"}
        self.received.append({"headers": headers, "body": doc})
        return None


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.pem", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def free_port() -> int:
    """A port free now (aiosmtpd's Controller cannot be given port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, box: "Mailbox"):
        self.box = box

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        mail = message_from_bytes(envelope.content, policy=policy.default)
        self.box.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "mail": mail,
                "tls": session.ssl is not None,
                "login": getattr(session, "login_data", None),
            }
        )
        self.box.arrived.set()
        return "250 Message accepted for delivery"


class Mailbox:
    """aiosmtpd on 127.0.0.1 with STARTTLS required before AUTH."""

    def __init__(self, directory: Path, *, user: str = "kapok", password: str = "smtp-pass-1"):
        self.messages: list[dict] = []
        self.arrived = threading.Event()
        self.cert, key = self_signed(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.user, self.password = user, password

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == user.encode() and auth_data.password == password.encode()
            return AuthResult(success=ok)

        self.controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=free_port(),
            tls_context=context,
            require_starttls=True,
            authenticator=authenticator,
            auth_required=True,
        )

    def __enter__(self):
        self.controller.start()
        self.port = self.controller.port
        return self

    def __exit__(self, *exc):
        self.controller.stop()
