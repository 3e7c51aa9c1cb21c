"""REST content: downloads, their headers, Range and conditional GET, redirects and public URLs (SPEC section 4)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import httpx2
import pytest

from store import ArtifactService, ManualClock, StoreError
from store.errors import service_unavailable
from tests.conftest import REQUEST_ID, assert_contract, assert_error
from tests.factories import uploaded

DIGITS = b"0123456789"


def content_path(output: dict[str, Any]) -> str:
    return f"/v1/outputs/{output['outputId']}/content"


def public_path(output: dict[str, Any]) -> str:
    return f"/public/{output['outputId']}"


def filename_star(disposition: str) -> str | None:
    """The decoded RFC 6266 ``filename*`` of a Content-Disposition value, if any."""
    match = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition, re.IGNORECASE)
    return unquote(match.group(1)) if match else None


# --- private content -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_private_content_is_served_with_the_spec_headers(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """200 with the bytes, exact Content-Type, Content-Length, ETag, attachment, private no-store, nosniff."""
    data = b'{"answer": 42}'
    output = await uploaded(client, auth, data, mime="application/json", label="answer.json")
    response = await client.get(content_path(output), headers=auth)
    assert response.status_code == 200
    assert response.content == data
    headers = response.headers
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(data))
    assert headers["etag"] == f'"{output["sha256"]}"'
    assert headers["content-disposition"] == 'attachment; filename="answer.json"'
    assert headers["cache-control"] == "private, no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in headers
    assert REQUEST_ID.match(headers["x-request-id"])
    assert headers["x-outputlayer-free-remaining"] == "4"
    assert headers["ratelimit-limit"] == "2000"


@pytest.mark.anyio
async def test_content_without_a_label_is_a_plain_attachment(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """No label: Content-Disposition is exactly ``attachment``."""
    output = await uploaded(client, auth, DIGITS)
    response = await client.get(content_path(output), headers=auth)
    assert response.headers["content-disposition"] == "attachment"


@pytest.mark.parametrize(
    "label",
    [
        pytest.param("résumé.txt", id="latin-accents"),
        pytest.param("報告 2026.txt", id="cjk-and-space"),
        pytest.param("chart 📈.png", id="emoji"),
    ],
)
@pytest.mark.anyio
async def test_non_ascii_label_gets_an_rfc_6266_filename_star(
    client: httpx2.AsyncClient, auth: dict[str, str], label: str
) -> None:
    """A non-ASCII label is sent as ``filename*=UTF-8''…`` alongside an ASCII fallback."""
    output = await uploaded(client, auth, DIGITS, label=label)
    disposition = (await client.get(content_path(output), headers=auth)).headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert disposition.isascii()
    assert filename_star(disposition) == label


@pytest.mark.parametrize(
    ("mime", "data"),
    [
        pytest.param("text/html", b"<script>alert(1)</script>", id="html"),
        pytest.param("image/png", b"\x89PNG\r\n\x1a\n", id="png"),
        pytest.param("application/pdf", b"%PDF-1.7", id="pdf"),
        pytest.param("text/csv", b"a,b\n", id="csv"),
    ],
)
@pytest.mark.anyio
async def test_content_type_is_exactly_the_stored_mime_type(
    client: httpx2.AsyncClient, auth: dict[str, str], mime: str, data: bytes
) -> None:
    """Content-Type carries the stored MIME type with nothing appended."""
    output = await uploaded(client, auth, data, mime=mime)
    response = await client.get(content_path(output), headers=auth)
    assert response.headers["content-type"] == mime
    assert response.content == data


# --- Range and conditional GET ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("range_header", "expected", "content_range"),
    [
        pytest.param("bytes=0-0", b"0", "bytes 0-0/10", id="first-byte"),
        pytest.param("bytes=-3", b"789", "bytes 7-9/10", id="suffix"),
        pytest.param("bytes=5-", b"56789", "bytes 5-9/10", id="open-ended"),
        pytest.param("bytes=2-4", b"234", "bytes 2-4/10", id="middle"),
        pytest.param("bytes=8-100", b"89", "bytes 8-9/10", id="end-clamped"),
        pytest.param("bytes=-100", DIGITS, "bytes 0-9/10", id="suffix-longer-than-content"),
    ],
)
@pytest.mark.anyio
async def test_range_request_answers_206_with_the_slice(
    client: httpx2.AsyncClient, auth: dict[str, str], range_header: str, expected: bytes, content_range: str
) -> None:
    """A satisfiable single range answers 206 with Content-Range and the exact bytes."""
    output = await uploaded(client, auth, DIGITS)
    response = await client.get(content_path(output), headers={**auth, "Range": range_header})
    assert response.status_code == 206
    assert response.content == expected
    assert response.headers["content-range"] == content_range
    assert response.headers["content-length"] == str(len(expected))
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["etag"] == f'"{output["sha256"]}"'


@pytest.mark.parametrize(
    "range_header",
    [
        pytest.param("bytes=10-", id="starts-at-size"),
        pytest.param("bytes=100-200", id="starts-past-end"),
        pytest.param("bytes=-0", id="empty-suffix"),
    ],
)
@pytest.mark.anyio
async def test_unsatisfiable_range_answers_416_with_the_size(
    client: httpx2.AsyncClient, auth: dict[str, str], range_header: str
) -> None:
    """A range outside the content answers 416 with ``Content-Range: bytes */size``."""
    output = await uploaded(client, auth, DIGITS)
    response = await client.get(content_path(output), headers={**auth, "Range": range_header})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */10"
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    assert_contract(body)


@pytest.mark.parametrize(
    "range_header",
    [pytest.param("bytes=0-1,4-5", id="multi-range"), pytest.param("items=0-1", id="other-unit")],
)
@pytest.mark.anyio
async def test_unsupported_range_forms_get_the_whole_body(
    client: httpx2.AsyncClient, auth: dict[str, str], range_header: str
) -> None:
    """Range forms the server does not serve are ignored: 200 with every byte."""
    output = await uploaded(client, auth, DIGITS)
    response = await client.get(content_path(output), headers={**auth, "Range": range_header})
    assert response.status_code == 200
    assert response.content == DIGITS


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        pytest.param("matching", 304, id="same-etag"),
        pytest.param("weak", 304, id="weak-same-etag"),
        pytest.param("*", 304, id="star"),
        pytest.param('"0000"', 200, id="other-etag"),
    ],
)
@pytest.mark.anyio
async def test_if_none_match_answers_304_for_the_current_etag(
    client: httpx2.AsyncClient, auth: dict[str, str], if_none_match: str, status: int
) -> None:
    """If-None-Match with the content's ETag answers 304 with no body; another tag gets the bytes."""
    output = await uploaded(client, auth, DIGITS)
    etag = f'"{output["sha256"]}"'
    header = {"matching": etag, "weak": f"W/{etag}"}.get(if_none_match, if_none_match)
    response = await client.get(content_path(output), headers={**auth, "If-None-Match": header})
    assert response.status_code == status
    assert response.headers["etag"] == etag
    assert REQUEST_ID.match(response.headers["x-request-id"])
    if status == 304:
        assert response.content == b""
    else:
        assert response.content == DIGITS


