"""The ``/v1/examples`` document: worked requests and the responses this server gives to them.

The shape is the hosted service's (seed 002: ``note``, ``examples`` with id/title/request/response,
``supported_mime_types``). Response bodies are not written by hand: outputs are rendered by
:func:`store.views.render_output` from example rows, and every ``agent_contract`` comes from
:mod:`store.contract`, so the examples show exactly what the server sends. Statuses come from the
error table. Placeholders (see ``note``) stand for the values a real exchange returns.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from rest.errors import retry_after_header
from store import (
    SUPPORTED_MIME_TYPES,
    OutputResult,
    Settings,
    StoreError,
    Urls,
    balance_contract,
    error_envelope,
    gone_body,
    iso_ms,
    list_contract,
    output_expired,
    output_fields,
    parse_iso,
    register_contract,
    render_output,
    share_contract,
    upload_link_contract,
    upload_not_completed,
)

API_KEY = "ol_live_a3f9..."
ACCOUNT_ID = "key_01J..."
OUTPUT_ID = "out_01J..."
OTHER_OUTPUT_ID = "out_01K..."
REQUEST_ID = "req_01J..."
INVALID_KEY = "ol_live_not-a-real-key"
CREATED_AT = "2026-03-11T14:22:00.000Z"
JSON_CONTENT = b'{"result": "ok"}'
PDF_SIZE = 204_800
PDF_SHA256 = hashlib.sha256(b"Q4 Report.pdf example bytes").hexdigest()

Example = dict[str, Any]


def build_examples(base_url: str, settings: Settings | None = None) -> dict[str, Any]:
    """The examples with absolute URLs under ``base_url``; ``settings`` supplies the public base URL, the
    default TTL and the free-tier numbers (the defaults of SPEC section 9 when omitted)."""
    base = base_url.rstrip("/")
    config = settings if settings is not None else Settings(base_url=base)
    public_base = config.public_base_url or f"{base}/public"
    urls = Urls(base, public_base)
    now = _created_ms()
    rows = _Rows(now, config.default_ttl_seconds)
    pdf = rows.pdf()
    analysis = rows.analysis()
    examples = [
        _register_key(base),
        _create_output_json(base, urls, analysis, now),
        _create_output_multipart(base, urls, pdf, now),
        _get_output(base, urls, pdf, now),
        _get_content(base, pdf),
        _get_content_public(base, urls, analysis),
        _get_output_expired(base, urls, pdf),
        _get_content_expired(base),
        _get_output_failed(base, urls, pdf, now),
        _get_content_failed(base),
        _delete_output(base, urls, pdf, now),
        _get_output_deleted(base, urls, pdf, now),
        _idempotency_replay(base, urls, analysis, now),
        _idempotency_conflict(base),
        _idempotency_in_flight(base),
        _list_outputs(base, urls, rows, now),
        _share_link(base, urls, pdf, now),
        _get_shared_content(base, pdf, now),
        _create_upload_link(base, config, now),
        _put_upload_content(base, urls, rows, now),
        _balance(base, config),
        _quota_exhausted(base),
        _storage_limit_reached(base),
        _invalid_mime_type(base),
        _missing_api_key(base),
        _invalid_api_key(base),
        _output_not_found(base),
        _rate_limited(base),
        _wrong_method(base),
    ]
    return {
        "note": (
            f"All examples use this server's base URL ({base}). {API_KEY} stands for your API key, "
            f"{OUTPUT_ID}, {OTHER_OUTPUT_ID} and {UPLOADED_ID} for output ids, {UPLOAD_ID} for an upload id, "
            f"{ACCOUNT_ID} for your account id, {REQUEST_ID} for "
            "the request id of the response (also in the X-Request-Id header) and values ending in ... for values "
            "the server generates. Timestamps are examples: expires_in_seconds counts from the moment of the "
            "request. Every response body is exactly what this server sends; a test replays these examples."
        ),
        "examples": examples,
        "supported_mime_types": list(SUPPORTED_MIME_TYPES),
    }


def _created_ms() -> int:
    instant = parse_iso(CREATED_AT)
    assert instant is not None
    return instant


class _Rows:
    """Stored rows of the example outputs, as :mod:`store.views` renders them."""

    def __init__(self, now: int, ttl_seconds: int) -> None:
        self.now = now
        self.expires = now + ttl_seconds * 1000

    def pdf(self) -> dict[str, Any]:
        return self._row(
            OUTPUT_ID,
            label="Q4 Report.pdf",
            mime_type="application/pdf",
            size=PDF_SIZE,
            sha256=PDF_SHA256,
            public=False,
            metadata={"agentId": "agent-123", "jobId": "job-456"},
        )

    def analysis(self) -> dict[str, Any]:
        return self._row(
            OTHER_OUTPUT_ID,
            label="analysis.json",
            mime_type="application/json",
            size=len(JSON_CONTENT),
            sha256=hashlib.sha256(JSON_CONTENT).hexdigest(),
            public=True,
            metadata={},
        )

    def csv(self, output_id: str, data: bytes) -> dict[str, Any]:
        return self._row(
            output_id,
            label="totals.csv",
            mime_type="text/csv",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            public=False,
            metadata={},
        )

    def _row(
        self,
        output_id: str,
        *,
        label: str,
        mime_type: str,
        size: int,
        sha256: str,
        public: bool,
        metadata: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "id": output_id,
            "account_id": ACCOUNT_ID,
            "status": "ready",
            "label": label,
            "mime_type": mime_type,
            "size_bytes": size,
            "sha256": sha256,
            "public": 1 if public else 0,
            "metadata": json.dumps(metadata, separators=(",", ":")),
            "blob_key": f"{ACCOUNT_ID}/{output_id}",
            "created_at": self.now,
            "expires_at": self.expires,
            "deleted_at": None,
        }


# --- request and response helpers ------------------------------------------------------------


def _example(
    example_id: str, title: str, request: dict[str, Any], response: dict[str, Any], note: str | None = None
) -> Example:
    item: Example = {"id": example_id, "title": title}
    if note is not None:
        item["note"] = note
    item["request"] = request
    item["response"] = response
    return item


def _request(
    method: str,
    url: str,
    *,
    key: bool = True,
    headers: dict[str, str] | None = None,
    body: Any = None,
    fields: dict[str, str] | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    all_headers: dict[str, str] = {}
    if key:
        all_headers["Authorization"] = f"Bearer {API_KEY}"
    all_headers.update(headers or {})
    request: dict[str, Any] = {"method": method, "path": url}
    if all_headers:
        request["headers"] = all_headers
    if body is not None:
        request["body"] = body
    if fields is not None:
        request["fields"] = fields
        request["file_field"] = "content"
    if note is not None:
        request["note"] = note
    return request


def _error(code: str, message: str, method: str, path: str, *, retry_after: int | None = None) -> dict[str, Any]:
    """The response to a request that failed with ``code`` (status, headers and body as the server sends)."""
    error = StoreError(code, message, retry_after=retry_after)
    response: dict[str, Any] = {"status": error.status}
    headers = retry_after_header(error)
    if headers:
        response["headers"] = headers
    response["body"] = error_envelope(error, request_id=REQUEST_ID, method=method, path=path)
    return response


def _gone_output(
    base: str, urls: Urls, row: dict[str, Any], at: int, example_id: str, title: str, note: str | None = None
) -> Example:
    """``GET /v1/outputs/{id}`` of an expired or deleted output at instant ``at``: 410 with the output."""
    output = render_output(row, at, urls)
    body = gone_body(OutputResult(output, output["status"]), REQUEST_ID)
    request = _request("GET", f"{base}/v1/outputs/{OUTPUT_ID}")
    return _example(example_id, title, request, {"status": 410, "body": body}, note=note)


def _content_error(base: str, example_id: str, title: str, error: StoreError, note: str) -> Example:
    """``GET /v1/outputs/{id}/content`` of an output whose bytes cannot be sent: the error envelope."""
    path = f"/v1/outputs/{OUTPUT_ID}/content"
    return _example(
        example_id, title, _request("GET", f"{base}{path}"), _error(error.code, error.message, "GET", path), note=note
    )


def _json_upload(content: bytes, **fields: Any) -> dict[str, Any]:
    return {**fields, "content": base64.b64encode(content).decode()}


def _json_upload_request(base: str, idempotency_key: str, body: dict[str, Any], note: str | None = None) -> Any:
    return _request(
        "POST",
        f"{base}/v1/outputs",
        headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
        body=body,
        note=note,
    )


ANALYSIS_BODY = _json_upload(JSON_CONTENT, mimeType="application/json", label="analysis.json", public=True)
ANALYSIS_KEY = "analysis-result-v1"
PDF_KEY = "report-2024-q4-v1"
PDF_FIELDS = {
    "mimeType": "application/pdf",
    "label": "Q4 Report.pdf",
    "public": "false",
    "metadata": '{"agentId":"agent-123","jobId":"job-456"}',
}


# --- the examples ----------------------------------------------------------------------------


def _register_key(base: str) -> Example:
    return _example(
        "register_key",
        "Register an API key",
        _request(
            "POST",
            f"{base}/v1/keys/register",
            key=False,
            headers={"Content-Type": "application/json"},
            body={"email": "agent@example.com"},
        ),
        {
            "status": 201,
            "body": {"apiKey": API_KEY, "accountId": ACCOUNT_ID, "agent_contract": register_contract()},
        },
        note="No auth; the body may also be {} or empty. The key is shown once: only its digest is stored.",
    )


def _create_output_json(base: str, urls: Urls, row: dict[str, Any], now: int) -> Example:
    return _example(
        "create_output_json",
        "Upload JSON content via application/json (public)",
        _json_upload_request(base, ANALYSIS_KEY, ANALYSIS_BODY),
        {"status": 201, "body": render_output(row, now, urls)},
        note="content is base64; the whole JSON body is limited to 1 MB. public: true adds a publicUrl.",
    )


def _create_output_multipart(base: str, urls: Urls, row: dict[str, Any], now: int) -> Example:
    return _example(
        "create_output_multipart",
        "Upload a PDF via multipart/form-data",
        _request(
            "POST",
            f"{base}/v1/outputs",
            headers={"Content-Type": "multipart/form-data", "Idempotency-Key": PDF_KEY},
            fields=PDF_FIELDS,
        ),
        {"status": 201, "body": render_output(row, now, urls)},
        note="Text fields and the file part named content may come in any order.",
    )


def _get_output(base: str, urls: Urls, row: dict[str, Any], now: int) -> Example:
    return _example(
        "get_output",
        "Get output metadata (ready, private)",
        _request("GET", f"{base}/v1/outputs/{OUTPUT_ID}"),
        {"status": 200, "body": render_output(row, now, urls)},
    )


def _content_headers(row: dict[str, Any]) -> dict[str, str]:
    return {
        "Content-Type": row["mime_type"],
        "Content-Length": str(row["size_bytes"]),
        "ETag": f'"{row["sha256"]}"',
        "Content-Disposition": f'attachment; filename="{row["label"]}"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
        "Accept-Ranges": "bytes",
    }


def _get_content(base: str, row: dict[str, Any]) -> Example:
    return _example(
        "get_content",
        "Stream raw file content (authenticated)",
        _request("GET", f"{base}/v1/outputs/{OUTPUT_ID}/content"),
        {"status": 200, "headers": _content_headers(row), "body": "<raw file bytes streamed from storage>"},
        note="Private retrieval. Range: bytes=… answers 206 and If-None-Match with the ETag answers 304.",
    )


def _get_content_public(base: str, urls: Urls, row: dict[str, Any]) -> Example:
    return _example(
        "get_content_public",
        "Content of a public output redirects to its publicUrl",
        _request("GET", f"{base}/v1/outputs/{OTHER_OUTPUT_ID}/content"),
        {"status": 302, "headers": {"Location": f"{urls.public_base_url}/{OTHER_OUTPUT_ID}"}},
        note="The publicUrl serves the bytes to anyone, with Content-Security-Policy: sandbox.",
    )


def _get_output_expired(base: str, urls: Urls, row: dict[str, Any]) -> Example:
    return _gone_output(
        base,
        urls,
        row,
        row["expires_at"] + 1000,
        "get_output_expired",
        "Get metadata for an expired output (HTTP 410)",
        note="Expired and deleted outputs return HTTP 410 with the full output object, not the bare error "
        "envelope, plus error and request_id. contentUrl and publicUrl are null. Ids never return 404 once "
        "they existed.",
    )


def _get_content_expired(base: str) -> Example:
    return _content_error(
        base,
        "get_content_expired",
        "Stream content — output expired (HTTP 410)",
        output_expired(),
        note="The content endpoint answers with the error envelope (not bytes) once the output has expired.",
    )


def _failed_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row an upload leaves when the blob store took its bytes but failed to keep them."""
    return {**row, "status": "failed", "size_bytes": 0, "sha256": None, "blob_key": None}


