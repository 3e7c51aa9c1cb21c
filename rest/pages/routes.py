"""Page handlers: the preview of a keyless link, the page for a link that no longer leads anywhere,
the console shell, and the static assets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.routing import Route

from rest.endpoint import Call, endpoint, route
from rest.pages.render import Pages
from store import SUPPORTED_MIME_TYPES, StoreError, previews

# What a person is told when a link leads nowhere; anything else shows the error's own message.
GONE_TITLES = {
    "output_expired": "This link has expired",
    "output_deleted": "This artifact was deleted",
    "output_not_found": "Nothing to see at this link",
}


async def preview_page(
    call: Call, pages: Pages, load: Callable[[], Awaitable[previews.Preview]], *, eyebrow: str = "Shared artifact"
) -> Response:
    """The preview page of a keyless link, or the page saying why there is nothing to preview."""
    try:
        preview = await load()
    except StoreError as exc:
        return problem_page(pages, exc)
    path = call.request.url.path
    return pages.render(
        "preview.html",
        preview=preview,
        eyebrow=eyebrow,
        inline_url=f"{path}?inline=1",
        download_url=f"{path}?download=1",
    )


def problem_page(pages: Pages, error: StoreError) -> Response:
    """410 for expired and deleted artifacts, 404 for links that never led anywhere, and so on."""
    response = pages.render(
        "problem.html",
        status=error.status,
        status_code=error.status,
        code=error.code,
        title=GONE_TITLES.get(error.code, "This artifact cannot be shown"),
        message=error.message,
    )
    response.headers.update(error.headers)
    if error.retry_after is not None and error.status in (429, 500, 503):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def page_routes(pages: Pages) -> list[Route]:
    async def console(call: Call) -> Response:
        return pages.render("console.html", mime_types=SUPPORTED_MIME_TYPES)

    async def asset(call: Call) -> Response:
        found = pages.assets.get(call.request.path_params["name"])
        if found is None:
            raise StoreError("not_found", f"There is no asset {call.request.url.path}.")
        headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
        return Response(found.body, media_type=found.content_type, headers=headers)

    return [
        route("/console", GET=endpoint(console, auth=False)),
        route("/assets/{name}", GET=endpoint(asset, auth=False)),
    ]
