"""The ``door`` fixture: one small scenario API, implemented once over REST and once over MCP, so a
scenario written against it runs through both front doors (and, through ``service``, both backends).

Each door acts for its own fresh account on the shared test service. Answers are reduced to what
both doors must agree on (:class:`Answer`): the error code (or "ok"), the body and whether it was a
replay. Bytes that an agent's shell would move (a PUT to an upload link, a GET of a share link) go
over HTTP with no key at either door: :func:`shell_put` and :func:`shell_get`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult

from outputlayer_mcp import build_mcp_server
from store import Account, ArtifactService
from tests.conftest import assert_contract, b64
from tests.factories import next_ip

# Wire field names (REST) → tool argument names (MCP).
ARGUMENT_NAMES = {
    "mimeType": "mime_type",
    "label": "label",
    "public": "public",
    "expiresAt": "expires_at",
    "metadata": "metadata",
    "sizeBytes": "size_bytes",
    "sha256": "sha256",
}


@dataclass(frozen=True, slots=True)
class Answer:
    code: str
    body: dict[str, Any]
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.code == "ok"


class Door(Protocol):
    name: str
    account: Account

    async def save_text(self, text: str, *, key: str, public: bool = False) -> Answer: ...

    async def share(self, output_id: str, expires_in_seconds: int | None = None) -> Answer: ...

    async def create_upload_link(self, fields: dict[str, Any], *, key: str | None = None) -> Answer: ...

    async def get(self, output_id: str) -> Answer: ...

    async def list(self, *, limit: int, cursor: str | None = None) -> Answer: ...

    async def delete(self, output_id: str) -> Answer: ...


class RestDoor:
    name = "rest"

    def __init__(self, http: httpx2.AsyncClient, api_key: str, account: Account) -> None:
        self.http = http
        self.auth = {"Authorization": f"Bearer {api_key}"}
        self.account = account

    @staticmethod
    def _answer(response: httpx2.Response) -> Answer:
        body: dict[str, Any] = response.json()
        assert_contract(body)
        code = "ok" if response.status_code < 300 else str(body["error"])
        return Answer(code, body, replayed=response.headers.get("idempotent-replayed") == "true")

    async def save_text(self, text: str, *, key: str, public: bool = False) -> Answer:
        body = {"mimeType": "text/plain", "content": b64(text.encode()), "public": public}
        headers = {**self.auth, "Idempotency-Key": key}
        return self._answer(await self.http.post("/v1/outputs", json=body, headers=headers))

    async def share(self, output_id: str, expires_in_seconds: int | None = None) -> Answer:
        body = {} if expires_in_seconds is None else {"expiresInSeconds": expires_in_seconds}
        return self._answer(await self.http.post(f"/v1/outputs/{output_id}/share", json=body, headers=self.auth))

    async def create_upload_link(self, fields: dict[str, Any], *, key: str | None = None) -> Answer:
        headers = {**self.auth, "Idempotency-Key": key or f"link-{next_ip()}"}
        return self._answer(await self.http.post("/v1/uploads", json=fields, headers=headers))

    async def get(self, output_id: str) -> Answer:
        return self._answer(await self.http.get(f"/v1/outputs/{output_id}", headers=self.auth))

    async def list(self, *, limit: int, cursor: str | None = None) -> Answer:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return self._answer(await self.http.get("/v1/outputs", params=params, headers=self.auth))

    async def delete(self, output_id: str) -> Answer:
        return self._answer(await self.http.delete(f"/v1/outputs/{output_id}", headers=self.auth))


class McpDoor:
    name = "mcp"

    def __init__(self, client: Client, account: Account) -> None:
        self.client = client
        self.account = account

    async def _call(self, tool: str, arguments: dict[str, Any]) -> Answer:
        result: CallToolResult = await self.client.call_tool(tool, arguments)
        body = result.structured_content
        assert body is not None, result.content
        assert_contract(body)
        code = str(body["error"]) if result.is_error else "ok"
        return Answer(code, body, replayed=body.get("replayed") is True)

    async def save_text(self, text: str, *, key: str, public: bool = False) -> Answer:
        arguments = {"mime_type": "text/plain", "content_text": text, "public": public, "idempotency_key": key}
        return await self._call("save_artifact", arguments)

    async def share(self, output_id: str, expires_in_seconds: int | None = None) -> Answer:
        arguments: dict[str, Any] = {"output_id": output_id}
        if expires_in_seconds is not None:
            arguments["expires_in_seconds"] = expires_in_seconds
        return await self._call("share", arguments)

    async def create_upload_link(self, fields: dict[str, Any], *, key: str | None = None) -> Answer:
        arguments = {ARGUMENT_NAMES[name]: value for name, value in fields.items()}
        if key is not None:
            arguments["idempotency_key"] = key
        return await self._call("create_upload_link", arguments)

    async def get(self, output_id: str) -> Answer:
        return await self._call("get_artifact", {"output_id": output_id})

    async def list(self, *, limit: int, cursor: str | None = None) -> Answer:
        return await self._call("list_artifacts", {"limit": limit} | ({"cursor": cursor} if cursor else {}))

    async def delete(self, output_id: str) -> Answer:
        return await self._call("delete_artifact", {"output_id": output_id})


@pytest.fixture(params=["rest", "mcp"])
async def door(
    request: pytest.FixtureRequest, client: httpx2.AsyncClient, service: ArtifactService
) -> AsyncIterator[Door]:
    registered, _ = await service.register(client=next_ip())
    account = await service.account(registered["accountId"])
    if request.param == "rest":
        yield RestDoor(client, registered["apiKey"], account)
        return
    async with Client(build_mcp_server(service, account_id=account.id), raise_exceptions=True) as mcp:
        yield McpDoor(mcp, account)


async def shell_put(http: httpx2.AsyncClient, url: str, data: bytes, **headers: str) -> httpx2.Response:
    """What ``curl -T FILE URL`` does: a PUT of the raw bytes, with no API key."""
    assert url.startswith("http://testserver/"), url
    return await http.put(url, content=data, headers=headers)


async def shell_get(http: httpx2.AsyncClient, url: str) -> httpx2.Response:
    """What ``curl -o FILE URL`` does: a GET with no API key."""
    assert url.startswith("http://testserver/"), url
    return await http.get(url)
