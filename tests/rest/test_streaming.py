"""Uploads and downloads stream: a 25 MB artifact never sits whole in the server's memory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx2

from tests.serving import running_server

SIZE = 25 * 1024 * 1024
CHUNK = 256 * 1024


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


def test_a_25_mb_upload_and_download_do_not_grow_server_memory_by_the_artifact_size(tmp_path: Path) -> None:
    """Fields after the file, chunked transfer: RSS grows far less than 25 MB and the bytes round-trip."""
    env = {"OUTPUTLAYER_RATE_LIMITS": "off"}
    with running_server(tmp_path / "data", env) as server, httpx2.Client(base_url=server.base_url, timeout=60) as http:
        key = http.post("/v1/keys/register", json={}).json()["apiKey"]
        auth = {"Authorization": f"Bearer {key}"}
        # Warm up code paths so the measurement sees the upload, not first-use imports.
        small = http.post(
            "/v1/outputs",
            headers={**auth, "Idempotency-Key": "warm"},
            files={"content": ("a.txt", b"warm")},
            data={"mimeType": "text/plain"},
        )
        assert small.status_code == 201
        before = server.rss_bytes()
        boundary = "olboundary1234"
        response = http.post(
            "/v1/outputs",
            headers={**auth, "Idempotency-Key": "big", "Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=_multipart(boundary, SIZE),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["sizeBytes"] == SIZE
        after_upload = server.rss_bytes()

        digest = hashlib.sha256()
        received = 0
        with http.stream("GET", f"/v1/outputs/{body['outputId']}/content", headers=auth) as download:
            assert download.status_code == 200
            for piece in download.iter_bytes():
                digest.update(piece)
                received += len(piece)
        after_download = server.rss_bytes()

    expected = hashlib.sha256(b"".join(_chunks(SIZE))).hexdigest()
    assert received == SIZE
    assert digest.hexdigest() == expected == body["sha256"]
    assert after_upload - before < 10 * 1024 * 1024, (before, after_upload)
    assert after_download - before < 10 * 1024 * 1024, (before, after_download)


def test_a_25_mb_upload_and_download_through_links_grow_server_memory_by_less_than_5_mb(tmp_path: Path) -> None:
    """SPEC section 14: a PUT to an upload link and a GET of a share link stream (RSS is measured around each)."""
    env = {"OUTPUTLAYER_RATE_LIMITS": "off"}
    with running_server(tmp_path / "data", env) as server, httpx2.Client(base_url=server.base_url, timeout=60) as http:
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
            shared = http.post(f"/v1/outputs/{output_id}/share", json={}, headers=auth).json()["shareUrl"]
            digest = hashlib.sha256()
            with http.stream("GET", shared) as response:  # no key: the link is the permission
                assert response.status_code == 200
                for piece in response.iter_bytes():
                    digest.update(piece)
            return response.num_bytes_downloaded, digest.hexdigest()

        # Warm up both paths so the measurement sees the transfer, not first-use imports and buffers.
        warm = http.put(link("warm"), content=_chunks(3 * CHUNK)).json()
        download(warm["outputId"])

        before = server.rss_bytes()
        stored = http.put(link("big"), content=_chunks(SIZE))  # chunked: no Content-Length
        assert stored.status_code == 201, stored.text
        after_upload = server.rss_bytes()
        received, digest = download(stored.json()["outputId"])
        after_download = server.rss_bytes()

    expected = hashlib.sha256(b"".join(_chunks(SIZE))).hexdigest()
    assert (received, digest) == (SIZE, expected) and stored.json()["sha256"] == expected
    assert after_upload - before < 5 * 1024 * 1024, (before, after_upload)
    assert after_download - after_upload < 5 * 1024 * 1024, (after_upload, after_download)
