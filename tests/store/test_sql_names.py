"""Every raw SQL statement the store runs names only tables and columns the models declare.

The statements are read from the store's source: every ``.one``/``.all``/``.execute`` call whose text is
a literal, a module constant, or an f-string of module constants (the column lists of ``store/models.py``).
Each one that names a table is compiled by SQLite (``EXPLAIN``, which prepares without running) against a
database made from the models alone; SQLite refuses an unknown table or column, and an ``ON CONFLICT``
target that no key or unique constraint covers. Statements built at run time are listed below with
the builder that yields each of their shapes. See docs/DECISIONS.md (schema).
"""

from __future__ import annotations

import ast
import importlib
import itertools
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from store.blob_key_forgetting import MOST_KEYS_PER_STATEMENT, forget_keys_sql
from store.listing import _page_query
from store.models import SCHEMA_METADATA
from store.views import OUTPUT_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
STATEMENT_METHODS = frozenset({"one", "all", "execute", "defer"})
# The tables a statement reads or writes: what makes it a statement about the schema.
TABLE_NAMED = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+([a-z_]+)", re.IGNORECASE)
# PostgreSQL's row lock names no column; SQLite has no row locks (its writer holds the whole file).
ROW_LOCK = re.compile(r"\s+FOR UPDATE$")


@dataclass(frozen=True)
class Statement:
    where: str
    sql: str


def _page_queries() -> Iterator[str]:
    """Every shape of the output listing's query (store/listing.py): each filter on and off."""
    for after, status, mime_type in itertools.product(
        (None, "out_x"), (None, "ready", "expired", "failed"), (None, "text/plain")
    ):
        yield _page_query("acc_x", after, status, mime_type, 0, 20)[0]


def _rendered_rows_queries() -> Iterator[str]:
    """The listing's read of the rows it has not rendered yet (store/listing.py): one to a full page of ids."""
    for count in (1, 2, 101):
        yield f"SELECT {OUTPUT_COLUMNS} FROM outputs WHERE account_id = ? AND id IN ({', '.join('?' * count)})"


def _forget_keys_queries() -> Iterator[str]:
    """Forgetting removed blobs' keys (store/blob_key_forgetting.py): one id to the most one statement takes."""
    for count in (1, 2, MOST_KEYS_PER_STATEMENT):
        yield forget_keys_sql(count)


# Call sites whose text is built at run time ("file:function"), and what yields each of its shapes.
BUILT_AT_RUN_TIME: dict[str, Callable[[], Iterator[str]]] = {
    "store/listing.py:read_page": _page_queries,
    "store/listing.py:_render_rows": _rendered_rows_queries,
    "store/blob_key_forgetting.py:forget_keys": _forget_keys_queries,
}


class _Calls(ast.NodeVisitor):
    """The statement calls of one store module, sorted into texts known here and texts built at run time."""

    def __init__(self, where: str, constants: dict[str, object]) -> None:
        self.where, self.constants = where, constants
        self.statements: list[Statement] = []
        self.built_at_run_time: set[str] = set()
        self._functions: list[tuple[str, set[str]]] = []

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, name: str) -> None:
        arguments = node.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
        self._functions.append((name, {argument.arg for argument in every if argument is not None}))
        self.generic_visit(node)
        self._functions.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._enter(node, node.name)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._enter(node, node.name)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._enter(node, self._functions[-1][0] if self._functions else "<module>")

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        if not (isinstance(node.func, ast.Attribute) and node.func.attr in STATEMENT_METHODS and node.args):
            return
        text = node.args[0]
        if self._passed_through(text):
            return  # the caller's statement, read at the caller's own call site
        sql = self._evaluate(text)
        if sql is None:
            self.built_at_run_time.add(f"{self.where}:{self._functions[-1][0] if self._functions else '<module>'}")
        else:
            self.statements.append(Statement(f"{self.where}:{node.lineno}", sql))

    def _passed_through(self, text: ast.expr) -> bool:
        """A text made from the enclosing functions' own parameters (a ``Tx`` method handing on ``sql``)."""
        parameters = set().union(*(names for _, names in self._functions))
        return any(isinstance(node, ast.Name) and node.id in parameters for node in ast.walk(text))

    def _evaluate(self, text: ast.expr) -> str | None:
        if isinstance(text, ast.Constant) and isinstance(text.value, str):
            return text.value
        if isinstance(text, ast.Name):
            value = self.constants.get(text.id)
            return value if isinstance(value, str) else None
        if isinstance(text, ast.JoinedStr):
            parts = []
            for part in text.values:
                if isinstance(part, ast.FormattedValue):
                    part = part.value
                value = self._evaluate(part)
                if value is None:
                    return None
                parts.append(value)
            return "".join(parts)
        return None