def _get_output_failed(base: str, urls: Urls, row: dict[str, Any], now: int) -> Example:
    return _example(
        "get_output_failed",
        "Get output metadata (failed upload)",
        _request("GET", f"{base}/v1/outputs/{OUTPUT_ID}"),
        {"status": 200, "body": render_output(_failed_row(row), now, urls)},
        note="An upload whose bytes the blob store failed to keep answered 422 upload_failed naming this output "
        '(outputId) and left it with status "failed" (also listed with ?status=failed). contentUrl and '
        "publicUrl are null because the content was never stored. Retry the identical upload request with "
        "the same Idempotency-Key: it is a fresh attempt and creates a new output.",
    )


def _get_content_failed(base: str) -> Example:
    return _content_error(
        base,
        "get_content_failed",
        "Stream content — upload failed (HTTP 422)",
        upload_not_completed(),
        note="The content endpoint answers 422 with the error envelope when the upload of this output did not "
        "complete. Retry the original POST /v1/outputs with the same Idempotency-Key.",
    )


def _deleted_row(row: dict[str, Any], now: int) -> dict[str, Any]:
    return {**row, "status": "deleted", "deleted_at": now + 2 * 3_600_000, "blob_key": None}


def _delete_output(base: str, urls: Urls, row: dict[str, Any], now: int) -> Example:
    deleted = _deleted_row(row, now)
    return _example(
        "delete_output",
        "Delete an output",
        _request("DELETE", f"{base}/v1/outputs/{OUTPUT_ID}"),
        {"status": 200, "body": render_output(deleted, deleted["deleted_at"], urls)},
        note="Soft delete: the bytes are removed and the storage given back. Repeating the DELETE returns the "
        "same 200; deleting an expired output is 410 output_expired.",
    )


