"""One scenario through both front doors: REST and MCP must give the same codes and the same
agent_contract for the same steps (SPEC sections 2, 3 and 11), on both backends.

The doors run side by side on one service and one manual clock, each with its own account, so
every timestamp and countdown matches; output ids differ and are compared as placeholders.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult

from outputlayer_mcp import build_mcp_server
from store import ArtifactService, ManualClock, iso_ms
from store.contract import compact_contract
from tests.conftest import assert_contract, b64

pytestmark = pytest.mark.anyio

# Fields only one door has: REST's request id differs per request; MCP adds the resource URI and
# says "replayed" in the body where REST says it in a header.
DOOR_ONLY = {"request_id", "resourceUri", "replayed"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"free_uploads": 2}


@pytest.fixture
async def mcp(service: ArtifactService) -> AsyncIterator[Client]:
    registered, _ = await service.register(client="10.200.0.1")
    async with Client(build_mcp_server(service, account_id=registered["accountId"]), raise_exceptions=True) as client:
        yield client


class Outcome:
    """One step's answer, reduced to what both doors must agree on."""

    def __init__(self, code: str, body: dict[str, Any], *, replayed: bool) -> None:
        assert_contract(body)
        self.code = code
        self.body = {k: v for k, v in body.items() if k not in DOOR_ONLY}
        self.replayed = replayed

    @classmethod
    def of_rest(cls, response: httpx2.Response) -> Outcome:
        body: dict[str, Any] = response.json()
        replayed = response.headers.get("idempotent-replayed") == "true"
        return cls("ok" if response.status_code < 300 else body["error"], body, replayed=replayed)

    @classmethod
    def of_mcp(cls, result: CallToolResult) -> Outcome:
        body = result.structured_content
        assert body is not None
        return cls(body["error"] if result.is_error else "ok", body, replayed=body.get("replayed") is True)


def placeholders(outcomes: list[Outcome]) -> list[tuple[str, Any]]:
    """The outcomes with each output id replaced by its order of appearance (OUT1, OUT2, …)."""
    text = json.dumps([(o.code, o.body) for o in outcomes])
    for n, output_id in enumerate(dict.fromkeys(_ids(outcomes)), start=1):
        text = text.replace(output_id, f"OUT{n}")
    result: list[tuple[str, Any]] = json.loads(text)
    return result


def _ids(outcomes: list[Outcome]) -> list[str]:
    return [o.body["outputId"] for o in outcomes if "outputId" in o.body]


async def test_same_codes_and_contracts_through_rest_and_mcp(
    client: httpx2.AsyncClient, mcp: Client, clock: ManualClock
) -> None:
    registered = (await client.post("/v1/keys/register", json={})).json()
    auth = {"Authorization": f"Bearer {registered['apiKey']}"}
    hour, minute = iso_ms(clock.now_ms() + 3_600_000), iso_ms(clock.now_ms() + 60_000)
    steps: list[tuple[Outcome, Outcome]] = []

    async def both(rest_call: Awaitable[httpx2.Response], mcp_call: Awaitable[CallToolResult]) -> tuple[str, str]:
        """Run one step at each door (same clock instant); returns the output ids they named, if any."""
        rest, door = Outcome.of_rest(await rest_call), Outcome.of_mcp(await mcp_call)
        steps.append((rest, door))
        return rest.body.get("outputId", ""), door.body.get("outputId", "")

    def upload(key: str, text: str, expires_at: str) -> tuple[Awaitable[httpx2.Response], Awaitable[CallToolResult]]:
        body = {"mimeType": "text/plain", "content": b64(text.encode()), "label": f"{key}.txt", "expiresAt": expires_at}
        arguments = {
            "mime_type": "text/plain",
            "content_text": text,
            "label": f"{key}.txt",
            "expires_at": expires_at,
            "idempotency_key": key,
        }
        return (
            client.post("/v1/outputs", json=body, headers={**auth, "Idempotency-Key": key}),
            mcp.call_tool("save_artifact", arguments),
        )

    def get(ids: tuple[str, str]) -> tuple[Awaitable[httpx2.Response], Awaitable[CallToolResult]]:
        return client.get(f"/v1/outputs/{ids[0]}", headers=auth), mcp.call_tool("get_artifact", {"output_id": ids[1]})

    def delete(ids: tuple[str, str]) -> tuple[Awaitable[httpx2.Response], Awaitable[CallToolResult]]:
        return (
            client.delete(f"/v1/outputs/{ids[0]}", headers=auth),
            mcp.call_tool("delete_artifact", {"output_id": ids[1]}),
        )

    a = await both(*upload("a", "alpha", hour))
    await both(*get(a))
    await both(*upload("a", "alpha", hour))  # replay
    await both(*upload("a", "changed", hour))  # same key, other payload
    b = await both(*upload("b", "beta", minute))
    await both(*upload("c", "gamma", hour))  # the free uploads are spent
    await both(*delete(a))
    await both(*get(a))
    clock.advance(61)
    await both(*get(b))
    await both(*delete(b))
    await both(*get(("out_missing", "out_missing")))

    codes = [rest.code for rest, _ in steps]
    assert codes == [
        "ok",  # upload
        "ok",  # fetch
        "ok",  # replay
        "idempotency_conflict",
        "ok",  # second upload
        "quota_exhausted",
        "ok",  # delete
        "output_deleted",  # GET of a deleted output: the output itself, with the error code
        "output_expired",  # GET of an expired output: likewise
        "output_expired",  # DELETE of an expired output
        "output_not_found",
    ]
    assert [door.code for _, door in steps] == codes
    rest_view = placeholders([rest for rest, _ in steps])
    door_view = placeholders([door for _, door in steps])
    for (code, rest_body), (_, door_body) in zip(rest_view, door_view, strict=True):
        if code == "ok" and "createdAt" in rest_body and "createdAt" not in door_body:
            # save_artifact's compact result: some of the same fields, the contract's recommended action.
            contract = door_body.pop("agent_contract")
            assert contract == compact_contract(rest_body["agent_contract"]), code
            assert door_body.items() <= rest_body.items(), code
            continue
        # The same fields, values and contract; MCP adds a message where REST's 410 has none.
        assert {k: v for k, v in door_body.items() if k in rest_body} == rest_body, code
        assert set(door_body) - set(rest_body) <= {"message"}, code
    assert steps[2][1].replayed and steps[2][0].replayed
