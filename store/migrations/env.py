"""Alembic environment: runs the migrations online against the URL :func:`store.db.migrate` passes.

Concurrent ``outputlayer serve`` start-ups migrate one at a time: on PostgreSQL an advisory lock
serialises them; on SQLite the whole run is one ``BEGIN IMMEDIATE`` transaction, which holds the
file's write lock from before the schema version is read until the new one is committed.

The target schema is the models' (:mod:`store.models`): ``alembic revision --autogenerate`` and
``alembic check`` compare the database with them, types and server defaults included.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, event, make_url, pool, text

from store.models import SCHEMA_METADATA

MIGRATION_LOCK_ID = 7_203_114_001
# As long as the service's own connections wait for the write lock (store.db).
SQLITE_BUSY_TIMEOUT_SECONDS = 10.0


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    sqlite = make_url(url).get_backend_name() == "sqlite"
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS} if sqlite else {}
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    if sqlite:
        # pysqlite sends no BEGIN before DDL and only a deferred one before writes, so two processes
        # could both read "no schema yet" and both create it (the loser failing on "table already
        # exists"). SQLAlchemy's recipe: let the driver leave transactions alone and begin them here.

        @event.listens_for(engine, "connect")
        def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
        try:
            # Transactional DDL on SQLite too, so reading the version and migrating is one transaction.
            context.configure(
                connection=connection,
                render_as_batch=sqlite,
                transactional_ddl=True,
                target_metadata=SCHEMA_METADATA,
                compare_type=True,
                compare_server_default=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
                connection.commit()
    engine.dispose()


run_migrations_online()