def _get_output_deleted(base: str, urls: Urls, row: dict[str, Any], now: int) -> Example:
    deleted = _deleted_row(row, now)
    return _gone_output(
        base, urls, deleted, deleted["deleted_at"], "get_output_deleted", "Get metadata for a deleted output (HTTP 410)"
    )


def _idempotency_replay(base: str, urls: Urls, row: dict[str, Any], now: int) -> Example:
    return _example(
        "idempotency_replay",
        "Replay a successful upload (same Idempotency-Key, same payload)",
        _json_upload_request(
            base, ANALYSIS_KEY, ANALYSIS_BODY, note="Same Idempotency-Key and payload as create_output_json."
        ),
        {
            "status": 201,
            "headers": {"Idempotent-Replayed": "true"},
            "body": render_output(row, now, urls),
            "note": "The original status with the output's current representation; nothing is charged or stored "
            "again. The same artifact sent as multipart replays too.",
        },
    )


def _idempotency_conflict(base: str) -> Example:
    body = _json_upload(b'{"result": "changed"}', mimeType="application/json", label="analysis.json", public=True)
    return _example(
        "idempotency_conflict",
        "Same Idempotency-Key with a different payload (HTTP 409)",
        _json_upload_request(base, ANALYSIS_KEY, body, note="Same key as create_output_json, different content."),
        _error(
            "idempotency_conflict",
            "This Idempotency-Key was already used with a different payload. Generate a new key and retry.",
            "POST",
            "/v1/outputs",
        ),
    )


