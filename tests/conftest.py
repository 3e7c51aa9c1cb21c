"""Shared fixtures: settings on a temp dir, a service on a manual clock, and an in-process HTTP client
that runs the application's real lifespan.

Every test that builds a service runs once per backend pair: ``sqlite`` (SQLite + local files) and
``postgres`` (PostgreSQL + S3, real servers started once per session by :mod:`bench.servers`; per test
an empty database cloned from a migrated template and an empty bucket, reused once emptied again: see
:class:`Spares`). ``OUTPUTLAYER_TEST_BACKENDS`` (comma-separated) narrows the set, e.g.
``OUTPUTLAYER_TEST_BACKENDS=sqlite`` for a quick run.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import psycopg.sql
import pytest

from bench.servers import RunningServer, S3Server, create_database, start_postgres, start_s3
from rest.app import create_app
from store import ArtifactService, ManualClock, Settings, migrate, open_service


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with ``pytest.mark.parametrize(indirect=...)``) to change settings."""
    return {}


REQUEST_ID = re.compile(r"^req_[0-9A-HJKMNP-TV-Z]{26}$")
BACKENDS = tuple(
    name.strip() for name in os.environ.get("OUTPUTLAYER_TEST_BACKENDS", "sqlite,postgres").split(",") if name.strip()
)
TEMPLATE_DATABASE = "outputlayer_template"


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3(tmp_path_factory.mktemp("s3"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: RunningServer) -> str:
    """A database migrated once; each test clones it (``CREATE DATABASE … TEMPLATE``)."""
    url = create_database(postgres_server.url, f"{TEMPLATE_DATABASE}_{secrets.token_hex(3)}")
    migrate(url)
    return url.rsplit("/", 1)[1]


@pytest.fixture(params=[pytest.param(name, id=name) for name in BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


# Where the backend cannot change the answer (routes, headers, messages, schemas), one pair is enough.
ANY_BACKEND = "sqlite" if "sqlite" in BACKENDS else BACKENDS[0]


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``any_backend`` runs on :data:`ANY_BACKEND` only, not on every pair of ``backend``
    (added as a ``parametrize`` mark, which pytest lets win over the fixture's own params)."""
    definition = metafunc.definition
    if "backend" not in metafunc.fixturenames or not definition.get_closest_marker("any_backend"):
        return
    if not any("backend" in _parametrized_names(mark) for mark in definition.iter_markers("parametrize")):
        definition.add_marker(pytest.mark.parametrize("backend", [ANY_BACKEND], indirect=True))


def _parametrized_names(mark: pytest.Mark) -> list[str]:
    names = mark.kwargs.get("argnames", mark.args[0] if mark.args else ())
    return [name.strip() for name in names.split(",")] if isinstance(names, str) else list(names)


class Spares:
    """Databases and buckets that finished tests left, emptied back to the template's state, for reuse.

    A fresh pair per test is too dear: cloning the template costs ~0.3 s, and each new SeaweedFS bucket
    takes ~0.2 s and one of its volumes (~80 on a typical disk, after which every write fails). Emptying
    takes a few milliseconds. Anything that cannot be vouched for as empty is not reused.
    """

    def __init__(self, server: RunningServer, template: str, s3: S3Server) -> None:
        import minio

        self.server, self.template, self.s3 = server, template, s3
        self.databases: list[str] = []
        self.buckets: list[str] = []
        self.client = minio.Minio(s3.endpoint, s3.access_key, s3.secret_key, secure=s3.secure, region=s3.region)
        with psycopg.connect(self._url(template)) as conn:
            self.schema = _schema(conn)

    def _url(self, database: str) -> str:
        return self.server.url.rsplit("/", 1)[0] + "/" + database

    def take(self) -> tuple[str, str]:
        database = self.databases.pop() if self.databases else create_database(self.server.url, template=self.template)
        bucket = self.buckets.pop() if self.buckets else f"t-{secrets.token_hex(6)}"
        return database, bucket

    def give_back(self, database_url: str, bucket: str) -> None:
        if self._empty_database(database_url):
            self.databases.append(database_url)
        if self._empty_bucket(bucket):
            self.buckets.append(bucket)

    def _empty_database(self, url: str) -> bool:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                # A closed pool's sessions end asynchronously; one that lingers could still write later.
                for _ in range(200):
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    ).fetchone()
                    if row is not None and row[0] == 0:
                        break
                    time.sleep(0.01)
                else:
                    return False
                if _schema(conn) != self.schema:
                    return False
                with conn.transaction():
                    for table in self.schema[-1]:
                        if table != "alembic_version":
                            conn.execute(psycopg.sql.SQL("DELETE FROM {}").format(psycopg.sql.Identifier(table)))
            return True
        except psycopg.Error:
            return False

    def _empty_bucket(self, bucket: str) -> bool:
        import minio.error
        import urllib3

        client = self.client
        try:
            for upload in client._list_multipart_uploads(bucket).uploads:
                client._abort_multipart_upload(bucket, str(upload.object_name), str(upload.upload_id))
            names = [str(item.object_name) for item in client.list_objects(bucket, recursive=True)]
            if not self._remove(bucket, names):
                return False
            # SeaweedFS keeps emptied "<account>/" folders (also of aborted uploads), each slowing every later
            # listing; deleting the folder's own key removes it.
            folders = [str(item.object_name) for item in client.list_objects(bucket) if item.is_dir]
            if not self._remove(bucket, folders):
                return False
            # Nothing at the top level (not even a folder) means nothing at all.
            left = list(client.list_objects(bucket))
            return not left and not client._list_multipart_uploads(bucket).uploads
        except (minio.error.MinioException, urllib3.exceptions.HTTPError, OSError):
            return False

    def _remove(self, bucket: str, names: list[str]) -> bool:
        import minio.deleteobjects

        errors = self.client.remove_objects(bucket, [minio.deleteobjects.DeleteObject(name) for name in names])
        return not list(errors)


# What a reused database must still match: its tables' columns, its indexes and its Alembic revision.
SCHEMA_SQL = """
SELECT
  (SELECT string_agg(c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                     ORDER BY c.relname, a.attnum)
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
  (SELECT string_agg(indexdef, '; ' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = 'public') AS indexes,
  (SELECT string_agg(version_num, ', ') FROM alembic_version) AS revision,
  (SELECT array_agg(tablename::text ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public') AS tables
"""


def _schema(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    found = conn.execute(SCHEMA_SQL).fetchone()
    assert found is not None
    return tuple(found)


@pytest.fixture(scope="session")
def spares(request: pytest.FixtureRequest) -> Spares:
    return Spares(
        request.getfixturevalue("postgres_server"),
        request.getfixturevalue("postgres_template"),
        request.getfixturevalue("s3_server"),
    )


@pytest.fixture
def backend_urls(backend: str, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """``database_url`` and ``blob_url`` for the backend pair (empty: the embedded defaults)."""
    if backend == "sqlite":
        yield {}
        return
    pool: Spares = request.getfixturevalue("spares")
    database_url, bucket = pool.take()
    yield {"database_url": database_url, "blob_url": pool.s3.url.replace(f"/{pool.s3.bucket}?", f"/{bucket}?")}
    pool.give_back(database_url, bucket)


@pytest.fixture
def settings(tmp_path: Path, settings_overrides: dict[str, Any], backend_urls: dict[str, str]) -> Settings:
    return Settings(data_dir=tmp_path / "data", base_url="http://testserver", **{**backend_urls, **settings_overrides})


@pytest.fixture
def service(settings: Settings, clock: ManualClock) -> Iterator[ArtifactService]:
    active = open_service(settings, clock=clock)
    yield active
    active.close()


@pytest.fixture
async def client(settings: Settings, service: ArtifactService) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(settings, service=service, sweeper=False)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            await app({**scope, "state": dict(state or {})}, receive, send)

        transport = httpx2.ASGITransport(app=with_state)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
async def api_key(client: httpx2.AsyncClient) -> str:
    response = await client.post("/v1/keys/register", json={})
    assert response.status_code == 201
    key: str = response.json()["apiKey"]
    return key


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_contract(body: dict[str, Any]) -> dict[str, Any]:
    """The structural rules every agent_contract obeys (SPEC section 2); returns the contract."""
    contract: dict[str, Any] = body["agent_contract"]
    assert list(contract) == [
        "version",
        "content_accessible",
        "safe_to_share",
        "retryable",
        "expires_in_seconds",
        "next_actions",
    ]
    assert contract["version"] == "1"
    actions = contract["next_actions"]
    assert actions, "a contract always offers at least one action"
    assert [a["recommended"] for a in actions].count(True) == 1
    assert actions[0]["recommended"] is True
    for item in actions:
        assert list(item)[:3] == ["action", "available", "recommended"]
        if item["available"]:
            assert "method" in item and "endpoint" in item
        else:
            assert "reason" in item and "required_body_changes" in item
        assert ("retry_after_seconds" in item) == (item["action"] == "retry_after_wait")
    return contract


def assert_error(response: Any, status: int, code: str, *, retryable: bool, action: str) -> dict[str, Any]:
    """An error envelope (SPEC section 3) with this status, code, retryability and recommended action."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert list(body)[:3] == ["error", "message", "request_id"]
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert REQUEST_ID.match(body["request_id"])
    assert body["request_id"] == response.headers["x-request-id"]
    contract = assert_contract(body)
    assert contract["retryable"] is retryable
    assert contract["content_accessible"] is False
    assert contract["safe_to_share"] is False
    assert contract["expires_in_seconds"] is None
    assert contract["next_actions"][0]["action"] == action
    return body
