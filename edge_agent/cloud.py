"""The agent's client for the cloud's gateway API (docs/gateway-api.md).

One httpx.AsyncClient with the gateway's bearer token. Every call either
returns what the route promises or raises a CloudError that tells the caller
what to do next:

- CloudUnreachable: network trouble, timeouts, 5xx, 429 — retry with backoff;
- CloudAuthError:   401/403 — the token is wrong or revoked; retry slowly and
                    let the operator know (it will not fix itself);
- CloudRefused:     any other 4xx — this request will never succeed as is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import httpx

from kapok import __version__

log = logging.getLogger(__name__)

CBOR = "application/cbor"


class CloudError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class CloudUnreachable(CloudError):
    pass


class CloudAuthError(CloudError):
    pass


class CloudRefused(CloudError):
    pass


class Cloud:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 15.0,
        on_contact: Callable[[bool], None] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"kapok-agent/{__version__}",
            },
            timeout=timeout,
            # a gateway behind a proxy must say so explicitly, not by env
            trust_env=False,
        )
        self._on_contact = on_contact
        self.last_contact: float | None = None  # Unix time of the last answer
        self.reachable: bool | None = None

    async def close(self) -> None:
        await self._http.aclose()

    def _contact(self, ok: bool) -> None:
        if ok:
            self.last_contact = time.time()
        if ok != self.reachable:
            self.reachable = ok
            if ok:
                log.info("cloud reachable", extra={"cloud": self.base_url})
            else:
                log.warning("cloud unreachable", extra={"cloud": self.base_url})
        if self._on_contact:
            self._on_contact(ok)

    async def _request(
        self, method: str, path: str, *, allow_404: bool = False, **kwargs
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            self._contact(False)
            raise CloudUnreachable(f"{method} {path}: {type(e).__name__}: {e}") from e
        status = response.status_code
        if status >= 500 or status == 429:
            self._contact(False)
            raise CloudUnreachable(f"{method} {path}: HTTP {status}", status)
        self._contact(True)
        if status in (401, 403):
            raise CloudAuthError(f"{method} {path}: HTTP {status} (gateway token refused)", status)
        if status >= 400 and not (status == 404 and allow_404):
            raise CloudRefused(f"{method} {path}: HTTP {status}: {response.text[:200]}", status)
        return response

    # -- routes

    async def ingest(self, body: bytes) -> bytes:
        """POST /api/v1/ingest with a CBOR batch; the CBOR reply bytes."""
        response = await self._request(
            "POST",
            "/api/v1/ingest",
            content=body,
            headers={"Content-Type": CBOR, "Accept": CBOR},
        )
        if response.status_code != 200:
            raise CloudRefused(f"ingest: HTTP {response.status_code}", response.status_code)
        return response.content

    async def registry(self, version: int | None) -> dict | None:
        """The registry document, or None when `version` is still current."""
        headers = {"If-None-Match": f'"{version}"'} if version is not None else {}
        response = await self._request("GET", "/api/v1/gateway/registry", headers=headers)
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise CloudRefused(f"registry: HTTP {response.status_code}", response.status_code)
        try:
            return response.json()
        except json.JSONDecodeError as e:
            raise CloudRefused(f"registry: not JSON: {e}", 200) from e

    async def put_key(self, public_key: bytes) -> None:
        await self._request("PUT", "/api/v1/gateway/key", json={"public_key": public_key.hex()})

    async def commands(self, wait: int) -> list[dict]:
        response = await self._request(
            "GET",
            "/api/v1/gateway/commands",
            params={"wait": wait},
            timeout=httpx.Timeout(wait + 15.0),
        )
        if response.status_code != 200:
            raise CloudRefused(f"commands: HTTP {response.status_code}", response.status_code)
        try:
            body = response.json()
        except json.JSONDecodeError as e:
            raise CloudRefused(f"commands: not JSON: {e}", 200) from e
        if not isinstance(body, list):
            raise CloudRefused("commands: expected a JSON list", 200)
        return body

    async def post_json(self, path: str, body: dict) -> None:
        await self._request("POST", path, json=body)

    async def firmware(self, sha256_hex: str) -> bytes | None:
        """The bundle, or None when the cloud has no such bundle (404)."""
        response = await self._request(
            "GET", f"/api/v1/gateway/firmware/{sha256_hex}", allow_404=True
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise CloudRefused(f"firmware: HTTP {response.status_code}", response.status_code)
        return response.content
