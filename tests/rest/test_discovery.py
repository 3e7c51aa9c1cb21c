"""Discovery routes (SPEC section 10): every document answers publicly with CORS and an agent_contract,
reports live settings, keeps the hosted service's shapes (seeds 002 and 004), and every example in
/v1/examples is replayed against this server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx2
import pytest

from rest.discovery import examples as example_values
from rest.discovery.openapi import build_openapi
from rest.routes.discovery import text_values
from store import ArtifactService, ManualClock, Settings
from store.errors import ERROR_KINDS
from store.schemas import CreateOutput
from store.settings import RateLimits
from store.validation import SUPPORTED_MIME_TYPES
from tests.conftest import BACKENDS, assert_contract
from tests.factories import Fault, FaultyBlobs, first_action

pytestmark = pytest.mark.any_backend

SEEDS = Path(__file__).parents[3] / "shared" / "seeds"
JSON_DOCUMENTS = ("/v1/capabilities", "/v1/tool", "/v1/schema", "/v1/examples", "/.well-known/agent.json")
TEXT_DOCUMENTS = {"/AGENTS.md": "text/markdown; charset=utf-8", "/llms.txt": "text/plain; charset=utf-8"}
ROUTES = {
    "/v1/keys/register": {"post"},
    "/v1/outputs": {"post", "get"},
    "/v1/outputs/{outputId}": {"get", "delete"},
    "/v1/outputs/{outputId}/content": {"get"},
    "/v1/outputs/{outputId}/share": {"post"},
    "/s/{token}": {"get"},
    "/public/{outputId}": {"get"},
    "/v1/credits/checkout": {"post"},
    "/v1/credits/verify": {"get"},
    "/v1/credits/balance": {"get"},
    "/webhooks/paypal": {"post"},
    "/v1/capabilities": {"get"},
    "/v1/tool": {"get"},
    "/v1/schema": {"get"},
    "/v1/examples": {"get"},
    "/.well-known/agent.json": {"get"},
    "/AGENTS.md": {"get"},
    "/llms.txt": {"get"},
    "/docs": {"get"},
    "/health": {"get"},
    "/ready": {"get"},
    "/mcp": {"post"},
}


def _seed(prefix: str) -> Any:
    found = sorted(SEEDS.glob(f"{prefix}_*.txt"))
    if not found:
        pytest.skip(f"seed {prefix} is not available at {SEEDS}")
    return json.loads(found[0].read_text("utf-8"))


# --- every route ------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("path", JSON_DOCUMENTS)
async def test_json_documents_are_public_with_cors_and_contract(client: httpx2.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["ratelimit-limit"] == "60"
    assert_contract(response.json())
    assert first_action(response.json()) == "register_key"


@pytest.mark.anyio
@pytest.mark.parametrize("path", JSON_DOCUMENTS)
async def test_json_documents_with_a_key_recommend_uploading(
    client: httpx2.AsyncClient, auth: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=auth)
    assert response.status_code == 200
    assert_contract(response.json())
    assert first_action(response.json()) == "create_new_output"
    assert response.headers["x-outputlayer-free-remaining"] == "5"


@pytest.mark.anyio
@pytest.mark.parametrize("path", [*JSON_DOCUMENTS, *TEXT_DOCUMENTS, "/docs"])
async def test_an_invalid_key_on_a_discovery_route_is_refused(client: httpx2.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"Authorization": "Bearer ol_live_" + "0" * 64})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_api_key"
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.anyio
@pytest.mark.parametrize("path", [*JSON_DOCUMENTS, *TEXT_DOCUMENTS, "/docs"])
async def test_cors_preflight_allows_sending_a_key(client: httpx2.AsyncClient, path: str) -> None:
    headers = {"Origin": "https://agent.example", "Access-Control-Request-Method": "GET"}
    response = await client.options(path, headers={**headers, "Access-Control-Request-Headers": "authorization"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "GET" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


@pytest.mark.anyio
async def test_a_key_in_the_query_string_is_refused(client: httpx2.AsyncClient) -> None:
    response = await client.get("/v1/capabilities", params={"api_key": "ol_live_" + "a" * 64})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.anyio
@pytest.mark.parametrize("path", sorted(TEXT_DOCUMENTS))
async def test_text_documents_carry_live_values(client: httpx2.AsyncClient, settings: Settings, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == TEXT_DOCUMENTS[path]
    assert response.headers["access-control-allow-origin"] == "*"
    text = response.text
    assert not re.search(r"\{\{[A-Z_]+\}\}", text)
    assert f"{settings.base_url}/v1/capabilities" in text
    assert str(settings.max_upload_bytes) in text
    for code in ERROR_KINDS:
        assert code in text, code


@pytest.mark.anyio
async def test_docs_page_loads_only_local_assets(client: httpx2.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["access-control-allow-origin"] == "*"
    page = response.text
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert references
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert '"url": "/v1/schema"' in page
    assert '"validatorUrl": null' in page
    for reference in references:
        assert reference.startswith("/docs/assets/"), reference
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.content


def test_bundled_swagger_ui_renders_openapi_31() -> None:
    # Swagger UI 4 refuses any "openapi: 3.1.x" document ("Unable to render this definition"); 5 renders it.
    from swagger_ui_bundle import swagger_ui_path

    version = re.search(r"swagger-ui-(\d+)\.", str(swagger_ui_path))
    assert version is not None, swagger_ui_path
    assert int(version.group(1)) >= 5, (
        f"{swagger_ui_path} is Swagger UI {version.group(1)}, which cannot render OpenAPI 3.1: "
        "depend on swagger-ui-bundle-v2 (same import name, Swagger UI 5) instead of swagger-ui-bundle"
    )


@pytest.mark.anyio
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)  # /ready pings each backend its own way
async def test_health_and_ready(client: httpx2.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert_contract(health.json())
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert_contract(ready.json())


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["db", "blobs"])
async def test_ready_is_503_when_a_backend_is_down(
    client: httpx2.AsyncClient, service: ArtifactService, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    async def down() -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(getattr(service, backend), "ping", down)
    response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "service_unavailable"
    assert "retry-after" in response.headers
    assert assert_contract(body)["retryable"] is True
    assert (await client.get("/health")).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("settings_overrides", [{"rate_limits": RateLimits(discovery_per_minute=2)}])
async def test_discovery_is_rate_limited_per_ip(client: httpx2.AsyncClient) -> None:
    for _ in range(2):
        assert (await client.get("/llms.txt")).status_code == 200
    refused = await client.get("/v1/capabilities")
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["access-control-allow-origin"] == "*"


# --- /v1/capabilities -------------------------------------------------------------------------


def _assert_shape(seed: Any, ours: Any, where: str) -> None:
    """Every key of the seed exists in ours, recursively; values may differ (live, or null where unknown)."""
    if isinstance(seed, dict):
        assert isinstance(ours, dict), where
        for key, value in seed.items():
            assert key in ours, f"{where}.{key} is missing"
            if ours[key] is not None:
                _assert_shape(value, ours[key], f"{where}.{key}")
    elif isinstance(seed, list):
        assert isinstance(ours, list), where
        if seed and ours and isinstance(seed[0], dict):
            _assert_shape(seed[0], ours[0], f"{where}[0]")


@pytest.mark.anyio
async def test_capabilities_keeps_the_seed_shape(client: httpx2.AsyncClient) -> None:
    seed = _seed("004")
    body = (await client.get("/v1/capabilities")).json()
    assert set(seed) <= set(body)
    _assert_shape(seed, body, "capabilities")
    assert body["version"] == "1"
    assert body["upload"]["supported_mime_types"] == seed["upload"]["supported_mime_types"]
    assert set(seed["error_codes"]) <= set(body["error_codes"])
    assert body["error_codes"] == list(ERROR_KINDS)
    assert body["plan_tiers"] == seed["plan_tiers"]
    assert body["pricing_model"]["packs"] == seed["pricing_model"]["packs"]
    assert body["billing"]["packs"] == seed["billing"]["packs"]
    assert body["account"]["authenticated"] is False
    assert "outputlayer.dev" not in json.dumps(body)


@pytest.mark.anyio
async def test_capabilities_defaults_match_the_seed_values(client: httpx2.AsyncClient) -> None:
    seed = _seed("004")
    body = (await client.get("/v1/capabilities")).json()
    assert body["upload"]["max_size_bytes"] == seed["upload"]["max_size_bytes"]
    assert body["fields"]["expires_at"]["default_ttl_seconds"] == seed["fields"]["expires_at"]["default_ttl_seconds"]
    assert body["fields"]["metadata"]["properties"] == seed["fields"]["metadata"]["properties"]
    assert body["account"]["free_tier_initial_uploads"] == seed["account"]["free_tier_initial_uploads"]
    for family in ("authenticated", "registration"):
        assert body["rate_limits"][family] == {
            **body["rate_limits"][family],
            **{k: v for k, v in seed["rate_limits"][family].items() if k != "credits_endpoints"},
        }
    assert body["listing"]["filters"]["limit"] == seed["listing"]["filters"]["limit"]


LIVE = {
    "free_uploads": 7,
    "storage_limit_bytes": 123_456,
    "max_upload_bytes": 4321,
    "default_ttl_seconds": 60,
    "max_ttl_seconds": 120,
    "rate_limits_enabled": False,
    "rate_limits": RateLimits(uploads_per_hour=3, reads_per_hour=4, discovery_per_minute=5),
}


@pytest.mark.anyio
@pytest.mark.parametrize("settings_overrides", [LIVE])
async def test_documents_follow_the_settings(client: httpx2.AsyncClient) -> None:
    body = (await client.get("/v1/capabilities")).json()
    assert body["upload"]["max_size_bytes"] == 4321
    assert body["fields"]["expires_at"]["default_ttl_seconds"] == 60
    assert body["fields"]["expires_at"]["max_ttl_seconds"] == 120
    assert body["account"]["free_tier_initial_uploads"] == 7
    assert body["pricing_model"]["free_trial"] == {**body["pricing_model"]["free_trial"], "uploads": 7}
    assert body["account"]["free_tier_initial_storage_bytes"] == 123_456
    assert body["rate_limits"]["enabled"] is False
    assert body["rate_limits"]["authenticated"]["POST /v1/outputs"]["limit"] == 3
    assert body["rate_limits"]["authenticated"]["GET /v1/outputs/{id}"]["limit"] == 4
    assert body["rate_limits"]["discovery"]["GET /v1/capabilities"] == {"limit": 5, "window_seconds": 60}
    assert body["plan_enforcement"]["enabled"] is False
    assert body["billing"]["enabled"] is False
    guide = (await client.get("/AGENTS.md")).text
    assert "4321 bytes" in guide and "123456" in guide
    assert "ratelimit-limit" not in (await client.get("/llms.txt")).headers


@pytest.mark.anyio
@pytest.mark.parametrize("settings_overrides", [{"plan_enforcement": True}])
async def test_capabilities_with_a_key_show_the_account_and_its_plan(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    anonymous = (await client.get("/v1/capabilities")).json()
    assert anonymous["plan_enforcement"]["enabled"] is True
    response = await client.get("/v1/capabilities", headers=auth)
    body = response.json()
    account = body["account"]
    assert account["authenticated"] is True
    assert account["accountId"].startswith("key_")
    assert account["planTier"] == "free"
    assert account["freeRemaining"] == 5
    assert account["creditsRemaining"] == 0
    assert account["storageUsedBytes"] == 0
    assert account["storageLimitBytes"] == 262_144_000
    assert body["upload"]["max_size_bytes"] == body["plan_tiers"]["free"]["max_file_size_bytes"]
    assert body["rate_limits"]["authenticated"]["POST /v1/outputs"]["limit"] == 10
    assert response.headers["x-outputlayer-storage-limit-bytes"] == "262144000"


# --- /v1/schema -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_schema_is_openapi_31_with_every_route(client: httpx2.AsyncClient, settings: Settings) -> None:
    body = (await client.get("/v1/schema")).json()
    assert re.fullmatch(r"3\.1\.\d+", body["openapi"])
    assert {k: v for k, v in body.items() if k != "agent_contract"} == build_openapi(settings)
    for path, methods in ROUTES.items():
        assert path in body["paths"], path
        assert methods <= set(body["paths"][path]), path
    schemas = body["components"]["schemas"]
    for name in ("CreateOutput", "CreateOutputMultipart", "Metadata", "OutputResource", "ErrorEnvelope"):
        assert name in schemas
    assert schemas["CreateOutput"]["required"] == CreateOutput.model_json_schema()["required"]
    assert "$defs" not in json.dumps(schemas)
    assert body["components"]["securitySchemes"]["bearerAuth"] == {
        **body["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }


def test_openapi_operations_reference_the_shared_models(settings: Settings) -> None:
    document = build_openapi(settings)
    paths = document["paths"]
    create = paths["/v1/outputs"]["post"]
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in create["parameters"]
    assert document["components"]["parameters"]["IdempotencyKey"]["name"] == "Idempotency-Key"
    content = create["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/CreateOutput"}
    multipart = document["components"]["schemas"]["CreateOutputMultipart"]
    assert multipart["properties"]["content"]["format"] == "binary"
    assert multipart["properties"]["public"]["enum"] == ["true", "false"]
    assert set(multipart["properties"]) == set(CreateOutput.model_json_schema()["properties"])
    gone = paths["/v1/outputs/{outputId}"]["get"]["responses"]["410"]
    assert gone["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OutputResource"}
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    statuses = set()
    for path, operations in paths.items():
        if path == "/mcp":  # JSON-RPC, see test_openapi_documents_what_a_fuzzer_needs
            continue
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400 and not (status == "410" and response is gone):
                    assert response["content"]["application/json"]["schema"] == envelope
                    statuses.add(int(status))
    # 405 belongs to no operation (it answers the methods a path does not have); the description names it.
    assert statuses >= {kind.status for kind in ERROR_KINDS.values()} - {405}
    assert "wrong_method" in document["info"]["description"]


def test_openapi_documents_what_a_fuzzer_needs(settings: Settings) -> None:
    """SPEC section 15: canonical MIME types as an enum, base64 content, JSON-RPC answers for /mcp, and
    links from a created output to the operations that use it."""
    document = build_openapi(settings)
    schemas = document["components"]["schemas"]
    create = schemas["CreateOutput"]["properties"]
    assert create["mimeType"]["enum"] == list(SUPPORTED_MIME_TYPES)
    assert schemas["CreateOutputMultipart"]["properties"]["mimeType"]["enum"] == list(SUPPORTED_MIME_TYPES)
    assert create["content"]["contentEncoding"] == "base64"
    assert schemas["CreateOutputMultipart"]["additionalProperties"] is False
    mcp = document["paths"]["/mcp"]["post"]["responses"]
    refusal = {"$ref": "#/components/schemas/JsonRpcError"}
    assert mcp["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JsonRpcResponse"}
    for status in ("403", "406", "421"):
        assert mcp[status]["content"]["application/json"]["schema"] == refusal
    assert refusal in mcp["400"]["content"]["application/json"]["schema"]["anyOf"]
    links = document["paths"]["/v1/outputs"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} >= {
        "getOutput",
        "getOutputContent",
        "createShareLink",
        "deleteOutput",
    }
    assert all(link["parameters"] == {"outputId": "$response.body#/outputId"} for link in links.values())


def test_openapi_document_is_valid(settings: Settings) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(build_openapi(settings))


# --- /v1/tool and /.well-known/agent.json -----------------------------------------------------


@pytest.mark.anyio
async def test_tool_card(client: httpx2.AsyncClient, settings: Settings) -> None:
    body = (await client.get("/v1/tool")).json()
    assert body["name"] == "outputlayer"
    # The MCP server's own tool list (tests/mcp/test_discovery_mcp.py compares it with tools/list).
    tool = next(t for t in body["tools"] if t["name"] == "create_upload_link")
    assert tool["inputSchema"]["required"] == ["mime_type"]
    mcp = body["connection"]["mcp"]
    assert (mcp["stdio"]["command"], mcp["stdio"]["args"]) == ("outputlayer", ["mcp"])
    assert mcp["http"]["url"] == f"{settings.base_url}/mcp"


@pytest.mark.anyio
async def test_agent_card_links_resolve(client: httpx2.AsyncClient, settings: Settings) -> None:
    body = (await client.get("/.well-known/agent.json")).json()
    assert body["name"] and body["description"] and body["version"]
    assert body["auth"]["type"] == "bearer"
    assert body["auth"]["key_prefix"] == "ol_live_"
    assert body["auth"]["register_url"] == f"{settings.base_url}/v1/keys/register"
    assert body["mcp"]["endpoint"] == f"{settings.base_url}/mcp"
    assert set(body["documents"]) >= {"capabilities", "openapi", "examples", "tool_card", "agents_md", "llms_txt"}
    for url in body["documents"].values():
        assert url.startswith(settings.base_url)
        assert (await client.get(url.removeprefix(settings.base_url))).status_code == 200, url
    names = {route["name"] for route in body["routes"]}
    assert {"register_key", "create_output", "get_output", "download_content", "delete_output"} <= names
    assert all(route["url"].startswith("http") for route in body["routes"])


# --- /v1/examples -----------------------------------------------------------------------------

REQUIRED_EXAMPLES = {
    "register_key",
    "create_output_json",
    "create_output_multipart",
    "get_output",
    "get_content",
    "get_output_expired",
    "get_content_expired",
    "get_output_failed",
    "get_content_failed",
    "delete_output",
    "idempotency_replay",
    "idempotency_conflict",
    "quota_exhausted",
    "missing_api_key",
    "list_outputs",
    "share_link",
}


@pytest.mark.anyio
async def test_examples_keep_the_seed_shape(client: httpx2.AsyncClient) -> None:
    seed = _seed("002")
    body = (await client.get("/v1/examples")).json()
    assert set(seed) <= set(body)
    assert body["supported_mime_types"] == list(SUPPORTED_MIME_TYPES)
    ids = [example["id"] for example in body["examples"]]
    assert len(ids) == len(set(ids))
    assert set(ids) >= REQUIRED_EXAMPLES
    for example in body["examples"]:
        assert {"id", "title", "request", "response"} <= set(example)
        assert {"method", "path"} <= set(example["request"])
        assert example["request"]["path"].startswith("http://testserver/")
        assert isinstance(example["response"]["status"], int)
        response_body = example["response"].get("body")
        if isinstance(response_body, dict) and "agent_contract" in response_body:
            assert_contract(response_body)
        if isinstance(response_body, dict) and "error" in response_body:
            assert ERROR_KINDS[response_body["error"]].status == example["response"]["status"]


class Replay:
    """Sends the examples to the server, with their placeholders replaced by the real values."""

    # Values the server generates or that depend on the moment; compared by presence, not by value.
    VOLATILE = frozenset(
        {"apiKey", "accountId", "createdAt", "expiresAt", "deletedAt", "sha256", "request_id", "message", "shareUrl"}
        | {"shareExpiresAt", "nextCursor", "uploadExpiresAt"}
    )

    def __init__(self, client: httpx2.AsyncClient, examples: list[dict[str, Any]]) -> None:
        self.client = client
        self.examples = {example["id"]: example for example in examples}
        self.values: dict[str, str] = {}
        self.replayed: set[str] = set()

    def substitute(self, value: Any) -> Any:
        if isinstance(value, str):
            for placeholder, real in self.values.items():
                value = value.replace(placeholder, real)
            return value
        if isinstance(value, dict):
            return {k: self.substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v) for v in value]
        return value

    def learn(self, placeholder: str, real: str) -> None:
        """From now on ``placeholder`` (as it reads after the earlier substitutions) stands for ``real``."""
        self.values[self.substitute(placeholder)] = real

    async def send(
        self, example_id: str, *, key: str | None = None, idempotency_key: str | None = None, file_size: int = 0
    ) -> httpx2.Response:
        request = self.substitute(self.examples[example_id]["request"])
        headers = dict(request.get("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        kwargs: dict[str, Any] = {}
        if "fields" in request:
            del headers["Content-Type"]  # the client writes it, with the boundary
            kwargs["data"] = request["fields"]
            kwargs["files"] = {request["file_field"]: ("file", b"%" * file_size)}
        elif "body" in request:
            kwargs["json"] = request["body"]
        elif "content" in request:
            kwargs["content"] = request["content"].encode()
        url = request["path"].removeprefix("http://testserver")
        return await self.client.request(request["method"], url, headers=headers, **kwargs)

    async def check(self, example_id: str, **send: Any) -> httpx2.Response:
        return self.verify(example_id, await self.send(example_id, **send))

    def verify(self, example_id: str, response: httpx2.Response) -> httpx2.Response:
        expected = self.substitute(self.examples[example_id]["response"])
        assert response.status_code == expected["status"], (example_id, response.text[:500])
        for name, value in expected.get("headers", {}).items():
            if name != "ETag":
                assert response.headers.get(name) == value, (example_id, name)
        if isinstance(expected.get("body"), dict):
            self.compare(expected["body"], response.json(), example_id)
        self.replayed.add(example_id)
        return response

    def compare(self, expected: Any, actual: Any, where: str) -> None:
        if isinstance(expected, dict):
            assert isinstance(actual, dict), where
            assert set(expected) == set(actual), (where, set(expected) ^ set(actual))
            for key, value in expected.items():
                if key in self.VOLATILE:
                    assert (value is None) == (actual[key] is None), f"{where}.{key}"
                else:
                    self.compare(value, actual[key], f"{where}.{key}")
        elif isinstance(expected, list):
            assert isinstance(actual, list) and len(expected) == len(actual), where
            for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
                self.compare(left, right, f"{where}[{index}]")
        else:
            assert expected == actual, (where, expected, actual)


@pytest.mark.anyio
async def test_examples_replay_against_this_server(
    client: httpx2.AsyncClient, clock: ManualClock, service: ArtifactService
) -> None:
    """Every example of /v1/examples, sent as written, gets the status and body the example shows."""
    examples = (await client.get("/v1/examples")).json()["examples"]
    replay = Replay(client, examples)
    registered = await replay.check("register_key")
    replay.learn(example_values.API_KEY, registered.json()["apiKey"])

    pdf = await replay.send("create_output_multipart", file_size=example_values.PDF_SIZE)
    replay.learn(example_values.OUTPUT_ID, pdf.json()["outputId"])
    replay.verify("create_output_multipart", pdf)
    analysis = await replay.send("create_output_json")
    replay.learn(example_values.OTHER_OUTPUT_ID, analysis.json()["outputId"])
    replay.verify("create_output_json", analysis)

    await replay.check("idempotency_replay")
    await replay.check("idempotency_conflict")
    await replay.check("get_output")
    await replay.check("get_content")
    await replay.check("get_content_public")
    listed = await replay.send("list_outputs")
    replay.learn(examples_cursor(replay), listed.json()["pageInfo"]["nextCursor"])
    replay.verify("list_outputs", listed)
    shared = await replay.send("share_link")
    replay.learn(replay.examples["share_link"]["response"]["body"]["shareUrl"], shared.json()["shareUrl"])
    replay.learn(replay.examples["get_shared_content"]["request"]["path"], shared.json()["shareUrl"])
    replay.verify("share_link", shared)
    await replay.check("get_shared_content")
    await replay.check("check_balance")
    link = await replay.send("create_upload_link")
    replay.learn(example_values.UPLOAD_ID, link.json()["uploadId"])
    replay.learn(replay.examples["create_upload_link"]["response"]["body"]["uploadUrl"], link.json()["uploadUrl"])
    replay.verify("create_upload_link", link)
    put = await replay.send("put_upload_content")
    replay.learn(example_values.UPLOADED_ID, put.json()["outputId"])
    replay.verify("put_upload_content", put)
    await replay.check("invalid_mime_type")
    await replay.check("missing_api_key")
    await replay.check("invalid_api_key")
    await replay.check("output_not_found")
    await replay.check("wrong_method")
    await replay.check("delete_output")
    await replay.check("get_output_deleted")

    # A third PDF, left to expire, stands in for the example's output from here on.
    expiring = await replay.send(
        "create_output_multipart", idempotency_key="expiring-pdf", file_size=example_values.PDF_SIZE
    )
    assert expiring.status_code == 201
    replay.values[pdf.json()["outputId"]] = expiring.json()["outputId"]
    clock.advance(604_800 + 1)
    await replay.check("get_output_expired")
    await replay.check("get_content_expired")

    # A fourth PDF whose bytes the blob store fails to keep stands in for it next: a failed output.
    fault = Fault()
    service.blobs, working = FaultyBlobs(service.blobs, fault), service.blobs  # type: ignore[assignment]
    try:
        fault.point = "finalize"
        failing = await replay.send(
            "create_output_multipart", idempotency_key="failing-pdf", file_size=example_values.PDF_SIZE
        )
    finally:
        service.blobs = working
    assert failing.status_code == 422 and failing.json()["error"] == "upload_failed"
    listed_failed = await client.get("/v1/outputs?status=failed", headers=registered_auth(registered))
    assert [item["outputId"] for item in listed_failed.json()["outputs"]] == [failing.json()["outputId"]]
    replay.values[pdf.json()["outputId"]] = failing.json()["outputId"]
    await replay.check("get_output_failed")
    await replay.check("get_content_failed")

    # A second account spends its free uploads, then is refused.
    other = (await client.post("/v1/keys/register", json={})).json()["apiKey"]
    for n in range(5):
        headers = {"Authorization": f"Bearer {other}", "Idempotency-Key": f"spend-{n}"}
        spent = await client.post("/v1/outputs", json={"mimeType": "text/plain", "content": "aGk="}, headers=headers)
        assert spent.status_code == 201
    await replay.check("quota_exhausted", key=other)

    # An upload holding its key while a second request with the same key arrives.
    owner = await service.authenticate(registered.json()["apiKey"])
    async with await service.begin_upload(owner, "in-flight-pdf"):
        await replay.check("idempotency_in_flight", idempotency_key="in-flight-pdf")

    # A read window that is full, its oldest request leaving it in exactly 42 seconds.
    now = clock.now_ms()
    oldest = now - 3_600_000 + 42_000
    limit = service.settings.rate_limits.reads_per_hour
    service.db.write_sync(
        lambda tx: [
            tx.execute("INSERT INTO rate_events (bucket, at) VALUES (?, ?)", (f"reads:{owner.id}", oldest))
            for _ in range(limit)
        ]
    )
    await replay.check("rate_limited")

    # A store that is full (last: it leaves the storage counter deliberately wrong).
    service.db.write_sync(
        lambda tx: tx.execute("UPDATE accounts SET storage_used_bytes = storage_limit_bytes WHERE id = ?", (owner.id,))
    )
    await replay.check("storage_limit_reached")

    assert replay.replayed == set(replay.examples)


def registered_auth(registered: httpx2.Response) -> dict[str, str]:
    return {"Authorization": f"Bearer {registered.json()['apiKey']}"}


def examples_cursor(replay: Replay) -> str:
    cursor: str = replay.examples["list_outputs"]["response"]["body"]["pageInfo"]["nextCursor"]
    return cursor


def test_text_values_cover_every_token(settings: Settings) -> None:
    root = Path(__file__).parents[2] / "rest" / "discovery"
    values = text_values(settings)
    for name in ("AGENTS.md", "llms.txt"):
        tokens = set(re.findall(r"\{\{([A-Z_]+)\}\}", (root / name).read_text("utf-8")))
        assert tokens <= set(values), tokens - set(values)
