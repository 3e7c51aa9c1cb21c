"""Keyless content: public outputs (the default ``publicUrl`` target) and signed share links.

A browser that navigates to one gets its preview page (:mod:`rest.pages`); everyone else, and every
request with ``?download=1``, gets the bytes.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from rest.content import content_response
from rest.endpoint import Call, endpoint, route
from rest.pages import Pages, wants_inline, wants_page
from rest.pages.routes import preview_page
from store import previews


def public_routes(pages: Pages) -> list[Route]:
    async def public_content(call: Call) -> Response:
        output_id = call.request.path_params["output_id"]
        if wants_page(call.request):
            return await preview_page(
                call, pages, lambda: previews.preview_public(call.service, output_id), eyebrow="Public artifact"
            )
        content = await call.service.open_public(output_id)
        return await content_response(call, content, public=True, inline=wants_inline(call.request))

    async def shared_content(call: Call) -> Response:
        token = call.request.path_params["token"]
        if wants_page(call.request):
            return await preview_page(call, pages, lambda: previews.preview_shared(call.service, token))
        content = await call.service.open_shared(token)
        return await content_response(call, content, public=True, inline=wants_inline(call.request))

    return [
        route("/public/{output_id}", GET=endpoint(public_content, auth=False)),
        route("/s/{token}", GET=endpoint(shared_content, auth=False)),
    ]
