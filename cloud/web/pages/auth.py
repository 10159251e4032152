"""Logging in and out, and the live alarm count the navigation polls."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response

from ...api.deps import NowDep, SessionDep, SettingsDep
from ...api.routes.auth import client_address
from ...crud import users as users_crud
from ...errors import TooManyRequests, Unauthorized
from .. import queries
from ..i18n import Translator
from ..rendering import PageRoute, redirect, render_public
from ..session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CsrfRejected,
    PageDep,
    PostedPageDep,
    is_https,
    language_of,
    new_login_csrf,
    safe_next,
    same_token,
)

router = APIRouter(route_class=PageRoute)


def _login_page(
    request: Request,
    settings,
    *,
    next_url: str,
    username: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    lang, _ = language_of(request)
    csrf = new_login_csrf()
    response = render_public(
        request,
        "login.html",
        t=Translator(lang, settings.timezone),
        status=status,
        csrf=csrf,
        next_url=next_url,
        username=username,
        error=error,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
        path="/login",
    )
    return response


@router.get("/login")
def login_form(
    request: Request, session: SessionDep, settings: SettingsDep, now: NowDep, next: str = "/"
) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token and users_crud.user_by_token(session, token=token, now=now) is not None:
        return redirect(safe_next(next))
    return _login_page(request, settings, next_url=safe_next(next))


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """The same login as `POST /api/v1/auth/token` (password check, rate
    limit, token lifetime); the token goes into an HttpOnly cookie."""
    request.state.db = session
    if not same_token(csrf, request.cookies.get(LOGIN_CSRF_COOKIE)):
        raise CsrfRejected
    lang, _ = language_of(request)
    t = Translator(lang, settings.timezone)
    try:
        token, _user = users_crud.login(
            session,
            username=username,
            password=password,
            ip=client_address(request),
            now=now,
            lifetime_seconds=settings.access_token_minutes * 60,
            max_failures=settings.login_max_failures,
            window_seconds=settings.login_window_seconds,
            scrypt_n=settings.scrypt_n,
        )
    except Unauthorized:
        session.commit()  # the failure counts towards the rate limit
        return _login_page(
            request,
            settings,
            next_url=safe_next(next),
            username=username,
            error=t("login.wrong"),
            status=401,
        )
    except TooManyRequests as e:
        response = _login_page(
            request,
            settings,
            next_url=safe_next(next),
            username=username,
            error=t("login.too_many", seconds=e.retry_after),
            status=429,
        )
        response.headers["Retry-After"] = str(max(1, int(e.retry_after)))
        return response
    response = redirect(safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.access_token_minutes * 60),
        httponly=True,
        samesite="strict",
        secure=is_https(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(page: PostedPageDep) -> Response:
    """Revoke the session's token (it stops working for the API too)."""
    token = page.request.cookies.get(SESSION_COOKIE)
    users_crud.revoke_token(page.session, token=token, now=page.now)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/live.json")
def live(page: PageDep) -> JSONResponse:
    """Unresolved alarms the viewer may see; the navigation badge polls it."""
    return JSONResponse(queries.alarm_counts(page.session, communities=page.scope.communities))
