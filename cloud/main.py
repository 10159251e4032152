"""The FastAPI application: `create_app(settings)`.

The dashboard (`kapok.cloud.web`, built on this JSON API) plugs in here when
it is installed: its `router` is included and `cloud/web/static` is served
at `/static`.
"""

import asyncio
import contextlib
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError

from kapok import __version__

from .api.routes import (
    alarms,
    api_keys,
    audit,
    auth,
    billing,
    buildings,
    channels,
    commands,
    communities,
    devices,
    firmware,
    gateway,
    gateways,
    ingest,
    keys,
    platform,
    rules,
    tariffs,
    units,
    users,
    work_orders,
)
from .checks import run_forever
from .core.config import Settings
from .core.db import engine_for, session_factory
from .errors import CloudError
from .keys import KeyStore
from .notifications import escalation, sender
from .notify import CommandNotifier, PostgresListener

API_PREFIX = "/api/v1"
WEB = Path(__file__).resolve().parent / "web"


def api_router() -> APIRouter:
    api = APIRouter(prefix=API_PREFIX)
    for module in (auth, communities, buildings, units, gateways, devices, commands, alarms):
        api.include_router(module.router)
    api.include_router(users.router)  # /users/me before /users/{id}
    api.include_router(users.admin)
    for module in (ingest, gateway, firmware, billing, audit, keys, api_keys, platform, rules):
        api.include_router(module.router)
    api.include_router(tariffs.router)
    api.include_router(channels.router)
    api.include_router(work_orders.router)
    api.include_router(work_orders.technicians_router)
    api.include_router(tariffs.bills)
    api.include_router(tariffs.community_bills)

    @api.get("/health", tags=["health"])
    def health() -> dict:
        """No login needed: for load balancers and start-up scripts; `worker`
        is the answering process (several run behind one address)."""
        return {"status": "ok", "version": __version__, "worker": os.getpid()}

    return api


def create_app(settings: Settings | None = None, *, clock: Callable[[], float] = time.time):
    """The app for `settings` (default: from the environment). The database
    must be migrated and the keys created first (`bootstrap.prepare`)."""
    settings = settings or Settings.from_env()
    engine = engine_for(settings)
    sessions = session_factory(engine, info={escalation.PUBLIC_URL: settings.public_url})
    notifier = CommandNotifier()
    notifier.attach(sessions)
    wakeup = sender.Wakeup()
    wakeup.attach(sessions)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # other workers' commands wake this one's long polls (notify.py)
        listener = None
        if engine.dialect.name == "postgresql":
            listener = PostgresListener(notifier, settings.listen_url).start()
        tasks = []
        if settings.background_checks:
            tasks.append(asyncio.create_task(run_forever(app)))
        if settings.notify_worker:
            tasks.append(asyncio.create_task(sender.run_forever(app)))
        try:
            yield
        finally:
            if listener is not None:
                listener.stop()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            engine.dispose()

    app = FastAPI(
        title="Kapok cloud",
        version=__version__,
        description="Smart-community meter readings, alarms, commands, billing and "
        "firmware rollouts. Times are Unix seconds; bytes are hex.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.keys = KeyStore(settings.data_dir / "keys")
    app.state.notifier = notifier
    app.state.notify_wakeup = wakeup
    app.state.clock = clock

    @app.exception_handler(CloudError)
    async def cloud_error(request: Request, exc: CloudError):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, exc: OperationalError):
        # busy (SQLite lock wait exhausted) or unreachable: nothing was
        # stored, the client may retry
        return JSONResponse(
            {"detail": "database busy or unreachable; retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(IntegrityError)
    async def conflicting_write(request: Request, exc: IntegrityError):
        # a concurrent request stored the same thing first; nothing of this one was kept
        return JSONResponse(
            {"detail": "conflicts with data stored meanwhile; retry"}, status_code=409
        )

    app.include_router(api_router())
    if settings.dashboard:
        _mount_web(app)
    return app


def _mount_web(app: FastAPI) -> None:
    if importlib.util.find_spec("kapok.cloud.web") is None:
        return
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    web = importlib.import_module("kapok.cloud.web")
    router = getattr(web, "router", None)
    if router is not None:
        app.include_router(router)
    rendering = importlib.import_module("kapok.cloud.web.rendering")

    @app.exception_handler(StarletteHTTPException)
    async def not_routed(request: Request, exc: StarletteHTTPException):
        # the API and its documents keep JSON; a person's browser gets a page
        path = request.url.path
        if path.startswith(("/api/", "/static/", "/openapi.json", "/docs", "/redoc")):
            return await http_exception_handler(request, exc)
        return rendering.not_routed(request, exc)

    static = WEB / "static"
    if static.is_dir():
        app.mount("/static", StaticFiles(directory=static), name="static")
