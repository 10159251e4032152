"""`kapok cloud ...`: run the cloud service and administer it."""

import json
import time

import typer

from .core.config import Settings

app = typer.Typer(
    name="cloud",
    help="The Kapok cloud service: API, dashboard, ingest from gateways.",
    no_args_is_help=True,
    add_completion=False,
)

DbOption = typer.Option(
    None,
    "--db",
    envvar="KAPOK_DB",
    help="database URL: sqlite:///file.db or postgresql://user:pw@host/db "
    "(default: kapok.db in the data directory, KAPOK_DATA_DIR)",
)


def _fail(message: str) -> None:
    typer.echo(f"kapok cloud: {message}", err=True)
    raise typer.Exit(code=2)


def _prepared(db: str | None) -> Settings:
    from .bootstrap import FirstStartError, prepare
    from .keys import SigningKeyError

    try:
        settings = Settings.from_env(db=db)
        prepare(settings)
    except FirstStartError as e:
        _fail(str(e))
    except SigningKeyError as e:
        _fail(str(e))
    except ValueError as e:  # settings from the environment
        _fail(" ".join(str(e).split()))
    except Exception as e:  # database unreachable and the like: one clear line
        _fail(f"cannot prepare the database: {type(e).__name__}: {str(e).splitlines()[0]}")
    return settings


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    db: str | None = DbOption,
    workers: int = typer.Option(
        1, "--workers", min=1, help="worker processes on the one database (more than 1: PostgreSQL)"
    ),
) -> None:
    """Upgrade the database, then serve the API and dashboard. The first
    start creates the user `admin` with the password in KAPOK_ADMIN_PASSWORD."""
    import os

    import uvicorn

    from .main import create_app

    if workers > 1 and _is_sqlite(db):
        _fail(
            f"--workers {workers} needs PostgreSQL (--db postgresql://...): SQLite has one "
            "writer and no way to tell other processes of a queued command; use --workers 1"
        )
    settings = _prepared(db)
    typer.echo(
        f"kapok cloud: http://{host}:{port}/ (database {_safe_url(settings)}, "
        f"{workers} worker{'s' if workers > 1 else ''})",
        err=True,
    )
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
        return
    # each worker process builds its app from the environment (create_app());
    # the database was migrated and the keys made once, here
    if db:
        os.environ["KAPOK_DB"] = db
    uvicorn.run(
        "kapok.cloud.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@app.command("add-gateway")
def add_gateway(
    name: str = typer.Option(..., "--name", help="a name people recognise"),
    community: str = typer.Option(..., "--community", help="community id or name"),
    db: str | None = DbOption,
) -> None:
    """Register a gateway; prints {"id": ..., "token": ...} (the token only this once)."""
    from sqlalchemy import select

    from .core.db import engine_for, session_factory, session_scope
    from .crud import audit, gateways
    from .errors import CloudError
    from .models import Community

    settings = _prepared(db)
    engine = engine_for(settings)
    try:
        with session_scope(session_factory(engine)) as session:
            found = None
            if community.isdigit():
                found = session.get(Community, int(community))
            if found is None:
                found = session.scalar(select(Community).where(Community.name == community))
            if found is None:
                _fail(f"no community {community!r}")
            now = time.time()
            gateway, token = gateways.create_gateway(session, community=found, name=name, now=now)
            audit.record(
                session,
                actor="cli",
                action="gateway.create",
                target=f"gateway:{gateway.id}",
                community_id=found.id,
                detail={"name": name},
                now=now,
            )
    except CloudError as e:
        _fail(e.detail)
    finally:
        engine.dispose()
    typer.echo(json.dumps({"id": gateway.id, "token": token}))


@app.command("rotate-key")
def rotate_key(
    name: str = typer.Argument(..., help="cloud (signs commands) or firmware (signs manifests)"),
    db: str | None = DbOption,
) -> None:
    """Replace a signing key; prints the new public key (hex)."""
    from .core.db import engine_for, session_factory, session_scope
    from .crud import keys as keys_crud
    from .keys import KEY_NAMES, KeyStore

    if name not in KEY_NAMES:
        _fail(f"unknown key {name!r} (one of {', '.join(KEY_NAMES)})")
    settings = _prepared(db)
    engine = engine_for(settings)
    try:
        with session_scope(session_factory(engine)) as session:
            record = keys_crud.rotate(
                session,
                keys=KeyStore(settings.data_dir / "keys"),
                name=name,
                actor="cli",
                now=time.time(),
            )
            public = record.public_key.hex()
    finally:
        engine.dispose()
    typer.echo(public)


def _is_sqlite(db: str | None) -> bool:
    from sqlalchemy.engine import make_url

    from .core.db import normalize_url

    try:
        url = Settings.from_env(db=db).database_url
        return make_url(normalize_url(url)).get_backend_name() == "sqlite"
    except Exception:  # a bad URL or setting: _prepared says what is wrong
        return False


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    from .core.db import normalize_url

    return make_url(normalize_url(settings.database_url)).render_as_string(hide_password=True)
