"""Fixtures for the multi-process tests: a fresh shared backend per test.

``shared`` runs a test once per backend pair named in ``OUTPUTLAYER_TEST_BACKENDS``: ``postgres``
(a fresh database cloned from the session's migrated template on the session PostgreSQL, and a
fresh bucket on the session S3 server: the servers under test create it, racing each other) and
``sqlite`` (one SQLite file and one blob directory in the test's temp dir). ``pg_s3`` is the
PostgreSQL + S3 pair alone. The fault tests start their own servers, since they stop them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.servers import RunningServer, S3Server, create_database
from tests.conftest import BACKENDS
from tests.multiprocess.cluster import Backend


def fresh_bucket_url(s3: S3Server) -> str:
    return s3.url.replace(f"/{s3.bucket}?", f"/t-{secrets.token_hex(6)}?")


def postgres_backend(request: pytest.FixtureRequest, data_dir: Path) -> Backend:
    if "postgres" not in BACKENDS:
        pytest.skip("OUTPUTLAYER_TEST_BACKENDS leaves out postgres")
    server: RunningServer = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_template")
    s3: S3Server = request.getfixturevalue("s3_server")
    env = {
        "OUTPUTLAYER_DATA_DIR": str(data_dir),
        "OUTPUTLAYER_DATABASE_URL": create_database(server.url, template=template),
        "OUTPUTLAYER_BLOB_URL": fresh_bucket_url(s3),
    }
    return Backend("postgres", data_dir, env)


def sqlite_backend(data_dir: Path) -> Backend:
    if "sqlite" not in BACKENDS:
        pytest.skip("OUTPUTLAYER_TEST_BACKENDS leaves out sqlite")
    data_dir.mkdir(parents=True, exist_ok=True)
    return Backend("sqlite", data_dir, {"OUTPUTLAYER_DATA_DIR": str(data_dir)})


@pytest.fixture(params=[pytest.param("postgres", id="postgres-s3"), pytest.param("sqlite", id="sqlite-files")])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    backend = postgres_backend(request, data_dir) if request.param == "postgres" else sqlite_backend(data_dir)
    yield backend
    backend.close()


@pytest.fixture
def pg_s3(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    backend = postgres_backend(request, data_dir)
    yield backend
    backend.close()