def _idempotency_in_flight(base: str) -> Example:
    return _example(
        "idempotency_in_flight",
        "Upload rejected — same key already being processed",
        _request(
            "POST",
            f"{base}/v1/outputs",
            headers={"Content-Type": "multipart/form-data", "Idempotency-Key": PDF_KEY},
            fields=PDF_FIELDS,
            note="A concurrent request with this same Idempotency-Key is already being processed.",
        ),
        _error(
            "idempotency_in_flight",
            "A request with this Idempotency-Key is already being processed. "
            "Retry with the same key and payload after 5 seconds.",
            "POST",
            "/v1/outputs",
        ),
        note="Two requests arrive concurrently with the same Idempotency-Key. The first claims the slot and "
        "proceeds; the second receives HTTP 503 with Retry-After: 5. Retry the identical request after the wait.",
    )


def _list_outputs(base: str, urls: Urls, rows: _Rows, now: int) -> Example:
    # The JSON upload came after the PDF, so it is first (newest); the PDF waits on the next page.
    page = [rows.analysis()]
    cursor = base64.urlsafe_b64encode(page[-1]["id"].encode()).decode().rstrip("=")
    return _example(
        "list_outputs",
        "List outputs, newest first, one page at a time",
        _request("GET", f"{base}/v1/outputs?limit=1"),
        {
            "status": 200,
            "body": {
                "outputs": [output_fields(row, "ready", urls) for row in page],
                "pageInfo": {"nextCursor": cursor, "hasMore": True},
                "agent_contract": list_contract(cursor, 1),
            },
        },
        note="Filters: limit (1..100, default 20), cursor (pageInfo.nextCursor), status, mimeType. Items carry no "
        "agent_contract; the list_outputs action fetches the next page.",
    )


