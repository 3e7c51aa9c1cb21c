"""Keyless content: public outputs (the default ``publicUrl`` target) and signed share links."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from rest.content import content_response
from rest.endpoint import Call, endpoint, route


async def public_content(call: Call) -> Response:
    content = await call.service.open_public(call.request.path_params["output_id"])
    return await content_response(call, content, public=True)


async def shared_content(call: Call) -> Response:
    content = await call.service.open_shared(call.request.path_params["token"])
    return await content_response(call, content, public=True)


def public_routes() -> list[Route]:
    return [
        route("/public/{output_id}", GET=endpoint(public_content, auth=False)),
        route("/s/{token}", GET=endpoint(shared_content, auth=False)),
    ]
