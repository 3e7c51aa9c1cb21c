"""Shared fixtures: settings on a temp dir, a service on a manual clock, and an in-process HTTP client
that runs the application's real lifespan."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from rest.app import create_app
from store import ArtifactService, ManualClock, Settings, open_service


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


@pytest.fixture
def settings(tmp_path: Path, settings_overrides: dict[str, Any]) -> Settings:
    return Settings(data_dir=tmp_path / "data", base_url="http://testserver", **settings_overrides)


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