def _share_link(base: str, urls: Urls, row: dict[str, Any], now: int) -> Example:
    share_url = f"{urls.base_url}/s/{_share_token(now)}"
    return _example(
        "share_link",
        "Create a signed, expiring share link for a private output",
        _request(
            "POST",
            f"{base}/v1/outputs/{OUTPUT_ID}/share",
            headers={"Content-Type": "application/json"},
            body={"expiresInSeconds": 3600},
        ),
        {
            "status": 200,
            "body": {
                "shareUrl": share_url,
                "shareExpiresAt": iso_ms(now + 3_600_000),
                "agent_contract": share_contract(share_url, OUTPUT_ID, 3600),
            },
        },
        note="The link serves the bytes without a key until shareExpiresAt (never after the output expires) and "
        "dies when the output is deleted. For a public output the shareUrl is its publicUrl.",
    )


def _share_token(now: int) -> str:
    """Share tokens are 42 characters signed by the server (id, expiry, signature); a placeholder here."""
    return "AZ3k9Q..."


UPLOAD_ID = "upl_01J..."
UPLOAD_TOKEN = "AZ7mR2..."
UPLOADED_ID = "out_01L..."
CSV_CONTENT = "region,total\nnorth,42\n"


def _create_upload_link(base: str, settings: Settings, now: int) -> Example:
    url = f"{base}/u/{UPLOAD_TOKEN}"
    ttl = settings.upload_link_ttl_seconds
    size = len(CSV_CONTENT.encode())
    return _example(
        "create_upload_link",
        "Get an upload link for a file, so its bytes never travel through a JSON body or a model",
        _request(
            "POST",
            f"{base}/v1/uploads",
            headers={"Idempotency-Key": "totals-csv-v1", "Content-Type": "application/json"},
            body={"mimeType": "text/csv", "label": "totals.csv", "sizeBytes": size},
        ),
        {
            "status": 201,
            "body": {
                "uploadId": UPLOAD_ID,
                "uploadUrl": url,
                "method": "PUT",
                "uploadExpiresAt": iso_ms(now + ttl * 1000),
                "maxSizeBytes": size,
                "status": "pending",
                "curl": f"curl -sS -T totals.csv {url}",
                "agent_contract": upload_link_contract(url, UPLOAD_ID, ttl),
            },
        },
        note="Quota is checked now and charged when the bytes land. The link takes one upload, needs no key, "
        "and expires at uploadExpiresAt (never after the output's expiresAt).",
    )


def _put_upload_content(base: str, urls: Urls, rows: _Rows, now: int) -> Example:
    data = CSV_CONTENT.encode()
    row = rows.csv(UPLOADED_ID, data)
    return _example(
        "put_upload_content",
        "PUT the bytes to the upload link (no key; curl -T FILE URL does this)",
        {
            "method": "PUT",
            "path": f"{base}/u/{UPLOAD_TOKEN}",
            "headers": {"Content-Type": "text/csv"},
            "content": CSV_CONTENT,
        },
        {"status": 201, "body": render_output(row, now, urls)},
        note="Streamed; the same rules as POST /v1/outputs. The same bytes again replay the output "
        "(Idempotent-Replayed: true); other bytes answer 409.",
    )


def _get_shared_content(base: str, row: dict[str, Any], now: int) -> Example:
    headers = {**_content_headers(row), "Content-Security-Policy": "sandbox"}
    return _example(
        "get_shared_content",
        "Download through a share link (no key)",
        _request("GET", f"{base}/s/{_share_token(now)}", key=False),
        {"status": 200, "headers": headers, "body": "<raw file bytes streamed from storage>"},
    )


