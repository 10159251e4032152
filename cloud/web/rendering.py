"""Rendering pages: the Jinja2 environment, the response headers every page
carries, and `PageRoute`, which turns errors into pages.

The JSON API answers errors with `{"detail": ...}`; a person in a browser
gets a page in their language instead, with the same status code. Before
that page is rendered the transaction is rolled back, so a failed form
changes nothing.
"""

from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import CloudError
from . import queries, vendor
from .i18n import LANGUAGES, Translator
from .session import (
    LANG_COOKIE,
    LANG_COOKIE_SECONDS,
    CsrfRejected,
    LoginRequired,
    Page,
    is_https,
    language_of,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Scripts and styles come only from Kapok itself (uPlot included); pages
# cannot be framed (the valve confirmation must not be clickjacked).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # pages show private data: not kept by the browser or proxies, so the
    # back button after logout shows nothing
    "Cache-Control": "no-store",
}


def _other_languages(request: Request, lang: str) -> list[tuple[str, str]]:
    """(language, link) for the language switch: this page again when it can
    be fetched again (GET), else the home page."""
    out = []
    for other in LANGUAGES:
        if other == lang:
            continue
        if request.method == "GET":
            switched = request.url.include_query_params(lang=other)
            url = switched.path + "?" + switched.query  # relative: works behind proxies
        else:
            url = f"/?lang={other}"
        out.append((other, url))
    return out


def _html(request: Request, name: str, t: Translator, status: int, context: dict) -> HTMLResponse:
    html = env.get_template(name).render(
        request=request,
        _=t,
        languages=_other_languages(request, t.lang),
        uplot=vendor.uplot_available(),
        **context,
    )
    return HTMLResponse(html, status_code=status)


def render(page: Page, name: str, *, status: int = 200, **context) -> HTMLResponse:
    """A page for a logged-in user: with the navigation, the live alarm
    count and the CSRF token its forms need."""
    response = _html(
        page.request,
        name,
        page.t,
        status,
        {
            "page": page,
            "user": page.user,
            "csrf": page.csrf,
            "now": page.now,
            "live": queries.alarm_counts(page.session, communities=page.scope.communities),
            **context,
        },
    )
    remember_language(page.request, response, page.remember_lang)
    return response


def render_public(
    request: Request, name: str, *, t: Translator, status: int = 200, **context
) -> HTMLResponse:
    """A page without a logged-in user (login, errors before login)."""
    response = _html(request, name, t, status, {"page": None, "user": None, **context})
    _, remember = language_of(request)
    remember_language(request, response, remember)
    return response


def remember_language(request: Request, response: Response, lang: str | None) -> None:
    if lang:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=LANG_COOKIE_SECONDS,
            path="/",
            samesite="lax",
            secure=is_https(request),
        )


def redirect(url: str) -> RedirectResponse:
    """After a POST: see the result with a GET (303)."""
    return RedirectResponse(url, status_code=303)


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    if request.method != "GET":
        target = "/"
    return redirect("/login?next=" + quote(target, safe="/"))


def _validation_messages(exc) -> list[str]:
    out = []
    for error in exc.errors():
        where = ".".join(str(x) for x in error.get("loc", ()) if x not in ("body", "query"))
        out.append(f"{where}: {error.get('msg', '')}" if where else error.get("msg", ""))
    return out


# error pages with their own words; other statuses get the general ones
ERROR_KINDS = ("403", "404", "405", "409", "413", "422", "429", "csrf")


def _error_response(request: Request, exc: Exception) -> HTMLResponse:
    page: Page | None = getattr(request.state, "page", None)
    headers = {}
    if isinstance(exc, CsrfRejected):
        status, kind, details = 403, "csrf", []
    elif isinstance(exc, CloudError):
        status, kind, details = exc.status, str(exc.status), [exc.detail]
        headers = {k: v for k, v in (exc.headers or {}).items() if k != "WWW-Authenticate"}
    elif isinstance(exc, StarletteHTTPException):  # no such page, or a form's address opened
        status, kind, details = exc.status_code, str(exc.status_code), []
    else:  # validation of a path, query or form field
        status, kind, details = 422, "422", _validation_messages(exc)
    if page is not None:
        t = page.t
    else:
        lang, _ = language_of(request)
        t = Translator(lang, request.app.state.settings.timezone)
    kind = kind if kind in ERROR_KINDS else "other"
    context = {
        "title": t(f"error.title.{kind}"),
        "text": t(f"error.text.{kind}"),
        "details": details,
    }
    if page is not None:
        response = render(page, "error.html", status=status, **context)
    else:
        response = render_public(request, "error.html", t=t, status=status, **context)
    response.headers.update(headers)
    return response


async def _rollback(request: Request) -> None:
    session = getattr(request.state, "db", None)
    if session is not None:
        await run_in_threadpool(session.rollback)


def _drop_blank_query_values(request: Request) -> None:
    """A filter form's "all" (or an empty field) arrives as `community=`: on a
    page, a blank query value means the parameter was not given, so
    `community: int | None = None` reads it as None instead of a 422."""
    raw = request.scope.get("query_string", b"")
    if not raw:
        return
    pairs = raw.split(b"&")
    kept = [p for p in pairs if p and not p.endswith(b"=")]
    if len(kept) != len(pairs):  # the rest untouched, byte for byte
        request.scope["query_string"] = b"&".join(kept)
        request.__dict__.pop("_query_params", None)


class PageRoute(APIRoute):
    """A dashboard route: errors become pages, a missing login a redirect
    to /login, and every response carries the security headers."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            _drop_blank_query_values(request)
            try:
                response = await handler(request)
            except LoginRequired:
                response = _login_redirect(request)
            except (CloudError, CsrfRejected, RequestValidationError, ValidationError) as exc:
                await _rollback(request)
                response = await run_in_threadpool(_error_response, request, exc)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return page_handler


def not_routed(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
    """An unknown address (404) or a form's address opened as a page (405),
    outside /api/: the error page in the viewer's language, not JSON."""
    return _error_response(request, exc)
