"""Uploads and downloads stream: a 25 MB artifact never sits whole in the server's memory.

Each test runs a real ``outputlayer serve`` on the test's backend pair (SQLite + files, PostgreSQL + S3)
and measures its resident memory around each transfer, after a warm-up transfer past one 5 MiB S3 part
(so first-use imports, pools and buffers are in place before the measurement).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx2

from store import Settings
from tests.serving import running_server

SIZE = 25 * 1024 * 1024
WARM_SIZE = 6 * 1024 * 1024  # past one S3 part: the warm-up takes the streamed (multipart) path too
CHUNK = 256 * 1024
GROWTH_BOUND = 5 * 1024 * 1024


def _served(settings: Settings) -> dict[str, str]:
    """The environment of a server on the test's backend pair."""
    return {
        "OUTPUTLAYER_RATE_LIMITS": "off",
        "OUTPUTLAYER_DATABASE_URL": settings.database_url,
        "OUTPUTLAYER_BLOB_URL": settings.blob_url,
    }


def _chunks(total: int) -> Iterator[bytes]:
    block = bytes(range(256)) * (CHUNK // 256)
    sent = 0
    while sent < total:
        piece = block[: min(CHUNK, total - sent)]
        sent += len(piece)
        yield piece


def _multipart(boundary: str, total: int) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="big.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from _chunks(total)
    yield (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="mimeType"\r\n\r\napplication/octet-stream'
        f"\r\n--{boundary}--\r\n"
    ).encode()


def _download(http: httpx2.Client, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """Bytes received and their SHA-256, read as a stream."""
    digest = hashlib.sha256()
    received = 0
    with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        for piece in response.iter_bytes():
            digest.update(piece)
            received += len(piece)
    return received, digest.hexdigest()


def test_a_25_mb_multipart_upload_and_its_download_grow_server_memory_by_less_than_5_mb(
    settings: Settings,
) -> None:
    """Fields after the file, chunked transfer: RSS grows by less than 5 MB for the upload and for the
    download, and the bytes round-trip."""
    boundary = "olboundary1234"
    with (
        running_server(settings.data_dir, _served(settings)) as server,
        httpx2.Client(base_url=server.base_url, timeout=60) as http,
    ):
        key = http.post("/v1/keys/register", json={}).json()["apiKey"]
        auth = {"Authorization": f"Bearer {key}"}
        form = {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}

        warm = http.post(
            "/v1/outputs", headers={**form, "Idempotency-Key": "warm"}, content=_multipart(boundary, WARM_SIZE)
        )
        assert warm.status_code == 201, warm.text
        _download(http, f"/v1/outputs/{warm.json()['outputId']}/content", auth)

        before = server.rss_bytes()
        response = http.post(
            "/v1/outputs", headers={**form, "Idempotency-Key": "big"}, content=_multipart(boundary, SIZE)
        )
        assert response.status_code == 201, response.text
        body = response.json()
        after_upload = server.rss_bytes()
        received, digest = _download(http, f"/v1/outputs/{body['outputId']}/content", auth)
        after_download = server.rss_bytes()

    expected = hashlib.sha256(b"".join(_chunks(SIZE))).hexdigest()
    assert body["sizeBytes"] == received == SIZE
    assert digest == expected == body["sha256"]
    assert after_upload - before < GROWTH_BOUND, (before, after_upload)
    assert after_download - after_upload < GROWTH_BOUND, (after_upload, after_download)


def test_a_25_mb_upload_and_download_through_links_grow_server_memory_by_less_than_5_mb(
    settings: Settings,
) -> None:
    """SPEC section 14: a PUT to an upload link and a GET of a share link stream (RSS is measured around each)."""
    with (
        running_server(settings.data_dir, _served(settings)) as server,
        httpx2.Client(base_url=server.base_url, timeout=60) as http,
    ):
        key = http.post("/v1/keys/register", json={}).json()["apiKey"]
        auth = {"Authorization": f"Bearer {key}"}

        def link(idempotency_key: str) -> str:
            created = http.post(
                "/v1/uploads",
                json={"mimeType": "application/octet-stream", "label": "big.bin"},
                headers={**auth, "Idempotency-Key": idempotency_key},
            )
            assert created.status_code == 201, created.text
            url: str = created.json()["uploadUrl"]
            return url

        def download(output_id: str) -> tuple[int, str]:
            shared: str = http.post(f"/v1/outputs/{output_id}/share", json={}, headers=auth).json()["shareUrl"]
            return _download(http, shared)  # no key: the link is the permission

        warm = http.put(link("warm"), content=_chunks(WARM_SIZE))
        assert warm.status_code == 201, warm.text
        download(warm.json()["outputId"])

        before = server.rss_bytes()
        stored = http.put(link("big"), content=_chunks(SIZE))  # chunked: no Content-Length
        assert stored.status_code == 201, stored.text
        after_upload = server.rss_bytes()
        received, digest = download(stored.json()["outputId"])
        after_download = server.rss_bytes()

    expected = hashlib.sha256(b"".join(_chunks(SIZE))).hexdigest()
    assert (received, digest) == (SIZE, expected) and stored.json()["sha256"] == expected
    assert after_upload - before < GROWTH_BOUND, (before, after_upload)
    assert after_download - after_upload < GROWTH_BOUND, (after_upload, after_download)
