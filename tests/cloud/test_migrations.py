"""The migrations build exactly the schema the models describe, on SQLite
and on PostgreSQL, and `kapok cloud serve` can start from an empty database."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from kapok.cloud.core.db import alembic_config, make_engine, upgrade
from kapok.cloud.models import Base


def empty_database(backend, request, tmp_path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    dbs = request.getfixturevalue("pg_databases")
    return dbs.url_of(dbs.create())


def test_upgrade_head_gives_exactly_the_models_schema(backend, request, tmp_path):
    engine = make_engine(empty_database(backend, request, tmp_path))
    try:
        upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) | {"alembic_version"} == tables
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(backend, request, tmp_path):
    engine = make_engine(empty_database(backend, request, tmp_path))
    try:
        upgrade(engine)
        command.downgrade(alembic_config(engine), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert "readings" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
