"""A small client for the cloud's JSON API, for the commands that talk to a
running cloud (`kapok device register`, `kapok fw release`, `kapok sim
--provision`, `kapok demo`, `kapok verify --cloud`).

Every failure is a `CloudClientError` (a KapokError) with one line a person
can act on and the exit code scripts rely on: the cloud cannot be reached
(3), the login or token was refused (1), the cloud refused the request (1),
with the cloud's own `detail` in the message.

    with CloudClient.connect(url, token=..., user=..., password=...) as cloud:
        cloud.register_device({"id": "gm-0001a3", "kind": "gas-meter", ...})
"""

from __future__ import annotations

import os

import httpx

from kapok.tools.errors import EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE, KapokError

API = "/api/v1"
DEFAULT_CLOUD = "http://127.0.0.1:8000"
TOKEN_ENV = "KAPOK_TOKEN"
TIMEOUT_S = 30.0


class CloudClientError(KapokError):
    """What went wrong talking to the cloud, in one line; `status` is the
    HTTP status (None when the cloud was not reached)."""

    def __init__(self, message: str, code: int = EXIT_FAILED, status: int | None = None):
        super().__init__(message, code)
        self.status = status


def _detail(response: httpx.Response) -> str:
    """The cloud's own explanation of a refusal (FastAPI's `detail`, a text
    or a list of validation errors), else the status line."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # pydantic validation errors
        parts = []
        for err in detail:
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query"))
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        detail = "; ".join(parts)
    return str(detail) if detail else f"{response.status_code} {response.reason_phrase}"


class CloudClient:
    """Bearer-authenticated calls to one cloud. `token` is a user's login
    token or a gateway's token, depending on the routes used."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = TIMEOUT_S):
        base_url = base_url.rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise CloudClientError(
                f"bad cloud URL {base_url!r}: write it as http://HOST:PORT", EXIT_USAGE
            )
        self.base_url = base_url
        self.token = token
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    @classmethod
    def connect(
        cls,
        base_url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = TIMEOUT_S,
    ) -> CloudClient:
        """A client with a token: `token`, else a login with `user` and
        `password`, else $KAPOK_TOKEN; CloudClientError (usage) when there
        is none of these."""
        client = cls(base_url, timeout=timeout)
        try:
            if token:
                client.token = token
            elif user is not None or password is not None:
                if not user or password is None:
                    raise CloudClientError(
                        "give both --user and --password (or a --token)", EXIT_USAGE
                    )
                client.login(user, password)
            elif os.environ.get(TOKEN_ENV):
                client.token = os.environ[TOKEN_ENV]
            else:
                raise CloudClientError(
                    f"log in to the cloud: give --token, set {TOKEN_ENV}, or give --user and "
                    "--password",
                    EXIT_USAGE,
                )
        except BaseException:
            client.close()
            raise
        return client

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the one place requests are made and failures are worded

    def request(self, method: str, path: str, *, ok=(200, 201, 204), auth=True, **kwargs):
        headers = dict(kwargs.pop("headers", None) or {})
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise CloudClientError(
                f"the cloud at {self.base_url} did not answer in time", EXIT_UNAVAILABLE
            ) from None
        except httpx.TransportError as e:
            why = str(e) or type(e).__name__
            raise CloudClientError(
                f"cannot reach the cloud at {self.base_url} ({why})", EXIT_UNAVAILABLE
            ) from None
        if response.status_code in ok:
            return response
        status = response.status_code
        if status == 401:
            what = "the login token" if auth and self.token else "the request"
            raise CloudClientError(
                f"the cloud refused {what} (401 {_detail(response)}): log in again or check "
                "--token",
                status=status,
            )
        if status == 403:
            raise CloudClientError(
                f"not allowed: {_detail(response)} (this needs an admin login)", status=status
            )
        if status in (502, 503, 504):
            raise CloudClientError(
                f"the cloud at {self.base_url} is unavailable ({status} {_detail(response)})",
                EXIT_UNAVAILABLE,
                status=status,
            )
        raise CloudClientError(f"{_detail(response)} ({status})", status=status)

    def get(self, path: str, **kwargs):
        return self.request("GET", API + path, **kwargs).json()

    def post(self, path: str, json=None, **kwargs):
        response = self.request("POST", API + path, json=json, **kwargs)
        return response.json() if response.content else None

    # -- logging in

    def login(self, user: str, password: str) -> str:
        response = self.request(
            "POST",
            API + "/auth/token",
            auth=False,
            ok=(200,),
            data={"username": user, "password": password},
        )
        self.token = response.json()["access_token"]
        return self.token

    def health(self) -> dict:
        return self.request("GET", API + "/health", auth=False).json()

    # -- places, gateways, devices

    def create_community(self, name: str, timezone: str | None = None) -> int:
        body = {"name": name} if timezone is None else {"name": name, "timezone": timezone}
        return self.post("/communities", body)["id"]

    def communities(self) -> list[dict]:
        return self.get("/communities")

    def create_building(self, community: int, name: str) -> dict:
        return self.post("/buildings", {"community": community, "name": name})

    def buildings(self, community: int) -> list[dict]:
        return self.get("/buildings", params={"community": community})

    def create_unit(self, building: int, name: str) -> dict:
        return self.post("/units", {"building": building, "name": name})

    def units(self, community: int) -> list[dict]:
        return self.get("/units", params={"community": community})

    def create_gateway(self, community: int, name: str) -> dict:
        """{"id", "token"}: the token is shown this once."""
        return self.post("/gateways", {"name": name, "community": community})

    def gateway(self, gateway_id: str) -> dict:
        return self.get(f"/gateways/{gateway_id}")

    def register_device(self, device: dict) -> dict:
        return self.post("/devices", device)

    def devices(self, **params) -> list[dict]:
        return self.get("/devices", params=params)

    def device(self, device_id: str) -> dict:
        return self.get(f"/devices/{device_id}")

    def readings(self, device_id: str, name: str | None = None, **params) -> list[dict]:
        if name is not None:
            params["n"] = name
        return self.get(f"/devices/{device_id}/readings", params=params)

    def alarms(self, **params) -> list[dict]:
        return self.get("/alarms", params=params)

    def send_command(self, device_id: str, op: str, args: dict | None = None) -> dict:
        return self.post(f"/devices/{device_id}/commands", {"op": op, "args": args or {}})

    def commands(self, device_id: str) -> list[dict]:
        return self.get(f"/devices/{device_id}/commands")

    def keys(self) -> dict[str, str]:
        """The current public key of each cloud signing key: {"cloud": hex,
        "firmware": hex} (retired ones left out)."""
        return {k["name"]: k["public_key"] for k in self.get("/keys") if k["retired_at"] is None}

    # -- firmware

    def upload_release(self, bundle: bytes, *, version: str, board: str, app: str) -> dict:
        return self.post(
            "/firmware/releases",
            content=bundle,
            params={"version": version, "board": board, "app": app},
            headers={"Content-Type": "application/octet-stream"},
        )

    def releases(self) -> list[dict]:
        return self.get("/firmware/releases")

    def create_rollout(self, release: int, **options) -> dict:
        body = {"release": release, **{k: v for k, v in options.items() if v is not None}}
        return self.post("/firmware/rollouts", body)

    def rollout(self, rollout_id: int) -> dict:
        return self.get(f"/firmware/rollouts/{rollout_id}")

    # -- as a gateway (token: the gateway's)

    def ingest(self, body: bytes) -> bytes:
        """POST a CBOR ingest batch; the CBOR reply."""
        return self.request(
            "POST",
            API + "/ingest",
            ok=(200,),
            content=body,
            headers={"Content-Type": "application/cbor"},
        ).content