def store_statements() -> tuple[list[Statement], set[str]]:
    """The statement texts of every store module, and the call sites whose text is built at run time."""
    statements: list[Statement] = []
    built_at_run_time: set[str] = set()
    for path in sorted((ROOT / "store").rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[1] == "migrations":
            continue  # the migrations speak SQLAlchemy, checked against the models by test_schema.py
        module = importlib.import_module(".".join(relative.with_suffix("").parts).removesuffix(".__init__"))
        calls = _Calls(str(relative), vars(module))
        calls.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        statements += calls.statements
        built_at_run_time |= calls.built_at_run_time
    for site, shapes in BUILT_AT_RUN_TIME.items():
        statements += [Statement(site, sql) for sql in shapes()]
    return statements, built_at_run_time


@pytest.fixture(scope="module")
def models_database() -> Iterator[sqlite3.Connection]:
    """An in-memory SQLite database with exactly the tables, keys and indexes the models declare."""
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        SCHEMA_METADATA.create_all(connection)
        connection.commit()
        database = connection.connection.driver_connection
        assert isinstance(database, sqlite3.Connection)
        yield database
    engine.dispose()


def refusal(database: sqlite3.Connection, sql: str) -> str | None:
    """SQLite's reason not to compile ``sql`` against the models' schema, or None when it compiles."""
    try:
        database.execute(f"EXPLAIN {ROW_LOCK.sub('', sql)}", [None] * sql.count("?"))
    except sqlite3.Error as exc:
        return str(exc)
    return None


# Call sites that run statements handed to them in a list, each checked where its caller wrote it:
# the read batcher sends the texts given to ``Database.one``.
RUNS_HANDED_STATEMENTS = frozenset({"store/db.py:_send_batch"})


def test_statements_built_at_run_time_are_all_listed_here() -> None:
    _, built_at_run_time = store_statements()
    assert built_at_run_time - RUNS_HANDED_STATEMENTS == set(BUILT_AT_RUN_TIME)


def test_every_statement_names_only_tables_and_columns_of_the_models(models_database: sqlite3.Connection) -> None:
    statements, _ = store_statements()
    schema_statements = [statement for statement in statements if TABLE_NAMED.search(statement.sql)]
    refused = {statement: refusal(models_database, statement.sql) for statement in schema_statements}
    assert {statement: reason for statement, reason in refused.items() if reason is not None} == {}
    # The reading found the store's statements: together they touch every table the models declare.
    named = {table.lower() for statement in schema_statements for table in TABLE_NAMED.findall(statement.sql)}
    assert named == set(SCHEMA_METADATA.tables)


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param("SELECT id, nickname FROM accounts WHERE id = ?", id="unknown column"),
        pytest.param("SELECT id FROM account WHERE id = ?", id="unknown table"),
        pytest.param("UPDATE outputs SET state = 'ready' WHERE id = ?", id="unknown column set"),
        pytest.param("INSERT INTO rate_events (bucket, at, weight) VALUES (?, ?, ?)", id="unknown column inserted"),
        pytest.param(
            "INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (value) DO NOTHING",
            id="conflict target without a unique constraint",
        ),
    ],
)
def test_a_statement_naming_what_the_models_lack_is_refused(models_database: sqlite3.Connection, sql: str) -> None:
    assert refusal(models_database, sql) is not None
