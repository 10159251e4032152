"""A stand-in for the Kapok cloud's gateway API, for the agent's own tests.

TEST DOUBLE: it implements docs/gateway-api.md and the ingest route of
docs/protocol.md §7 faithfully enough for the agent (bearer token, registry
with If-None-Match, gateway key, firmware bundles, commands long-poll and
delivery reports, local-command reports, ingest idempotent by batch id and by
(device, seq), COSE re-verified with kapok.protocols). The end-to-end tests
run the agent against the real cloud; this one exists so the agent's tests
do not depend on it, and so they can stop it ("down") and start it again on
the same port ("up").
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request, Response

from kapok.protocols import cose, ed25519, messages

TOKEN = "test-gateway-token"

DEFAULT_RULES = [
    {"event": "gas.leak", "op": "valve.close", "target": "self"},
    {"event": "gas.leak", "op": "siren.on", "target": "unit:hub"},
    {"event": "smoke", "op": "siren.on", "target": "unit:hub"},
    {"event": "smoke", "op": "valve.close", "target": "unit:gas-meter"},
    {"event": "water.leak", "op": "valve.close", "target": "unit:water-meter"},
]


class FakeCloud:
    def __init__(self, token: str = TOKEN, gateway_id: str = "gw-1"):
        self.token = token
        self.gateway = {"id": gateway_id, "name": "test gateway", "community": 1}
        self.cloud_seed = hashlib.sha256(b"fake cloud key").digest()
        self.firmware_seed = hashlib.sha256(b"fake firmware key").digest()
        self.version = 1
        self.devices: dict[str, dict] = {}
        self.rules = list(DEFAULT_RULES)
        self.releases: list[dict] = []
        self.bundles: dict[str, bytes] = {}
        self.gateway_key: bytes | None = None
        self.lock = threading.Lock()
        # what arrived
        self.readings: dict[tuple[str, int], tuple[int, bytes]] = {}
        self.arrivals: dict[tuple[str, int], set[bytes]] = {}  # batch ids it came in
        self.accept_order: list[tuple[str, int]] = []
        self.ingest_calls: list[tuple[bytes, int]] = []  # (batch id, items)
        self.batch_replies: dict[bytes, bytes] = {}
        self.status_reports: list[tuple[int, dict]] = []
        self.local_commands: list[dict] = []
        self.registry_calls = 0
        self.firmware_calls = 0
        self.commands: list[dict] = []
        self.reject = None  # callable(device, payload) -> reason or None
        self.ingest_status: int | None = None  # answer ingest with this HTTP status
        self.stopping = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = _free_port()
        self.app = self._build_app()

    # -- set-up helpers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_device(
        self,
        device_id: str,
        *,
        kind: str = "gas-meter",
        public_key: bytes | None = None,
        mac_key: bytes | None = None,
        unit: int | None = None,
        always_on: bool = False,
        address: str | None = None,
    ) -> None:
        with self.lock:
            self.devices[device_id] = {
                "id": device_id,
                "kind": kind,
                "public_key": public_key.hex() if public_key else None,
                "mac_key": mac_key.hex() if mac_key else None,
                "unit": unit,
                "always_on": always_on,
                "address": address,
            }
            self.version += 1

    def set_rules(self, rules: list[dict] | None) -> None:
        """The community's fail-safe rules changed (None: the document has none)."""
        with self.lock:
            self.rules = rules
            self.version += 1

    def add_release(self, bundle: bytes, version: str = "1.2.0") -> str:
        sha = hashlib.sha256(bundle).hexdigest()
        manifest = messages.build_manifest(
            version, "esp32", "meter", len(bundle), bytes.fromhex(sha)
        )
        with self.lock:
            self.bundles[sha] = bundle
            self.releases.append(
                {
                    "sha256": sha,
                    "version": version,
                    "board": "esp32",
                    "app": "meter",
                    "size": len(bundle),
                    "manifest": cose.sign1(manifest, self.firmware_seed, b"firmware").hex(),
                }
            )
            self.version += 1
        return sha

    def add_command(self, device: str, op: str, args=None, *, lifetime: int = 3600) -> dict:
        with self.lock:
            cmd_id = 1 + sum(1 for c in self.commands if c["device"] == device)
            not_after = int(time.time()) + lifetime
            payload = messages.build_command(cmd_id, device, op, args or {}, not_after)
            command = {
                "id": 900 + len(self.commands),
                "device": device,
                "cmd_id": cmd_id,
                "op": op,
                "not_after": not_after,
                "cose": cose.sign1(payload, self.cloud_seed, b"cloud").hex(),
                "state": "queued",
            }
            self.commands.append(command)
            return command

    def registry_document(self) -> dict:
        return {
            "version": self.version,
            "gateway": self.gateway,
            "devices": list(self.devices.values()),
            "authorities": {
                "cloud": ed25519.public_key(self.cloud_seed).hex(),
                "firmware": ed25519.public_key(self.firmware_seed).hex(),
            },
            "rules": self.rules,
            "releases": self.releases,
        }

    # -- the API

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        cloud = self

        def auth(authorization: str | None) -> None:
            if authorization != f"Bearer {cloud.token}":
                raise HTTPException(401, "unknown gateway token")

        @app.get("/api/v1/gateway/registry")
        def registry(
            authorization: str | None = Header(None), if_none_match: str | None = Header(None)
        ):
            auth(authorization)
            with cloud.lock:
                cloud.registry_calls += 1
                if if_none_match == f'"{cloud.version}"':
                    return Response(status_code=304)
                return cloud.registry_document()

        @app.put("/api/v1/gateway/key", status_code=204)
        async def put_key(request: Request, authorization: str | None = Header(None)):
            auth(authorization)
            body = await request.json()
            key = bytes.fromhex(body["public_key"])
            if len(key) != 32:
                raise HTTPException(422, "public_key must be 32 bytes")
            cloud.gateway_key = key
            return Response(status_code=204)

        @app.get("/api/v1/gateway/firmware/{sha}")
        def firmware(sha: str, authorization: str | None = Header(None)):
            auth(authorization)
            cloud.firmware_calls += 1
            bundle = cloud.bundles.get(sha)
            if bundle is None:
                raise HTTPException(404, "no such bundle")
            return Response(bundle, media_type="application/octet-stream")

        @app.get("/api/v1/gateway/commands")
        async def commands(wait: float = 0, authorization: str | None = Header(None)):
            # at once when any is still queued; else wait for one (up to 30 s)
            auth(authorization)
            deadline = time.monotonic() + min(wait, 30)
            while True:
                now = time.time()
                with cloud.lock:
                    waiting = [
                        c
                        for c in cloud.commands
                        if c["state"] in ("queued", "sent")
                        and c["not_after"] > now
                        and c["device"] in cloud.devices
                    ]
                    fresh = any(c["state"] == "queued" for c in waiting)
                    listed = [
                        {k: c[k] for k in ("id", "device", "cmd_id", "op", "not_after", "cose")}
                        for c in waiting
                    ]
                if fresh or time.monotonic() >= deadline or cloud.stopping:
                    return listed
                await asyncio.sleep(0.05)

        @app.post("/api/v1/gateway/commands/{command_id}/status", status_code=204)
        async def command_status(
            command_id: int, request: Request, authorization: str | None = Header(None)
        ):
            auth(authorization)
            body = await request.json()
            if body.get("state") not in ("sent", "delivered", "failed"):
                raise HTTPException(422, "bad state")
            order = ("queued", "sent", "delivered", "failed")
            with cloud.lock:
                for c in cloud.commands:
                    if c["id"] == command_id:
                        # reports only move a command forward
                        if order.index(body["state"]) > order.index(c["state"]):
                            c["state"] = body["state"]
                        cloud.status_reports.append((command_id, body))
                        return Response(status_code=204)
            raise HTTPException(404, "no such command")

        @app.post("/api/v1/gateway/local-commands", status_code=204)
        async def local_commands(request: Request, authorization: str | None = Header(None)):
            auth(authorization)
            body = await request.json()
            for field in ("device", "op", "cmd_id", "event", "at", "cose"):
                if field not in body:
                    raise HTTPException(422, f"missing {field}")
            if cloud.gateway_key is None:
                raise HTTPException(409, "the gateway has no key registered")
            try:
                signed = bytes.fromhex(body["cose"])
                command = messages.parse_command(cose.verify1(signed, cloud.gateway_key))
            except ValueError as e:
                raise HTTPException(422, f"command COSE: {e}") from None
            if cose.kid(signed) != cloud.gateway["id"].encode():
                raise HTTPException(422, "kid is not this gateway's id")
            if (command["device_id"], command["op"], command["cmd_id"]) != (
                body["device"],
                body["op"],
                body["cmd_id"],
            ):
                raise HTTPException(422, "device, op and cmd_id do not match the signed command")
            if command["op"] not in messages.FAILSAFE_OPS:
                raise HTTPException(422, "a gateway key signs fail-safe ops only")
            with cloud.lock:
                cloud.local_commands.append(body)
            return Response(status_code=204)

        @app.post("/api/v1/ingest")
        async def ingest(request: Request, authorization: str | None = Header(None)):
            auth(authorization)
            if cloud.ingest_status is not None:
                raise HTTPException(cloud.ingest_status, "ingest refused by the test")
            if request.headers.get("content-type") != "application/cbor":
                raise HTTPException(415, "application/cbor expected")
            try:
                batch = messages.parse_batch(await request.body())
            except ValueError as e:
                raise HTTPException(400, str(e)) from None
            with cloud.lock:
                reply = cloud.batch_replies.get(batch["batch_id"])
                if reply is None:
                    reply = cloud._ingest(batch["batch_id"], batch["items"])
                    cloud.batch_replies[batch["batch_id"]] = reply
                cloud.ingest_calls.append((batch["batch_id"], len(batch["items"])))
            return Response(reply, media_type="application/cbor")

        return app

    def _ingest(self, batch_id: bytes, items) -> bytes:
        accepted = duplicates = 0
        rejects = []
        for index, (rx, cose_bytes) in enumerate(items):
            try:
                device_id = cose.kid(cose_bytes).decode()
                device = self.devices.get(device_id)
                if device is None:
                    raise ValueError("unknown device")
                if device["public_key"]:
                    payload = cose.verify1(cose_bytes, bytes.fromhex(device["public_key"]))
                else:
                    payload = cose.verify_mac0(cose_bytes, bytes.fromhex(device["mac_key"]))
                uplink = messages.parse_uplink(payload, device_id)
                if self.reject is not None:
                    reason = self.reject(device_id, uplink)
                    if reason:
                        raise ValueError(reason)
            except ValueError as e:
                rejects.append((index, str(e)))
                continue
            key = (device_id, uplink["seq"])
            self.arrivals.setdefault(key, set()).add(batch_id)
            if key in self.readings:
                duplicates += 1
            else:
                self.readings[key] = (rx, cose_bytes)
                self.accept_order.append(key)
                accepted += 1
        return messages.build_batch_reply(accepted, duplicates, rejects)

    # -- up and down

    def up(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("fake cloud did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def down(self) -> None:
        if self._server is None:
            return
        self.stopping = True
        self._server.should_exit = True
        self._thread.join(10)
        self._server = self._thread = None
        self.stopping = False

    def received(self) -> set[tuple[str, int]]:
        with self.lock:
            return set(self.readings)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