def _balance(base: str, settings: Settings) -> Example:
    used = 2 if settings.free_uploads >= 2 else settings.free_uploads
    free = settings.free_uploads - used
    return _example(
        "check_balance",
        "Read the account's quota",
        _request("GET", f"{base}/v1/credits/balance"),
        {
            "status": 200,
            "body": {
                "accountId": ACCOUNT_ID,
                "planTier": "free",
                "freeRemaining": free,
                "creditsRemaining": 0,
                "storageUsedBytes": PDF_SIZE + len(JSON_CONTENT),
                "storageLimitBytes": settings.storage_limit_bytes,
                "agent_contract": balance_contract(free, 0),
            },
        },
        note="The same numbers travel in the X-OutputLayer-* headers of every authenticated response.",
    )


def _quota_exhausted(base: str) -> Example:
    return _example(
        "quota_exhausted",
        "Upload rejected — no quota remaining (HTTP 402)",
        _json_upload_request(base, "report-2024-q4-v2", ANALYSIS_BODY),
        _error(
            "quota_exhausted",
            "No free quota or credits remaining. Purchase credits to continue.",
            "POST",
            "/v1/outputs",
        ),
        note="Refused before the body is read when possible; nothing is charged.",
    )


def _storage_limit_reached(base: str) -> Example:
    return _example(
        "storage_limit_reached",
        "Upload rejected — storage limit reached (HTTP 402)",
        _json_upload_request(base, "big-dataset-v1", _json_upload(b"...", mimeType="text/csv", label="data.csv")),
        _error(
            "storage_limit_reached",
            "Storing 3 more bytes would exceed the storage limit of 262144000 bytes (262144000 used). "
            "Delete outputs or buy a pack.",
            "POST",
            "/v1/outputs",
        ),
        note="The delete_output action is a template: put the id of an output you no longer need in the path.",
    )


def _invalid_mime_type(base: str) -> Example:
    body = _json_upload(b"\x00\x01", mimeType="video/mp4")
    return _example(
        "invalid_mime_type",
        "Upload rejected — unsupported MIME type (HTTP 400)",
        _json_upload_request(base, "clip-v1", body),
        _error(
            "invalid_mime_type",
            "MIME type 'video/mp4' is not supported; see supported_mime_types in /v1/capabilities.",
            "POST",
            "/v1/outputs",
        ),
    )


def _missing_api_key(base: str) -> Example:
    return _example(
        "missing_api_key",
        "Request without an API key (HTTP 401)",
        _request("GET", f"{base}/v1/outputs", key=False),
        _error("missing_api_key", "Send your API key as Authorization: Bearer <key>.", "GET", "/v1/outputs"),
        note="Only Authorization: Bearer is read: an x-api-key header is ignored, and a key in the query string is "
        "refused with 400 invalid_request.",
    )


def _invalid_api_key(base: str) -> Example:
    request = _request("GET", f"{base}/v1/outputs", key=False, headers={"Authorization": f"Bearer {INVALID_KEY}"})
    return _example(
        "invalid_api_key",
        "Request with an unknown API key (HTTP 401)",
        request,
        _error("invalid_api_key", "The API key is not valid.", "GET", "/v1/outputs"),
    )


def _output_not_found(base: str) -> Example:
    missing = "out_01JZZZZZZZZZZZZZZZZZZZZZZZ"
    return _example(
        "output_not_found",
        "Unknown output, or another account's (HTTP 404)",
        _request("GET", f"{base}/v1/outputs/{missing}"),
        _error("output_not_found", "No output with this id exists for this API key.", "GET", f"/v1/outputs/{missing}"),
    )


def _rate_limited(base: str) -> Example:
    path = f"/v1/outputs/{OUTPUT_ID}"
    return _example(
        "rate_limited",
        "Too many requests (HTTP 429)",
        _request("GET", f"{base}{path}"),
        _error(
            "rate_limited", "Rate limit of 2000 requests reached. Retry after 42 seconds.", "GET", path, retry_after=42
        ),
        note="retry_after_wait points at the request that was refused, with the real wait.",
    )


def _wrong_method(base: str) -> Example:
    path = "/v1/keys/register"
    return _example(
        "wrong_method",
        "Known path, wrong method (HTTP 405)",
        _request("GET", f"{base}{path}", key=False),
        _error("wrong_method", "GET is not allowed on /v1/keys/register; use POST.", "GET", path),
        note="The contract names the right method for the path.",
    )
