"""The schema is declared once: the models of ``store/models.py`` and the migrations agree on both databases.

A fresh database is migrated to head and Alembic's autogenerate comparison (types and server defaults
included) must find nothing to do; a copy of the models with one thing changed must be found out, so the
comparison is known to look. Primary keys, which autogenerate does not compare, are compared here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import BigInteger, Column, Connection, DefaultClause, MetaData, String, create_engine, inspect, pool

from bench.servers import RunningServer, create_database
from store import migrate
from store.db import sqlalchemy_url
from store.models import SCHEMA_METADATA

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def migrated_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new, empty database of this backend, brought to the head revision by the migrations."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'schema.db'}"
    else:
        server: RunningServer = request.getfixturevalue("postgres_server")
        url = create_database(server.url)
    migrate(url)
    return url


@contextmanager
def connected(url: str) -> Iterator[Connection]:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def differences(connection: Connection, metadata: MetaData) -> list[tuple[str, str]]:
    """What autogenerate would change in the database to match ``metadata``: (operation, object) pairs."""
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
    found = []
    for entry in compare_metadata(context, metadata):
        # Column modifications come grouped per column as lists of tuples; everything else is one tuple.
        for operation in entry if isinstance(entry, list) else [entry]:
            found.append((operation[0], _named(operation)))
    return found


def _named(operation: tuple[Any, ...]) -> str:
    kind = operation[0]
    if kind.startswith("modify_"):
        return f"{operation[2]}.{operation[3]}"
    if kind in ("add_column", "remove_column"):
        return f"{operation[2]}.{operation[3].name}"
    return str(operation[1].name)


def copy_of_models() -> MetaData:
    copy = MetaData()
    for table in SCHEMA_METADATA.tables.values():
        table.to_metadata(copy)
    return copy


def test_migrations_at_head_match_the_models(migrated_url: str) -> None:
    with connected(migrated_url) as connection:
        assert differences(connection, SCHEMA_METADATA) == []


def test_primary_keys_match_the_models(migrated_url: str) -> None:
    """Autogenerate does not compare primary keys; ``rate_events`` has none on both sides."""
    with connected(migrated_url) as connection:
        database = inspect(connection)
        found = {name: database.get_pk_constraint(name)["constrained_columns"] for name in SCHEMA_METADATA.tables}
    declared = {name: [column.name for column in table.primary_key] for name, table in SCHEMA_METADATA.tables.items()}
    assert found == declared


def _longer_label(models: MetaData) -> None:
    models.tables["outputs"].c.label.type = String(300)


def _email_required(models: MetaData) -> None:
    models.tables["accounts"].c.email.nullable = False


def _plan_tier_server_default(models: MetaData) -> None:
    models.tables["accounts"].c.plan_tier.server_default = DefaultClause("free")


def _expiry_index_dropped(models: MetaData) -> None:
    outputs = models.tables["outputs"]
    outputs.indexes = {index for index in outputs.indexes if index.name != "outputs_by_expiry"}


def _link_key_not_unique(models: MetaData) -> None:
    links = models.tables["upload_links"]
    links.constraints = {item for item in links.constraints if item.name != "upload_links_by_key"}


def _column_added(models: MetaData) -> None:
    models.tables["upload_links"].append_column(Column("used_at", BigInteger))


CHANGES: dict[str, tuple[Callable[[MetaData], None], tuple[str, str]]] = {
    "type": (_longer_label, ("modify_type", "outputs.label")),
    "nullability": (_email_required, ("modify_nullable", "accounts.email")),
    "server default": (_plan_tier_server_default, ("modify_default", "accounts.plan_tier")),
    "index": (_expiry_index_dropped, ("remove_index", "outputs_by_expiry")),
    "unique constraint": (_link_key_not_unique, ("remove_constraint", "upload_links_by_key")),
    "column": (_column_added, ("add_column", "upload_links.used_at")),
}


def test_a_model_changed_in_one_place_differs_in_that_place(migrated_url: str) -> None:
    """Each change to a copy of the models is reported as exactly that one difference."""
    found = {}
    with connected(migrated_url) as connection:
        for name, (change, _) in CHANGES.items():
            models = copy_of_models()
            change(models)
            found[name] = differences(connection, models)
    assert found == {name: [expected] for name, (_, expected) in CHANGES.items()}


def test_alembic_check_from_the_repository_config_is_clean(migrated_url: str) -> None:
    """``alembic check`` as a developer runs it (alembic.ini, the project's env.py), on this database."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(migrated_url).replace("%", "%%"))
    command.check(config)  # raises AutogenerateDiffsDetected on any difference
