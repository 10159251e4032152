"""Who is looking at a page: the session cookie, the CSRF token, the
language, and the same scope the JSON API uses.

The session cookie holds an ordinary access token, made by the same
`crud.users.login` as `POST /api/v1/auth/token` (same password check, same
rate limit, same expiry and revocation), and the user it names is scoped by
the same `api.deps.get_scope`: a manager of one community gets 404 for
every page of another.

CSRF: every state-changing form is a POST carrying a token derived from the
session token (an HMAC of it). A page of another site can neither read the
session cookie (HttpOnly, and SameSite=Strict keeps it off cross-site
requests anyway) nor the token, and the token changes with every login.
The login form itself uses a double-submit cookie.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Request
from sqlalchemy.orm import Session

from ..api.deps import KeysDep, NowDep, Scope, SessionDep, SettingsDep, get_scope
from ..core.config import Settings
from ..crud import users as users_crud
from ..errors import Forbidden
from ..keys import KeyStore
from ..models import User
from .i18n import LANGUAGES, Translator, pick_language

SESSION_COOKIE = "kapok_session"
LOGIN_CSRF_COOKIE = "kapok_login_csrf"
LANG_COOKIE = "kapok_lang"
LANG_COOKIE_SECONDS = 365 * 86400


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to /login."""


class CsrfRejected(Exception):
    """A POST without the right CSRF token: 403, nothing changed."""


def csrf_token_for(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"kapok dashboard csrf", hashlib.sha256).hexdigest()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def same_token(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def is_https(request: Request) -> bool:
    # behind a proxy, uvicorn rewrites the scheme from X-Forwarded-Proto
    # when the proxy is trusted (--forwarded-allow-ips)
    return request.url.scheme == "https"


def language_of(request: Request, user: User | None = None) -> tuple[str, str | None]:
    """(language to speak, language to remember in the cookie or None).
    `?lang=` wins, then the cookie, then the user's own setting, then zh-CN."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked, asked
    lang = pick_language(request.cookies.get(LANG_COOKIE), user.locale if user else None)
    return lang, None


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else goes home (no open
    redirects to other sites)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@dataclass
class Page:
    """Everything a page handler needs about the request and its viewer."""

    request: Request
    session: Session
    settings: Settings
    keys: KeyStore
    now: float
    user: User
    scope: Scope
    t: Translator
    csrf: str
    remember_lang: str | None = None

    @property
    def lang(self) -> str:
        return self.t.lang

    @property
    def is_admin(self) -> bool:
        return self.scope.is_admin

    def require_admin(self) -> None:
        # the same answer the API gives a manager on an admin route
        if not self.scope.is_admin:
            raise Forbidden("admins only")


def get_page(
    request: Request,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
    keys: KeysDep,
) -> Page:
    request.state.db = session  # the page route rolls it back on errors
    token = request.cookies.get(SESSION_COOKIE)
    user = users_crud.user_by_token(session, token=token, now=now) if token else None
    if user is None:
        raise LoginRequired
    lang, remember = language_of(request, user)
    page = Page(
        request=request,
        session=session,
        settings=settings,
        keys=keys,
        now=now,
        user=user,
        scope=get_scope(user, session),
        t=Translator(lang, settings.timezone),
        csrf=csrf_token_for(token),
        remember_lang=remember,
    )
    request.state.page = page
    return page


PageDep = Annotated[Page, Depends(get_page)]


def get_posted_page(page: PageDep, csrf: Annotated[str, Form()] = "") -> Page:
    """A page answering a state-changing form: the CSRF token must match."""
    if not same_token(csrf, page.csrf):
        raise CsrfRejected
    return page


PostedPageDep = Annotated[Page, Depends(get_posted_page)]
