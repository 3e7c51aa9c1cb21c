"""Keyless content: public outputs (the default ``publicUrl`` target) and signed share links."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from rest.content import content_response
from rest.endpoint import Call, endpoint


async def public_content(call: Call) -> Response:
    content = await call.service.open_public(call.request.path_params["output_id"])
    return content_response(call, content, public=True, cache="public, max-age=60")


async def shared_content(call: Call) -> Response:
    content = await call.service.open_shared(call.request.path_params["token"])
    return content_response(call, content, public=True)


def public_routes() -> list[Route]:
    return [
        Route("/public/{output_id}", endpoint(public_content, auth=False), methods=["GET"]),
        Route("/s/{token}", endpoint(shared_content, auth=False), methods=["GET"]),
    ]
