"""Shared fixtures: settings on a temp dir, a service on a manual clock, and an in-process HTTP client
that runs the application's real lifespan.

Every test that builds a service runs once per backend pair: ``sqlite`` (SQLite + local files) and
``postgres`` (PostgreSQL + S3, real servers started once per session by :mod:`tests.servers`, a fresh
database cloned from a migrated template and a fresh bucket per test). ``OUTPUTLAYER_TEST_BACKENDS``
(comma-separated) narrows the set, e.g. ``OUTPUTLAYER_TEST_BACKENDS=sqlite`` for a quick run.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from rest.app import create_app
from store import ArtifactService, ManualClock, Settings, migrate, open_service
from tests.servers import RunningServer, S3Server, create_database, start_postgres, start_s3


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


@pytest.fixture
def backend_urls(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """``database_url`` and ``blob_url`` for the backend pair (empty: the embedded defaults)."""
    if backend == "sqlite":
        return {}
    server: RunningServer = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_template")
    s3: S3Server = request.getfixturevalue("s3_server")
    bucket = f"t-{secrets.token_hex(6)}"
    return {
        "database_url": create_database(server.url, template=template),
        "blob_url": s3.url.replace(f"/{s3.bucket}?", f"/{bucket}?"),
    }


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