# --- public outputs --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_content_of_a_public_output_redirects_to_its_public_url(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """The authenticated content route answers 302 with Location: publicUrl."""
    output = await uploaded(client, auth, DIGITS, public=True)
    response = await client.get(content_path(output), headers=auth)
    assert response.status_code == 302
    assert response.headers["location"] == output["publicUrl"]
    assert REQUEST_ID.match(response.headers["x-request-id"])
    assert "x-outputlayer-free-remaining" in response.headers
    followed = await client.get(response.headers["location"])
    assert followed.status_code == 200
    assert followed.content == DIGITS


@pytest.mark.anyio
async def test_public_route_serves_bytes_without_a_key_in_a_sandbox(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """/public/{id} serves a public output to anyone, with the content headers plus CSP sandbox."""
    html = b"<html><script>document.cookie</script></html>"
    output = await uploaded(client, auth, html, mime="text/html", public=True, label="page.html")
    response = await client.get(public_path(output))
    assert response.status_code == 200
    assert response.content == html
    headers = response.headers
    assert headers["content-type"] == "text/html"
    assert headers["content-security-policy"] == "sandbox"
    assert headers["content-disposition"] == 'attachment; filename="page.html"'
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["etag"] == f'"{output["sha256"]}"'
    assert headers["content-length"] == str(len(html))
    assert REQUEST_ID.match(headers["x-request-id"])
    assert "x-outputlayer-free-remaining" not in headers


@pytest.mark.anyio
async def test_public_route_sends_the_content_cache_control(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """Public responses carry the content responses' Cache-Control: private, no-store."""
    output = await uploaded(client, auth, DIGITS, public=True)
    response = await client.get(public_path(output))
    assert response.headers["cache-control"] == "private, no-store"


@pytest.mark.anyio
async def test_unlabelled_public_html_is_still_an_attachment(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """text/html without a label is served as a plain attachment, never inline."""
    output = await uploaded(client, auth, b"<b>x</b>", mime="text/html", public=True)
    response = await client.get(public_path(output))
    assert response.headers["content-disposition"] == "attachment"


@pytest.mark.anyio
async def test_public_route_supports_range_and_if_none_match(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """The public route honours Range and If-None-Match like the private one."""
    output = await uploaded(client, auth, DIGITS, public=True)
    ranged = await client.get(public_path(output), headers={"Range": "bytes=-2"})
    assert ranged.status_code == 206
    assert ranged.content == b"89"
    cached = await client.get(public_path(output), headers={"If-None-Match": f'"{output["sha256"]}"'})
    assert cached.status_code == 304


@pytest.mark.parametrize("public", [pytest.param(False, id="private-output"), pytest.param(None, id="unknown-id")])
@pytest.mark.anyio
async def test_public_route_is_404_for_private_and_unknown_outputs(
    client: httpx2.AsyncClient, auth: dict[str, str], public: bool | None
) -> None:
    """A private output is not reachable at /public/{id}: 404 output_not_found, like an unknown id."""
    unknown = "/public/out_01HZZZZZZZZZZZZZZZZZZZZZZZ"
    path = public_path(await uploaded(client, auth, DIGITS)) if public is False else unknown
    response = await client.get(path)
    assert_error(response, 404, "output_not_found", retryable=False, action="create_new_output")


@pytest.mark.anyio
async def test_public_route_of_a_deleted_output_is_410(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """Once deleted, a public URL answers 410 output_deleted."""
    output = await uploaded(client, auth, DIGITS, public=True)
    await client.delete(f"/v1/outputs/{output['outputId']}", headers=auth)
    assert_error(
        await client.get(public_path(output)), 410, "output_deleted", retryable=False, action="create_new_output"
    )


@pytest.mark.anyio
async def test_public_route_of_an_expired_output_is_410(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """Past its expiry (before any sweep) a public URL answers 410 output_expired."""
    output = await uploaded(client, auth, DIGITS, public=True)
    clock.advance(604_800)
    assert_error(
        await client.get(public_path(output)), 410, "output_expired", retryable=False, action="create_new_output"
    )


# --- content of outputs that are not ready ---------------------------------------------------


@pytest.mark.anyio
async def test_content_of_an_expired_output_is_a_410_envelope(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    """Content past expiry answers the 410 output_expired error envelope, not the output object."""
    output = await uploaded(client, auth, DIGITS)
    clock.advance(604_801)
    response = await client.get(content_path(output), headers=auth)
    body = assert_error(response, 410, "output_expired", retryable=False, action="create_new_output")
    assert set(body) == {"error", "message", "request_id", "agent_contract"}
    assert "x-outputlayer-free-remaining" in response.headers


@pytest.mark.anyio
async def test_content_of_a_deleted_output_is_a_410_envelope(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """Content of a deleted output answers the 410 output_deleted error envelope."""
    output = await uploaded(client, auth, DIGITS)
    await client.delete(f"/v1/outputs/{output['outputId']}", headers=auth)
    response = await client.get(content_path(output), headers=auth)
    body = assert_error(response, 410, "output_deleted", retryable=False, action="create_new_output")
    assert set(body) == {"error", "message", "request_id", "agent_contract"}


@pytest.mark.anyio
async def test_content_of_an_unknown_output_is_404(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """Content of an id that never existed answers 404 output_not_found."""
    response = await client.get("/v1/outputs/out_missing/content", headers=auth)
    assert_error(response, 404, "output_not_found", retryable=False, action="create_new_output")


@pytest.mark.anyio
async def test_content_without_a_key_is_401(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    """The private content route needs the Bearer key."""
    output = await uploaded(client, auth, DIGITS)
    assert_error(await client.get(content_path(output)), 401, "missing_api_key", retryable=False, action="register_key")


@pytest.mark.anyio
async def test_blob_store_outage_on_download_is_a_retryable_503_envelope(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the blob store fails to open the bytes, the client gets a retryable 503 envelope, not a broken 200."""
    output = await uploaded(client, auth, DIGITS)

    async def unavailable(key: str, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        raise service_unavailable("blob store")
        yield b""  # pragma: no cover - makes this an async generator like the real read

    async def unavailable_small(key: str, start: int, length: int) -> bytes:
        raise service_unavailable("blob store")

    monkeypatch.setattr(service.blobs, "read", unavailable)
    monkeypatch.setattr(service.blobs, "read_small", unavailable_small)
    try:
        response = await client.get(content_path(output), headers=auth)
    except StoreError as exc:  # the error escaped after a 200 had been started
        pytest.fail(f"download raised {exc.code} after the response had started instead of answering 503")
    assert response.status_code == 503
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    assert assert_contract(body)["retryable"] is True
    assert body["agent_contract"]["next_actions"][0]["action"] == "retry_after_wait"
    assert "retry-after" in response.headers
