"""The ceiling: a bare Starlette app that answers each benchmark request with a canned response.

It replays, byte for byte, the responses the OutputLayer server gave to the same requests during
the harness's preflight (status, content type, body), so the only work left is uvicorn and
Starlette receiving the request (reading the upload body too) and sending those bytes. OutputLayer's
throughput divided by this one is the share of the framework's ceiling that the store's own work
leaves. Started by bench/run.py as

    python -m uvicorn bench.ceiling:app_factory --factory --host 127.0.0.1 --port PORT

with ``BENCH_CEILING_RESPONSES`` naming a JSON file of ``{"METHOD /path": {"status", "type",
"body_base64"}}``; a request for a path that is not in it (whatever the id) is matched by its shape.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CannedResponse = tuple[int, str, bytes]


def load_responses(path: Path) -> dict[str, CannedResponse]:
    raw = json.loads(path.read_text())
    return {
        key: (int(value["status"]), str(value["type"]), base64.b64decode(value["body_base64"]))
        for key, value in raw.items()
    }


def app_factory() -> Starlette:
    responses = load_responses(Path(os.environ["BENCH_CEILING_RESPONSES"]))

    def canned(key: str) -> Response:
        status, media_type, body = responses[key]
        return Response(body, status_code=status, media_type=media_type)

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def metadata(request: Request) -> Response:
        return canned("GET /v1/outputs/{id}")

    async def content(request: Request) -> Response:
        return canned("GET /v1/outputs/{id}/content")

    async def listing(request: Request) -> Response:
        return canned("GET /v1/outputs")

    async def upload(request: Request) -> Response:
        await request.body()
        return canned("POST /v1/outputs")

    async def delete(request: Request) -> Response:
        return canned("DELETE /v1/outputs/{id}")

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/outputs", listing, methods=["GET"]),
            Route("/v1/outputs", upload, methods=["POST"]),
            Route("/v1/outputs/{id}", metadata, methods=["GET"]),
            Route("/v1/outputs/{id}", delete, methods=["DELETE"]),
            Route("/v1/outputs/{id}/content", content, methods=["GET"]),
        ]
    )
