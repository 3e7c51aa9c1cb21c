"""REST errors: every error code the API produces, its status, contract and headers (SPEC sections 1-3, 5, 8)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx2
import pytest

from store import ArtifactService, ManualClock, iso_ms
from store.settings import RateLimits
from tests.conftest import REQUEST_ID, assert_contract, assert_error, b64
from tests.factories import multipart, upload_document

QUOTA_HEADERS = (
    "x-outputlayer-free-remaining",
    "x-outputlayer-credits-remaining",
    "x-outputlayer-storage-used-bytes",
    "x-outputlayer-storage-limit-bytes",
)
MAX_TTL = 2_592_000
SMALL_LIMITS = RateLimits(uploads_per_hour=2, reads_per_hour=2, deletes_per_hour=2, credits_per_hour=2)


# --- helpers ---------------------------------------------------------------------------------


def recommended_action(body: dict[str, Any]) -> dict[str, Any]:
    action: dict[str, Any] = body["agent_contract"]["next_actions"][0]
    return action


def bare_multipart(parts: list[tuple[str, bytes, str | None]]) -> tuple[bytes, dict[str, str]]:
    """The bodies these tests refuse carry no Content-Type on their file parts."""
    return multipart(parts, "errb0undary", file_type=None)


def key_headers(auth: dict[str, str], key: str | None = None) -> dict[str, str]:
    return {**auth, "Idempotency-Key": key or uuid.uuid4().hex}


async def post_json(
    client: httpx2.AsyncClient, auth: dict[str, str], document: Any, key: str | None = None
) -> httpx2.Response:
    return await client.post(
        "/v1/outputs",
        content=json.dumps(document).encode(),
        headers={**key_headers(auth, key), "Content-Type": "application/json"},
    )


async def in_chunks(data: bytes, size: int = 4096, pulled: list[int] | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        if pulled is not None:
            pulled.append(start)
        yield data[start : start + size]


async def assert_nothing_stored(client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService) -> None:
    """A refused upload leaves no output, no charge, no blob and no partial file."""
    listing = (await client.get("/v1/outputs", headers=auth)).json()
    assert listing["outputs"] == []
    balance = (await client.get("/v1/credits/balance", headers=auth)).json()
    assert (balance["freeRemaining"], balance["creditsRemaining"], balance["storageUsedBytes"]) == (5, 0, 0)
    assert list(service.blobs.keys()) == []
    partial = getattr(service.blobs, "partial_keys", None)
    if partial is not None:
        assert list(partial()) == []


# --- missing_idempotency_key -----------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "headers",
    [pytest.param({}, id="no-header"), pytest.param({"Idempotency-Key": ""}, id="empty-header")],
)
@pytest.mark.anyio
async def test_upload_without_an_idempotency_key_is_400_missing_idempotency_key(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, headers: dict[str, str]
) -> None:
    """POST /v1/outputs needs an Idempotency-Key."""
    response = await client.post("/v1/outputs", json=upload_document(), headers={**auth, **headers})
    assert_error(response, 400, "missing_idempotency_key", retryable=False, action="check_capabilities")
    assert all(name in response.headers for name in QUOTA_HEADERS)
    await assert_nothing_stored(client, auth, service)


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Content-Type": "text/plain"}, id="unknown-content-type"),
        pytest.param({"Content-Type": "application/json", "Content-Length": "2000000"}, id="json-over-1mib"),
    ],
)
@pytest.mark.anyio
async def test_a_missing_idempotency_key_is_reported_before_the_body_framing(
    client: httpx2.AsyncClient, auth: dict[str, str], headers: dict[str, str]
) -> None:
    """Without a key, a body that could not be an upload anyway still answers missing_idempotency_key."""
    response = await client.post("/v1/outputs", content=in_chunks(b"{}"), headers={**auth, **headers})
    assert_error(response, 400, "missing_idempotency_key", retryable=False, action="check_capabilities")


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        pytest.param("k" * 255, 201, None, id="255-chars-accepted"),
        pytest.param(" spaced ~ key ", 201, None, id="printable-ascii-accepted"),
        pytest.param("k" * 256, 400, "invalid_request", id="256-chars"),
        pytest.param(b"caf\xc3\xa9", 400, "invalid_request", id="non-ascii"),
        pytest.param(b"tab\there", 400, "invalid_request", id="control-character"),
    ],
)
@pytest.mark.anyio
async def test_idempotency_key_must_be_1_to_255_printable_ascii_characters(
    client: httpx2.AsyncClient, auth: dict[str, str], key: str | bytes, status: int, code: str | None
) -> None:
    """Keys outside printable ASCII 0x20-0x7E or longer than 255 characters are invalid_request."""
    raw = key if isinstance(key, bytes) else key.encode()
    headers = [(name.encode(), value.encode()) for name, value in auth.items()] + [(b"Idempotency-Key", raw)]
    response = await client.post("/v1/outputs", json=upload_document(), headers=headers)
    if code is None:
        assert response.status_code == status, response.text
    else:
        assert_error(response, status, code, retryable=False, action="check_capabilities")


# --- invalid_mime_type -----------------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "mime",
    [
        pytest.param("text/markdown", id="unsupported"),
        pytest.param("image/svg+xml", id="svg"),
        pytest.param("text", id="no-subtype"),
        pytest.param("", id="empty"),
        pytest.param("; charset=utf-8", id="only-parameters"),
    ],
)
@pytest.mark.anyio
async def test_unsupported_mime_type_is_400_invalid_mime_type(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, mime: str
) -> None:
    """A MIME type outside the 12 supported ones answers invalid_mime_type, JSON or multipart."""
    response = await post_json(client, auth, {"mimeType": mime, "content": b64(b"x")})
    assert_error(response, 400, "invalid_mime_type", retryable=False, action="check_capabilities")
    body, headers = bare_multipart([("mimeType", mime.encode(), None), ("content", b"x", "x.bin")])
    response = await client.post("/v1/outputs", content=body, headers={**key_headers(auth), **headers})
    assert_error(response, 400, "invalid_mime_type", retryable=False, action="check_capabilities")
    await assert_nothing_stored(client, auth, service)


# --- payload_too_large -----------------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_json_body_over_1_mib_is_payload_too_large_by_content_length(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """A JSON upload declaring more than 1,048,576 bytes is refused before the body is read."""
    document = json.dumps(upload_document(b"x" * 800_000)).encode()
    assert len(document) > 1_048_576
    pulled: list[int] = []
    headers = {**key_headers(auth), "Content-Type": "application/json", "Content-Length": str(len(document))}
    response = await client.post("/v1/outputs", content=in_chunks(document, 65_536, pulled), headers=headers)
    assert_error(response, 400, "payload_too_large", retryable=False, action="check_capabilities")
    assert pulled == []
    await assert_nothing_stored(client, auth, service)


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_chunked_json_body_over_1_mib_is_cut_off_mid_stream(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """Without Content-Length a JSON body is counted while it streams and refused past 1 MiB."""
    document = json.dumps(upload_document(b"x" * 3_000_000)).encode()
    pulled: list[int] = []
    headers = {**key_headers(auth), "Content-Type": "application/json"}
    response = await client.post("/v1/outputs", content=in_chunks(document, 65_536, pulled), headers=headers)
    assert_error(response, 400, "payload_too_large", retryable=False, action="check_capabilities")
    assert len(pulled) <= 1_048_576 // 65_536 + 1, "reading stopped at the 1 MiB limit"
    await assert_nothing_stored(client, auth, service)


@pytest.mark.any_backend
@pytest.mark.parametrize("settings_overrides", [pytest.param({"max_upload_bytes": 1000}, id="1000-byte-limit")])
@pytest.mark.anyio
async def test_multipart_over_the_limit_is_payload_too_large_by_content_length(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """A multipart upload declaring far more than the limit is refused before any byte is read."""
    body, headers = bare_multipart([("mimeType", b"application/octet-stream", None), ("content", b"x" * 50_000, "x")])
    pulled: list[int] = []
    response = await client.post(
        "/v1/outputs",
        content=in_chunks(body, 4096, pulled),
        headers={**key_headers(auth), **headers, "Content-Length": str(len(body))},
    )
    assert_error(response, 400, "payload_too_large", retryable=False, action="check_capabilities")
    assert pulled == []
    await assert_nothing_stored(client, auth, service)


@pytest.mark.parametrize("settings_overrides", [pytest.param({"max_upload_bytes": 1000}, id="1000-byte-limit")])
@pytest.mark.parametrize("fields_first", [pytest.param(True, id="fields-first"), pytest.param(False, id="file-first")])
@pytest.mark.anyio
async def test_chunked_multipart_over_the_limit_is_cut_off_mid_stream(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, fields_first: bool
) -> None:
    """Without Content-Length the content is counted as it streams; past the limit: 400, nothing left behind."""
    parts = [("mimeType", b"application/octet-stream", None), ("content", b"x" * 50_000, "x")]
    body, headers = bare_multipart(parts if fields_first else parts[::-1])
    pulled: list[int] = []
    response = await client.post(
        "/v1/outputs", content=in_chunks(body, 512, pulled), headers={**key_headers(auth, "cut"), **headers}
    )
    assert_error(response, 400, "payload_too_large", retryable=False, action="check_capabilities")
    assert len(pulled) < 10, "the server stopped reading soon after the limit"
    await assert_nothing_stored(client, auth, service)
    small, small_headers = bare_multipart([parts[0], ("content", b"y" * 1000, "y")])
    retry = await client.post(
        "/v1/outputs", content=in_chunks(small, 512), headers={**key_headers(auth, "cut"), **small_headers}
    )
    assert retry.status_code == 201, "exactly the limit is accepted, and the refused key was released"
    assert retry.json()["sizeBytes"] == 1000


@pytest.mark.any_backend
@pytest.mark.parametrize("settings_overrides", [pytest.param({"max_upload_bytes": 1000}, id="1000-byte-limit")])
@pytest.mark.anyio
async def test_json_content_over_the_file_limit_is_payload_too_large(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService
) -> None:
    """Decoded JSON content above the per-file limit is refused with payload_too_large."""
    response = await post_json(client, auth, upload_document(b"x" * 1001))
    assert_error(response, 400, "payload_too_large", retryable=False, action="check_capabilities")
    await assert_nothing_stored(client, auth, service)


# --- invalid_metadata ------------------------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for level in range(depth - 1):
        value = {f"l{level}": value}
    return value


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"owner": "me"}, id="unknown-key"),
        pytest.param({"agentId": "a" * 101}, id="agentId-over-100"),
        pytest.param({"jobId": "j" * 101}, id="jobId-over-100"),
        pytest.param({"sourceSystem": "s" * 101}, id="sourceSystem-over-100"),
        pytest.param({"agentId": 7}, id="agentId-not-a-string"),
        pytest.param({"tags": [f"t{i}" for i in range(11)]}, id="eleven-tags"),
        pytest.param({"tags": ["t" * 51]}, id="tag-over-50"),
        pytest.param({"tags": "one"}, id="tags-not-a-list"),
        pytest.param({"tags": [1]}, id="tag-not-a-string"),
        pytest.param({"custom": {"blob": "x" * 4086}}, id="custom-4097-bytes"),
        pytest.param({"custom": _nested(4)}, id="custom-depth-4"),
        pytest.param({"custom": {f"k{i}": i for i in range(51)}}, id="custom-51-keys"),
        pytest.param({"custom": {"outer": {f"k{i}": i for i in range(50)}}}, id="custom-51-keys-nested"),
        pytest.param({"custom": [1, 2]}, id="custom-not-an-object"),
        pytest.param(["agentId"], id="metadata-a-list"),
        pytest.param("agentId=a", id="metadata-a-string"),
    ],
)
@pytest.mark.anyio
async def test_metadata_rules_answer_400_invalid_metadata(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, metadata: Any
) -> None:
    """Every metadata rule of SPEC section 5 refuses with invalid_metadata and stores nothing."""
    response = await post_json(client, auth, upload_document(metadata=metadata))
    assert_error(response, 400, "invalid_metadata", retryable=False, action="check_capabilities")
    await assert_nothing_stored(client, auth, service)


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"agentId": "a" * 100, "jobId": "j" * 100, "sourceSystem": "s" * 100}, id="strings-of-100"),
        pytest.param({"tags": ["t" * 50] * 10}, id="ten-tags-of-50"),
        pytest.param({"custom": {"blob": "x" * 4085}}, id="custom-4096-bytes"),
        pytest.param({"custom": _nested(3)}, id="custom-depth-3"),
        pytest.param({"custom": {f"k{i}": i for i in range(50)}}, id="custom-50-keys"),
        pytest.param({}, id="empty"),
    ],
)
@pytest.mark.anyio
async def test_metadata_at_the_limits_is_accepted(
    client: httpx2.AsyncClient, auth: dict[str, str], metadata: dict[str, Any]
) -> None:
    """Metadata exactly at each limit is stored as sent."""
    response = await post_json(client, auth, upload_document(metadata=metadata))
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == metadata


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b'{"owner": "me"}', id="unknown-key"),
        pytest.param(b'["a"]', id="not-an-object"),
    ],
)
@pytest.mark.anyio
async def test_multipart_metadata_rules_answer_400_invalid_metadata(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, value: bytes
) -> None:
    """The multipart metadata field is JSON held to the same rules."""
    body, headers = bare_multipart(
        [("mimeType", b"text/plain", None), ("metadata", value, None), ("content", b"x", "x")]
    )
    response = await client.post("/v1/outputs", content=body, headers={**key_headers(auth), **headers})
    assert_error(response, 400, "invalid_metadata", retryable=False, action="check_capabilities")
    await assert_nothing_stored(client, auth, service)


# --- invalid_expiry --------------------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "expires_at",
    [
        pytest.param(lambda now: iso_ms(now - 1000), id="past"),
        pytest.param(lambda now: iso_ms(now), id="now"),
        pytest.param(lambda now: iso_ms(now + (MAX_TTL + 1) * 1000), id="over-30-days"),
        pytest.param(lambda now: iso_ms(now + 3_600_000).removesuffix("Z"), id="no-zone"),
        pytest.param(lambda now: iso_ms(now + 86_400_000)[:10], id="date-only"),
        pytest.param(lambda now: "tomorrow", id="not-a-date"),
        pytest.param(lambda now: "", id="empty"),
        pytest.param(lambda now: now // 1000 + 3600, id="a-number"),
    ],
)
@pytest.mark.anyio
async def test_expiry_rules_answer_400_invalid_expiry(
    client: httpx2.AsyncClient,
    auth: dict[str, str],
    clock: ManualClock,
    service: ArtifactService,
    expires_at: Callable[[int], Any],
) -> None:
    """expiresAt must be a zoned ISO 8601 date-time, strictly future, at most 30 days away."""
    response = await post_json(client, auth, upload_document(expiresAt=expires_at(clock.now_ms())))
    assert_error(response, 400, "invalid_expiry", retryable=False, action="check_capabilities")
    await assert_nothing_stored(client, auth, service)


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("expires_at", "seconds"),
    [
        pytest.param(lambda now: iso_ms(now + MAX_TTL * 1000), MAX_TTL, id="exactly-30-days"),
        pytest.param(lambda now: iso_ms(now + 1000), 1, id="one-second"),
        pytest.param(
            lambda now: (
                (datetime.fromtimestamp(now / 1000, UTC) + timedelta(hours=2))
                .astimezone(timezone(timedelta(hours=2)))
                .isoformat(timespec="milliseconds")
            ),
            7200,
            id="offset-zone",
        ),
    ],
)
@pytest.mark.anyio
async def test_expiry_within_the_window_is_accepted(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock, expires_at: Callable[[int], str], seconds: int
) -> None:
    """A zoned expiry up to the maximum TTL is accepted and reported in UTC."""
    now = clock.now_ms()
    response = await post_json(client, auth, upload_document(expiresAt=expires_at(now)))
    assert response.status_code == 201, response.text
    assert response.json()["expiresAt"] == iso_ms(now + seconds * 1000)
    assert assert_contract(response.json())["expires_in_seconds"] == seconds


# --- invalid_request -------------------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "document",
    [
        pytest.param(upload_document(filename="a.txt"), id="unknown-field"),
        pytest.param({"mimeType": "text/plain", "content": "not base64!!"}, id="bad-base64"),
        pytest.param({"mimeType": "text/plain", "content": "aGVsbG8"}, id="unpadded-base64"),
        pytest.param({"mimeType": "text/plain", "content": ""}, id="empty-content"),
        pytest.param({"mimeType": "text/plain"}, id="missing-content"),
        pytest.param({"mimeType": "text/plain", "content": 12}, id="content-not-a-string"),
        pytest.param({"content": b64(b"x")}, id="missing-mime-type"),
        pytest.param(upload_document(label="l" * 201), id="label-over-200"),
        pytest.param(upload_document(label="line\nbreak"), id="label-newline"),
        pytest.param(upload_document(label="nul\x00"), id="label-nul"),
        pytest.param(upload_document(label="del\x7f"), id="label-del"),
        pytest.param(upload_document(label=5), id="label-not-a-string"),
        pytest.param(upload_document(public="true"), id="public-string"),
        pytest.param(upload_document(public=1), id="public-number"),
        pytest.param(upload_document(public=None), id="public-null"),
        pytest.param([upload_document()], id="body-a-list"),
        pytest.param("hello", id="body-a-string"),
    ],
)
@pytest.mark.anyio
async def test_json_upload_rules_answer_400_invalid_request(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, document: Any
) -> None:
    """Each JSON upload rule of SPEC section 5 refuses with invalid_request and stores nothing."""
    response = await post_json(client, auth, document)
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    await assert_nothing_stored(client, auth, service)


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "raw",
    [pytest.param(b"", id="empty-body"), pytest.param(b'{"mimeType": ', id="malformed-json")],
)
@pytest.mark.anyio
async def test_unparseable_json_upload_is_invalid_request(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, raw: bytes
) -> None:
    """An empty or malformed JSON body answers invalid_request."""
    headers = {**key_headers(auth), "Content-Type": "application/json"}
    response = await client.post("/v1/outputs", content=raw, headers=headers)
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    await assert_nothing_stored(client, auth, service)


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_label_of_200_characters_is_accepted(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """The label limit is inclusive."""
    response = await post_json(client, auth, upload_document(label="é" * 200))
    assert response.status_code == 201
    assert response.json()["label"] == "é" * 200


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "parts",
    [
        pytest.param(
            [("mimeType", b"text/plain", None), ("public", b"yes", None), ("content", b"x", "x")],
            id="public-not-boolean",
        ),
        pytest.param([("mimeType", b"text/plain", None), ("content", b"", "x")], id="empty-file"),
        pytest.param([("mimeType", b"text/plain", None)], id="no-content-part"),
        pytest.param([("mimeType", b"text/plain", None), ("file", b"x", "x")], id="file-part-not-named-content"),
        pytest.param(
            [("mimeType", b"text/plain", None), ("colour", b"red", None), ("content", b"x", "x")], id="unknown-field"
        ),
        pytest.param(
            [("mimeType", b"text/plain", None), ("content", b"x", "x"), ("content", b"y", "y")], id="two-content-parts"
        ),
        pytest.param(
            [("mimeType", b"text/plain", None), ("mimeType", b"text/plain", None), ("content", b"x", "x")],
            id="field-twice",
        ),
        pytest.param([("content", b"x", "x")], id="missing-mime-type"),
        pytest.param(
            [("mimeType", b"text/plain", None), ("label", b"a\x01b", None), ("content", b"x", "x")],
            id="label-control-character",
        ),
    ],
)
@pytest.mark.anyio
async def test_multipart_upload_rules_answer_400_invalid_request(
    client: httpx2.AsyncClient,
    auth: dict[str, str],
    service: ArtifactService,
    parts: list[tuple[str, bytes, str | None]],
) -> None:
    """Each multipart rule refuses with invalid_request and stores nothing."""
    body, headers = bare_multipart(parts)
    response = await client.post("/v1/outputs", content=body, headers={**key_headers(auth), **headers})
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    await assert_nothing_stored(client, auth, service)


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(
            b'--b\r\nContent-Disposition: form-data; name="content"\r\n\r\nx\r\n',
            "multipart/form-data; boundary=b",
            id="no-closing-boundary",
        ),
        pytest.param(b"anything", "multipart/form-data", id="no-boundary-parameter"),
        pytest.param(b"hello", "text/plain", id="text-plain"),
        pytest.param(
            b"mimeType=text/plain&content=aGVsbG8=", "application/x-www-form-urlencoded", id="url-encoded-form"
        ),
        pytest.param(b"hello", None, id="no-content-type"),
    ],
)
@pytest.mark.anyio
async def test_other_upload_bodies_and_content_types_are_invalid_request(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, body: bytes, content_type: str | None
) -> None:
    """Only application/json and well-formed multipart/form-data are upload bodies."""
    headers = key_headers(auth)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.post("/v1/outputs", content=body, headers=headers)
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    await assert_nothing_stored(client, auth, service)


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "query",
    [
        pytest.param("limit=0", id="limit-0"),
        pytest.param("limit=101", id="limit-101"),
        pytest.param("limit=-1", id="limit-negative"),
        pytest.param("limit=ten", id="limit-not-a-number"),
        pytest.param("limit=2.5", id="limit-fraction"),
        pytest.param("status=pending", id="unknown-status"),
    ],
)
@pytest.mark.anyio
async def test_list_parameters_out_of_range_are_invalid_request(
    client: httpx2.AsyncClient, auth: dict[str, str], query: str
) -> None:
    """limit outside 1..100 and unknown statuses answer 400 invalid_request."""
    response = await client.get(f"/v1/outputs?{query}", headers=auth)
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    assert all(name in response.headers for name in QUOTA_HEADERS)


KEY_ROUTES = [
    ("POST", "/v1/keys/register"),
    ("POST", "/v1/outputs"),
    ("GET", "/v1/outputs"),
    ("GET", "/v1/outputs/out_x"),
    ("DELETE", "/v1/outputs/out_x"),
    ("GET", "/v1/outputs/out_x/content"),
    ("POST", "/v1/outputs/out_x/share"),
    ("GET", "/v1/credits/balance"),
    ("POST", "/v1/credits/checkout"),
    ("GET", "/v1/credits/verify"),
    ("GET", "/public/out_x"),
    ("GET", "/s/token"),
    ("GET", "/v1/capabilities"),
    ("GET", "/health"),
    ("GET", "/no/such/route"),
    ("PUT", "/v1/outputs"),
]


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "query",
    [
        pytest.param("api_key={key}", id="api_key"),
        pytest.param("apiKey={key}", id="apiKey"),
        pytest.param("key=abc", id="key"),
        pytest.param("token=abc", id="token"),
        pytest.param("access_token=abc", id="access_token"),
        pytest.param("API_KEY=abc", id="upper-case-name"),
        pytest.param("q={key}", id="value-starting-ol_live_"),
        pytest.param("q=ol_live_", id="bare-prefix"),
    ],
)
@pytest.mark.anyio
async def test_a_key_in_the_query_string_is_refused_on_every_route(
    client: httpx2.AsyncClient, auth: dict[str, str], api_key: str, query: str
) -> None:
    """Any route answers 400 invalid_request when the query string carries a key, even with a valid header."""
    wrong = []
    for method, path in KEY_ROUTES:
        response = await client.request(method, f"{path}?{query.format(key=api_key)}", headers=auth)
        if response.status_code != 400 or response.json().get("error") != "invalid_request":
            wrong.append(f"{method} {path} -> {response.status_code} {response.json().get('error')}")
            continue
        assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")
    assert wrong == []


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_a_key_in_the_query_string_is_refused_on_the_paypal_webhook(
    client: httpx2.AsyncClient, api_key: str
) -> None:
    """The webhook route refuses a key in its query string like every other route."""
    response = await client.post(f"/webhooks/paypal?api_key={api_key}", json={})
    assert_error(response, 400, "invalid_request", retryable=False, action="check_capabilities")


# --- missing_api_key / invalid_api_key -------------------------------------------------------


AUTH_ROUTES = [
    ("POST", "/v1/outputs"),
    ("GET", "/v1/outputs"),
    ("GET", "/v1/outputs/out_x"),
    ("DELETE", "/v1/outputs/out_x"),
    ("GET", "/v1/outputs/out_x/content"),
    ("POST", "/v1/outputs/out_x/share"),
    ("GET", "/v1/credits/balance"),
    ("POST", "/v1/credits/checkout"),
    ("GET", "/v1/credits/verify?purchaseId=purch_x"),
]


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("make_headers", "code"),
    [
        pytest.param(lambda key: {}, "missing_api_key", id="no-header"),
        pytest.param(lambda key: {"x-api-key": key}, "missing_api_key", id="x-api-key-only"),
        pytest.param(lambda key: {"Authorization": key}, "missing_api_key", id="no-scheme"),
        pytest.param(lambda key: {"Authorization": f"Basic {key}"}, "missing_api_key", id="basic-scheme"),
        pytest.param(lambda key: {"Authorization": "Bearer "}, "missing_api_key", id="empty-bearer"),
        pytest.param(lambda key: {"Authorization": "Bearer ol_live_" + "0" * 64}, "invalid_api_key", id="unknown-key"),
        pytest.param(lambda key: {"Authorization": "Bearer " + key[:-1]}, "invalid_api_key", id="truncated-key"),
        pytest.param(lambda key: {"Authorization": "Bearer " + key.upper()}, "invalid_api_key", id="upper-cased-key"),
        pytest.param(lambda key: {"Authorization": "Bearer sk-something"}, "invalid_api_key", id="foreign-key"),
    ],
)
@pytest.mark.anyio
async def test_authentication_failures_answer_401_with_register_key(
    client: httpx2.AsyncClient, api_key: str, make_headers: Callable[[str], dict[str, str]], code: str
) -> None:
    """Every authenticated route answers 401 for a missing or unknown key, recommending register_key."""
    for method, path in AUTH_ROUTES:
        headers = {**make_headers(api_key), "Idempotency-Key": "k"}
        response = await client.request(method, path, headers=headers, json={"packId": "basic"})
        body = assert_error(response, 401, code, retryable=False, action="register_key")
        register = recommended_action(body)
        assert (register["method"], register["endpoint"]) == ("POST", "/v1/keys/register"), path
        assert not any(name in response.headers for name in QUOTA_HEADERS), path


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_the_bearer_scheme_is_case_insensitive(client: httpx2.AsyncClient, api_key: str) -> None:
    """``bearer <key>`` authenticates like ``Bearer <key>``."""
    response = await client.get("/v1/credits/balance", headers={"Authorization": f"bearer {api_key}"})
    assert response.status_code == 200


# --- not_found / wrong_method ----------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/nope", id="unknown-top-level"),
        pytest.param("/v1/outputs/out_x/content/extra", id="too-deep"),
        pytest.param("/v2/outputs", id="unknown-version"),
    ],
)
@pytest.mark.anyio
async def test_unknown_paths_are_404_not_found(client: httpx2.AsyncClient, auth: dict[str, str], path: str) -> None:
    """A path the API does not have answers 404 not_found with check_capabilities."""
    response = await client.get(path, headers=auth)
    body = assert_error(response, 404, "not_found", retryable=False, action="check_capabilities")
    check = recommended_action(body)
    assert (check["method"], check["endpoint"]) == ("GET", "/v1/capabilities")


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("method", "path", "action", "endpoint"),
    [
        pytest.param("GET", "/v1/keys/register", "register_key", ("POST", "/v1/keys/register"), id="get-register"),
        pytest.param("PUT", "/v1/outputs", "create_new_output", ("POST", "/v1/outputs"), id="put-outputs"),
        pytest.param("PATCH", "/v1/outputs/out_x", "get_output", ("GET", "/v1/outputs/out_x"), id="patch-output"),
        pytest.param(
            "POST",
            "/v1/outputs/out_x/content",
            "download_content",
            ("GET", "/v1/outputs/out_x/content"),
            id="post-content",
        ),
        pytest.param(
            "GET", "/v1/outputs/out_x/share", "create_share_link", ("POST", "/v1/outputs/out_x/share"), id="get-share"
        ),
        pytest.param("GET", "/v1/credits/checkout", "buy_credits", ("POST", "/v1/credits/checkout"), id="get-checkout"),
    ],
)
@pytest.mark.anyio
async def test_wrong_method_on_a_known_path_is_405_pointing_at_the_right_method(
    client: httpx2.AsyncClient,
    auth: dict[str, str],
    method: str,
    path: str,
    action: str,
    endpoint: tuple[str, str],
) -> None:
    """405 wrong_method recommends the action that uses the path correctly."""
    response = await client.request(method, path, headers=auth)
    body = assert_error(response, 405, "wrong_method", retryable=False, action=action)
    right = recommended_action(body)
    assert (right["method"], right["endpoint"]) == endpoint


@pytest.mark.any_backend
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("GET", "/v1/keys/register", {"POST"}, id="register"),
        pytest.param("PUT", "/v1/outputs", {"GET", "POST"}, id="outputs"),
        pytest.param("PATCH", "/v1/outputs/out_x", {"GET", "DELETE"}, id="output"),
        pytest.param("DELETE", "/v1/credits/balance", {"GET"}, id="balance"),
    ],
)
@pytest.mark.anyio
async def test_wrong_method_lists_every_method_of_the_path_in_allow(
    client: httpx2.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    """A 405 names all the methods the path supports in Allow (RFC 9110 section 15.5.6)."""
    response = await client.request(method, path)
    assert response.status_code == 405
    assert allowed <= {m.strip() for m in response.headers["allow"].split(",")}


# --- rate_limited ----------------------------------------------------------------------------


RATE_CASES = [
    pytest.param("GET", "/v1/outputs/out_missing", id="reads-get-output"),
    pytest.param("GET", "/v1/outputs", id="reads-list"),
    pytest.param("GET", "/v1/outputs/out_missing/content", id="reads-content"),
    pytest.param("DELETE", "/v1/outputs/out_missing", id="deletes"),
    pytest.param("GET", "/v1/credits/balance", id="credits-balance"),
    pytest.param("POST", "/v1/outputs", id="uploads"),
]


@pytest.mark.any_backend
@pytest.mark.parametrize("settings_overrides", [pytest.param({"rate_limits": SMALL_LIMITS}, id="limit-2")])
@pytest.mark.parametrize(("method", "path"), RATE_CASES)
@pytest.mark.anyio
async def test_rate_limit_answers_429_pointing_at_the_request_that_failed(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock, method: str, path: str
) -> None:
    """The third request in an hour answers 429 with Retry-After, RateLimit-* and a retry of the same request."""

    async def send() -> httpx2.Response:
        if method == "POST":
            return await client.post(path, json=upload_document(uuid.uuid4().bytes), headers=key_headers(auth))
        return await client.request(method, path, headers=auth)

    for remaining in (1, 0):
        allowed = await send()
        assert allowed.status_code != 429
        assert allowed.headers["ratelimit-limit"] == "2"
        assert allowed.headers["ratelimit-remaining"] == str(remaining)
        clock.advance(10)
    refused = await send()
    body = assert_error(refused, 429, "rate_limited", retryable=True, action="retry_after_wait")
    wait = recommended_action(body)
    assert (wait["method"], wait["endpoint"]) == (method, path)
    assert refused.headers["retry-after"] == "3580"
    assert wait["retry_after_seconds"] == 3580
    assert refused.headers["ratelimit-limit"] == "2"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-reset"] == "3580"
    assert all(name in refused.headers for name in QUOTA_HEADERS)
    clock.advance(3580)
    assert (await send()).status_code != 429


@pytest.mark.any_backend
@pytest.mark.parametrize("settings_overrides", [pytest.param({"rate_limits": SMALL_LIMITS}, id="limit-2")])
@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/v1/credits/verify?purchaseId=purch_x", id="verify-with-purchase-id"),
        pytest.param("/v1/outputs?limit=5&status=ready", id="list-with-filters"),
    ],
)
@pytest.mark.anyio
async def test_rate_limit_retry_action_keeps_the_query_of_the_request_that_failed(
    client: httpx2.AsyncClient, auth: dict[str, str], target: str
) -> None:
    """retry_after_wait repeats the same request, so its endpoint keeps the query string."""
    for _ in range(2):
        await client.get(target, headers=auth)
    refused = await client.get(target, headers=auth)
    body = assert_error(refused, 429, "rate_limited", retryable=True, action="retry_after_wait")
    assert recommended_action(body)["endpoint"] == target


@pytest.mark.any_backend
@pytest.mark.parametrize("settings_overrides", [pytest.param({"rate_limits": SMALL_LIMITS}, id="limit-2")])
@pytest.mark.anyio
async def test_route_families_have_separate_budgets(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """Exhausting reads leaves deletes and credits untouched."""
    for _ in range(2):
        await client.get("/v1/outputs", headers=auth)
    assert (await client.get("/v1/outputs", headers=auth)).status_code == 429
    assert (await client.delete("/v1/outputs/out_x", headers=auth)).status_code == 404
    assert (await client.get("/v1/credits/balance", headers=auth)).status_code == 200


@pytest.mark.parametrize("settings_overrides", [pytest.param({"rate_limits": SMALL_LIMITS}, id="limit-2")])
@pytest.mark.anyio
async def test_idempotent_replays_do_not_consume_the_upload_budget(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """Replays are free: with a budget of 2, A + 3 replays + B succeed, C is 429, A replays still succeed."""
    first = await post_json(client, auth, upload_document(b"A"), key="A")
    assert first.status_code == 201
    for _ in range(3):
        replay = await post_json(client, auth, upload_document(b"A"), key="A")
        assert replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"
    assert (await post_json(client, auth, upload_document(b"B"), key="B")).status_code == 201
    refused = await post_json(client, auth, upload_document(b"C"), key="C")
    assert_error(refused, 429, "rate_limited", retryable=True, action="retry_after_wait")
    late_replay = await post_json(client, auth, upload_document(b"A"), key="A")
    assert late_replay.status_code == 201
    assert late_replay.json()["outputId"] == first.json()["outputId"]


@pytest.mark.any_backend
@pytest.mark.parametrize(
    "settings_overrides", [pytest.param({"rate_limits_enabled": False, "rate_limits": SMALL_LIMITS}, id="off")]
)
@pytest.mark.anyio
async def test_rate_limits_off_lets_every_request_through(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """OUTPUTLAYER_RATE_LIMITS=off: no 429 and no RateLimit headers."""
    for _ in range(5):
        response = await client.get("/v1/outputs", headers=auth)
        assert response.status_code == 200
        assert "ratelimit-limit" not in response.headers


# --- server_error ----------------------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_an_unexpected_failure_is_a_500_server_error_without_details(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unhandled exception answers 500 server_error, retryable after 30 s, with no stack trace."""

    async def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service, "list_page", explode)
    response = await client.get("/v1/outputs?limit=3", headers=auth)
    body = assert_error(response, 500, "server_error", retryable=True, action="retry_after_wait")
    wait = recommended_action(body)
    assert (wait["method"], wait["retry_after_seconds"]) == ("GET", 30)
    assert wait["endpoint"].startswith("/v1/outputs")
    assert response.headers["retry-after"] == "30"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert all(name in response.headers for name in QUOTA_HEADERS)


