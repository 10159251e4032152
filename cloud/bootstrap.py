"""What `kapok cloud serve` does before it listens: bring the schema up to
date, create the signing keys, and on the first start the user `admin`."""

import os
import time

from sqlalchemy import inspect, select

from .core.config import Settings
from .core.db import engine_for, session_factory, session_scope, upgrade
from .crud import users
from .keys import KeyStore, sync_records
from .models import User


class FirstStartError(RuntimeError):
    """The first start needs KAPOK_ADMIN_PASSWORD."""


def prepare(settings: Settings, *, now: float | None = None) -> None:
    now = time.time() if now is None else now
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    engine = engine_for(settings)
    try:
        fresh = not inspect(engine).has_table("users")
        if (fresh or not _has_users(engine)) and not settings.admin_password:
            raise FirstStartError(
                "first start: set KAPOK_ADMIN_PASSWORD to the password for the user 'admin'"
            )
        upgrade(engine)
        keys = KeyStore(settings.data_dir / "keys")
        keys.ensure()
        with session_scope(session_factory(engine)) as session:
            sync_records(session, keys, now=now)
            users.ensure_admin(
                session, password=settings.admin_password, scrypt_n=settings.scrypt_n, now=now
            )
    finally:
        engine.dispose()


def _has_users(engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(User.id).limit(1)).first() is not None
