"""Database engine, sessions and schema migrations.

SQLite (one file, zero set-up) and PostgreSQL (psycopg 3) run the same code.
SQLite gets WAL (readers never block the writer), foreign keys and a busy
timeout; a `postgresql://` URL is steered to the psycopg 3 driver.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3; everything else is
    passed to SQLAlchemy as given."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, prepared_statements: bool = True, **kwargs) -> Engine:
    """An engine for `url`. `prepared_statements=False`: psycopg never
    prepares statements on the server, as a pooler in transaction mode
    (PgBouncer before 1.21) needs: the next transaction may run on another
    server connection that never saw them."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite starts transactions lazily and never for SELECT; take that
        # over. BEGIN IMMEDIATE takes the write lock at the start, so a
        # transaction that reads and then writes waits its turn (busy_timeout)
        # instead of failing with SQLITE_BUSY when another writer got in
        # between. It serialises transactions: fine for the one-file set-up,
        # PostgreSQL is there for scale.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if not prepared_statements:
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "prepare_threshold": None}
    return create_engine(url, pool_pre_ping=True, **kwargs)


def engine_for(settings) -> Engine:
    """The engine of the database `settings` name (core.config.Settings)."""
    return make_engine(settings.database_url, prepared_statements=not settings.db_pooler)


def _sqlite_pragmas(dbapi_conn, _record):
    dbapi_conn.isolation_level = None  # see make_engine: we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on disk before we answer, power loss included
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def session_factory(engine: Engine, *, info: dict | None = None) -> sessionmaker[Session]:
    """`info`: copied into every session's `info` (e.g. the public URL that
    notifications queued in a transaction link to)."""
    return sessionmaker(engine, expire_on_commit=False, info=info or {})


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(engine: Engine) -> Config:
    """Alembic's configuration without an alembic.ini: the migrations live in
    the package, the connection comes from `engine`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (what `kapok cloud serve` does at start)."""
    command.upgrade(alembic_config(engine), revision)
