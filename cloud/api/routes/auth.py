"""Logging in (OAuth2 password flow) and out."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from ...crud import users as users_crud
from ...errors import Unauthorized
from ...schemas import Token
from ..deps import CurrentUser, NowDep, SessionDep, SettingsDep, user_token

router = APIRouter(prefix="/auth", tags=["auth"])


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/token", response_model=Token)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
) -> Token:
    """Exchange a username and password for a bearer token.

    Failed attempts are limited per username and client address: after
    `KAPOK_LOGIN_MAX_FAILURES` within `KAPOK_LOGIN_WINDOW_SECONDS`, 429 with
    Retry-After."""
    try:
        token, _ = users_crud.login(
            session,
            username=form.username,
            password=form.password,
            ip=client_address(request),
            now=now,
            lifetime_seconds=settings.access_token_minutes * 60,
            max_failures=settings.login_max_failures,
            window_seconds=settings.login_window_seconds,
            scrypt_n=settings.scrypt_n,
        )
    except Unauthorized:
        session.commit()  # keep the failure on record for the rate limit
        raise
    return Token(access_token=token, expires_at=now + settings.access_token_minutes * 60)


@router.post("/logout", status_code=204)
def logout(
    user: CurrentUser,
    session: SessionDep,
    now: NowDep,
    token: Annotated[str | None, Depends(user_token)],
) -> Response:
    """Revoke the token this request carries."""
    users_crud.revoke_token(session, token=token, now=now)
    return Response(status_code=204)