# --- headers on every response ---------------------------------------------------------------


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_quota_headers_are_on_every_authenticated_response_including_errors(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """X-OutputLayer-* appear once the key is known, on successes and on errors."""
    created = await post_json(client, auth, upload_document(b"0123456789", label="a.txt"), key="q")
    public = await post_json(client, auth, upload_document(b"pub", public=True))
    output_id = created.json()["outputId"]
    responses = {
        "upload 201": created,
        "upload replay": await post_json(client, auth, upload_document(b"0123456789", label="a.txt"), key="q"),
        "upload 409": await post_json(client, auth, upload_document(b"other"), key="q"),
        "upload 400 no key": await client.post("/v1/outputs", json=upload_document(), headers=auth),
        "upload 400 mime": await post_json(client, auth, {"mimeType": "x/y", "content": "eA=="}),
        "list 200": await client.get("/v1/outputs", headers=auth),
        "list 400": await client.get("/v1/outputs?limit=0", headers=auth),
        "get 200": await client.get(f"/v1/outputs/{output_id}", headers=auth),
        "get 404": await client.get("/v1/outputs/out_x", headers=auth),
        "content 200": await client.get(f"/v1/outputs/{output_id}/content", headers=auth),
        "content 206": await client.get(f"/v1/outputs/{output_id}/content", headers={**auth, "Range": "bytes=0-1"}),
        "content 302": await client.get(f"/v1/outputs/{public.json()['outputId']}/content", headers=auth),
        "content 304": await client.get(
            f"/v1/outputs/{output_id}/content", headers={**auth, "If-None-Match": f'"{created.json()["sha256"]}"'}
        ),
        "content 416": await client.get(f"/v1/outputs/{output_id}/content", headers={**auth, "Range": "bytes=99-"}),
        "share 200": await client.post(f"/v1/outputs/{output_id}/share", headers=auth, json={}),
        "balance 200": await client.get("/v1/credits/balance", headers=auth),
        "checkout 503": await client.post("/v1/credits/checkout", headers=auth, json={"packId": "basic"}),
        "verify 404": await client.get("/v1/credits/verify?purchaseId=purch_x", headers=auth),
        "delete 200": await client.delete(f"/v1/outputs/{output_id}", headers=auth),
        "get 410": await client.get(f"/v1/outputs/{output_id}", headers=auth),
        "content 410": await client.get(f"/v1/outputs/{output_id}/content", headers=auth),
    }
    for name, response in responses.items():
        missing = [h for h in QUOTA_HEADERS if h not in response.headers]
        assert not missing, f"{name}: missing {missing}"
        assert all(response.headers[h].isdigit() for h in QUOTA_HEADERS), name
        assert response.headers["x-outputlayer-storage-limit-bytes"] == "262144000", name
    assert responses["delete 200"].headers["x-outputlayer-storage-used-bytes"] == "3"
    assert responses["upload 201"].headers["x-outputlayer-free-remaining"] == "4"


@pytest.mark.any_backend
@pytest.mark.anyio
async def test_every_response_carries_a_unique_request_id(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """X-Request-Id (req_ + ULID) is on every response, and error bodies repeat it."""
    created = await post_json(client, auth, upload_document(public=True))
    output_id = created.json()["outputId"]
    responses = [
        created,
        await client.post("/v1/keys/register"),
        await client.get("/v1/outputs"),
        await client.get("/v1/outputs", headers={"Authorization": "Bearer nope"}),
        await client.get("/v1/outputs", headers=auth),
        await client.get(f"/v1/outputs/{output_id}/content", headers=auth),
        await client.get(f"/public/{output_id}"),
        await client.get("/public/out_x"),
        await client.get("/s/out_x.1.abc"),
        await client.get("/nowhere"),
        await client.delete("/v1/keys/register"),
        await client.get("/v1/outputs?token=abc"),
        await client.post("/webhooks/paypal", json={}),
    ]
    ids = [response.headers.get("x-request-id", "") for response in responses]
    for response, request_id in zip(responses, ids, strict=True):
        assert REQUEST_ID.match(request_id), f"{response.request.method} {response.request.url}"
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            assert_contract(body)
            if "error" in body:
                assert body["request_id"] == request_id
    assert len(set(ids)) == len(ids)
