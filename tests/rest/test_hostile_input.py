"""Bad input never breaks the server (SPEC section 15): bounded JSON everywhere, duplicate headers,
the base64 forms clients really send, JSON answers from ``/mcp``'s guards, and quiet disconnects."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx2
import pytest

from tests.conftest import assert_error, b64
from tests.factories import post_upload, upload_document

pytestmark = [pytest.mark.anyio, pytest.mark.any_backend]

DEEP = 1_500
# Generous: a refusal takes milliseconds; the bound only catches a parser that recurses or hangs.
ANSWER_SECONDS = 5


def deep_array(levels: int) -> str:
    return "[" * levels + "]" * levels


async def test_a_json_upload_with_deep_metadata_is_refused_fast(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    body = '{"mimeType": "text/plain", "content": "aGk=", "metadata": {"custom": {"x": ' + deep_array(DEEP) + "}}}"
    started = time.monotonic()
    response = await client.post(
        "/v1/outputs",
        content=body,
        headers={**auth, "Idempotency-Key": "deep-1", "Content-Type": "application/json"},
    )
    assert time.monotonic() - started < ANSWER_SECONDS
    assert_error(response, 400, "invalid_metadata", retryable=False, action="check_capabilities")
    retry = await post_upload(client, auth, b"hostile", key="deep-1")
    assert retry.status_code == 201, "a refused body is not remembered"


async def test_a_json_upload_nested_past_64_levels_is_refused_before_parsing(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """64 levels are parsed (and metadata judged by its own rules); 65 are refused unparsed, with
    invalid_metadata inside metadata and invalid_request anywhere else."""
    cases = [
        ('"metadata": {"custom": ' + deep_array(62) + "}", "invalid_metadata"),  # 64 levels: custom too deep
        ('"metadata": {"custom": ' + deep_array(63) + "}", "invalid_metadata"),  # 65 levels
        ('"label": ' + deep_array(64), "invalid_request"),  # 65 levels
    ]
    for n, (member, code) in enumerate(cases):
        body = '{"mimeType": "text/plain", "content": "aGk=", ' + member + "}"
        response = await client.post(
            "/v1/outputs",
            content=body,
            headers={**auth, "Idempotency-Key": f"depth-{n}", "Content-Type": "application/json"},
        )
        assert_error(response, 400, code, retryable=False, action="check_capabilities")


async def test_a_multipart_metadata_field_nested_deep_is_invalid_metadata(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/outputs",
        data={"mimeType": "text/plain", "metadata": '{"custom": ' + deep_array(DEEP) + "}"},
        files={"content": ("a.txt", b"hostile", "text/plain")},
        headers={**auth, "Idempotency-Key": "deep-mp"},
    )
    assert_error(response, 400, "invalid_metadata", retryable=False, action="check_capabilities")


@pytest.mark.parametrize("path", ["/v1/keys/register", "/v1/outputs/out_x/share", "/v1/credits/checkout"])
@pytest.mark.parametrize(
    "body",
    [deep_array(DEEP), "null", "[]", "7", '"text"', "true"],
    ids=["deep", "null", "array", "number", "string", "bool"],
)
async def test_small_json_bodies_must_be_objects_of_bounded_depth(
    client: httpx2.AsyncClient, auth: dict[str, str], path: str, body: str
) -> None:
    response = await client.post(path, content=body, headers={**auth, "Content-Type": "application/json"})
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")


async def test_an_integral_float_is_an_integer(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    created = await post_upload(client, auth, b"hostile", key="float-1")
    output_id = created.json()["outputId"]
    shared = await client.post(f"/v1/outputs/{output_id}/share", json={"expiresInSeconds": 3600.0}, headers=auth)
    assert shared.status_code == 200, shared.text
    fractional = await client.post(f"/v1/outputs/{output_id}/share", json={"expiresInSeconds": 3600.5}, headers=auth)
    assert_error(fractional, 400, "invalid_request", retryable=False, action="check_capabilities")


@pytest.mark.parametrize("header", ["Idempotency-Key", "Authorization"])
async def test_a_header_sent_twice_is_refused(client: httpx2.AsyncClient, auth: dict[str, str], header: str) -> None:
    headers = [
        ("Authorization", auth["Authorization"]),
        ("Idempotency-Key", "twice-1"),
        (header, "twice-2" if header == "Idempotency-Key" else auth["Authorization"]),
    ]
    response = await client.post("/v1/outputs", json=upload_document(b"hostile"), headers=headers)
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    assert (await client.get("/v1/outputs", headers=auth)).json()["outputs"] == []


@pytest.mark.parametrize(
    "encode",
    [
        lambda data: "\n".join(b64(data)[i : i + 76] for i in range(0, len(b64(data)), 76)) + "\n",
        lambda data: "\r\n".join(b64(data)[i : i + 64] for i in range(0, len(b64(data)), 64)),
        lambda data: "data:text/plain;base64," + b64(data),
        lambda data: "data:;base64," + b64(data),
    ],
    ids=["lines-lf", "lines-crlf", "data-uri", "data-uri-no-type"],
)
async def test_wrapped_base64_and_data_uris_are_the_same_artifact(
    client: httpx2.AsyncClient, auth: dict[str, str], encode: Any
) -> None:
    data = bytes(range(256)) * 3
    plain = await post_upload(client, auth, data, key="b64-1")
    assert plain.status_code == 201
    again = await client.post(
        "/v1/outputs",
        json=upload_document(b"hostile", content=encode(data)),
        headers={**auth, "Idempotency-Key": "b64-1"},
    )
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true", "same bytes, same fingerprint"
    fresh = await client.post(
        "/v1/outputs",
        json=upload_document(b"hostile", content=encode(data)),
        headers={**auth, "Idempotency-Key": "b64-2"},
    )
    assert fresh.status_code == 201
    content = await client.get(f"/v1/outputs/{fresh.json()['outputId']}/content", headers=auth)
    assert content.content == data


@pytest.mark.parametrize(
    "content", ["aGk= aGk=", "data:text/plain,hi", "aGk\t=", "a"], ids=["space", "data-uri-not-base64", "tab", "short"]
)
async def test_other_non_base64_is_still_invalid(
    client: httpx2.AsyncClient, auth: dict[str, str], content: str
) -> None:
    response = await client.post(
        "/v1/outputs", json=upload_document(b"hostile", content=content), headers={**auth, "Idempotency-Key": "bad-b64"}
    )
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")


def assert_jsonrpc_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["jsonrpc"] == "2.0"
    assert body["error"]["data"]["error"] == code
    assert body["error"]["data"]["agent_contract"]["retryable"] is False
    return body


MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def tools_call(request_id: int, arguments: str) -> str:
    return (
        '{"jsonrpc": "2.0", "id": ' + str(request_id) + ', "method": "tools/call", '
        '"params": {"name": "save_artifact", "arguments": ' + arguments + "}}"
    )


@pytest.mark.parametrize("settings_overrides", [pytest.param({"mcp_max_request_bytes": 4096}, id="4KiB")])
async def test_an_mcp_body_over_the_limit_names_the_upload_link_tool(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    arguments = json.dumps({"mime_type": "text/plain", "content_text": "x" * 8192})
    response = await client.post("/mcp", content=tools_call(3, arguments), headers={**auth, **MCP_HEADERS})
    body = assert_jsonrpc_error(response, 400, "payload_too_large")
    assert body["id"] == 3
    assert "create_upload_link" in body["error"]["message"]


async def test_an_mcp_request_nested_deep_gets_a_jsonrpc_error_with_its_id(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    arguments = '{"mime_type": "text/plain", "content_text": "x", "metadata": {"custom": ' + deep_array(DEEP) + "}}"
    response = await client.post("/mcp", content=tools_call(11, arguments), headers={**auth, **MCP_HEADERS})
    body = assert_jsonrpc_error(response, 400, "invalid_request")
    assert body["id"] == 11


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Host": "evil.example"}, 421), ({"Origin": "http://evil.example"}, 403)],
    ids=["host", "origin"],
)
async def test_mcp_guard_refusals_are_json(
    client: httpx2.AsyncClient, auth: dict[str, str], headers: dict[str, str], status: int
) -> None:
    request = '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'
    response = await client.post("/mcp", content=request, headers={**auth, **MCP_HEADERS, **headers})
    assert_jsonrpc_error(response, status, "invalid_request")
    assert response.headers["x-request-id"].startswith("req_")


async def disconnect_midway(client: httpx2.AsyncClient, path: str, headers: dict[str, str], first: bytes) -> None:
    """Send ``first`` bytes of a POST body to the app under test, then leave."""
    app = client._transport.app  # type: ignore[attr-defined]
    messages = [{"type": "http.request", "body": first, "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *((k.lower().encode(), v.encode()) for k, v in headers.items())],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)


def assert_one_quiet_warning(caplog: pytest.LogCaptureFixture) -> None:
    records = [r for r in caplog.records if r.name.startswith("outputlayer")]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_client_that_disconnects_mid_upload_is_one_warning_and_frees_its_key(
    client: httpx2.AsyncClient, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    headers = {**auth, "Idempotency-Key": "gone-1", "Content-Type": "application/json"}
    with caplog.at_level(logging.INFO):
        await disconnect_midway(client, "/v1/outputs", headers, b'{"mimeType": "text/plain", "content": "aGVs')
    assert_one_quiet_warning(caplog)
    retry = await post_upload(client, auth, b"hostile", key="gone-1")
    assert retry.status_code == 201, "the key was released"
    assert len((await client.get("/v1/outputs", headers=auth)).json()["outputs"]) == 1


async def test_a_client_that_disconnects_mid_mcp_request_is_one_warning(
    client: httpx2.AsyncClient, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await disconnect_midway(client, "/mcp", {**auth, **MCP_HEADERS}, b'{"jsonrpc": "2.0", "id": 1, "meth')
    assert_one_quiet_warning(caplog)


async def test_an_empty_status_filter_is_refused_and_any_base64url_cursor_is_a_cursor(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    empty = await client.get("/v1/outputs?status=", headers=auth)
    assert_error(empty, 400, "invalid_request", retryable=False, action="check_capabilities")
    forged = await client.get("/v1/outputs?cursor=_w", headers=auth)  # base64url of a byte that is not UTF-8
    assert forged.status_code == 200 and forged.json()["outputs"] == []
    garbled = await client.get("/v1/outputs?cursor=R%C3%A4", headers=auth)
    assert_error(garbled, 400, "invalid_request", retryable=False, action="check_capabilities")


async def test_an_empty_multipart_metadata_field_is_an_absent_one(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/outputs",
        data={"mimeType": "text/plain", "metadata": ""},
        files={"content": ("a.txt", b"hi", "text/plain")},
        headers={**auth, "Idempotency-Key": "empty-metadata"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == {}


async def test_an_oversized_multipart_metadata_field_is_invalid_metadata(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/outputs",
        data={"mimeType": "text/plain", "metadata": '{"custom": {"a": "' + "x" * 70_000 + '"}}'},
        files={"content": ("a.txt", b"hi", "text/plain")},
        headers={**auth, "Idempotency-Key": "huge-metadata"},
    )
    assert_error(response, 400, "invalid_metadata", retryable=False, action="check_capabilities")
