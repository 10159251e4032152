"""`POST /api/v1/ingest`: gateway batches of signed node messages
(docs/protocol.md §7)."""

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.exc import IntegrityError

from ...core.db import session_scope
from ...crud import ingest as ingest_crud
from ...errors import PayloadTooLarge, ServiceUnavailable, UnsupportedMediaType
from ..deps import authenticate_gateway, gateway_token

router = APIRouter(tags=["ingest"])

CBOR = "application/cbor"
ATTEMPTS = 5

_cbor_body = {
    "requestBody": {
        "required": True,
        "description": "{1: batch id (16 bytes), 2: [[rx Unix time, COSE bytes], ...]}",
        "content": {CBOR: {"schema": {"type": "string", "format": "binary"}}},
    },
    "responses": {
        "200": {
            "description": "{1: accepted, 2: duplicates, 3: [[index, reason], ...]}, "
            "the same bytes for a batch id seen before",
            "content": {CBOR: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
}


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"batch over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"batch over {limit} bytes")
    return bytes(body)


def _ingest(app, token: str | None, body: bytes) -> bytes:
    for attempt in range(ATTEMPTS):
        try:
            with session_scope(app.state.sessions) as session:
                now = app.state.clock()
                gateway = authenticate_gateway(session, token, now)
                return ingest_crud.ingest(
                    session,
                    gateway=gateway,
                    body=body,
                    keys=app.state.keys,
                    now=now,
                )
        except IntegrityError:
            # another worker stored the same batch or (device, seq) first:
            # the next attempt finds it and answers accordingly
            if attempt == ATTEMPTS - 1:
                raise ServiceUnavailable("concurrent ingest of the same data; retry") from None
    raise AssertionError("unreachable")


@router.post(
    "/ingest",
    response_class=Response,
    openapi_extra=_cbor_body,
    summary="Ingest a batch of node messages",
)
async def ingest(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(gateway_token),
) -> Response:
    """Every message is verified again against its device's registered key;
    only devices of the gateway's community are accepted; idempotent by
    batch id and by (device, seq). The reply is sent after the commit."""
    token = credentials.credentials if credentials else None
    app = request.app
    # authenticate before reading the body (a short transaction of its own)
    await run_in_threadpool(_check_token, app, token)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != CBOR:
        raise UnsupportedMediaType(f"Content-Type must be {CBOR}")
    body = await read_body(request, app.state.settings.max_batch_bytes)
    reply = await run_in_threadpool(_ingest, app, token, body)
    return Response(reply, media_type=CBOR)


def _check_token(app, token: str | None) -> None:
    with session_scope(app.state.sessions) as session:
        authenticate_gateway(session, token, app.state.clock())
