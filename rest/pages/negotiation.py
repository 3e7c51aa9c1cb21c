"""Who gets a page and who gets bytes, on the keyless links (``/public/…`` and ``/s/…``).

A browser navigating to a link (its ``Accept`` header lists ``text/html`` first) gets the preview
page; everyone else (curl, agents, ``<img>`` tags, download managers) and every request with
``?download=1`` gets the bytes exactly as before. ``?inline=1`` asks for the bytes to be shown rather
than saved: the preview page embeds them that way. It is honoured only for embedded loads (a frame
or an image, per ``Sec-Fetch-Dest``), never for a page the browser navigates to, so agent-written
HTML cannot pose as a page of this site even with its scripts already disabled.
"""

from __future__ import annotations

from starlette.requests import Request


def _first_accepted_type(request: Request) -> str:
    accept = request.headers.get("accept", "")
    return accept.split(",", 1)[0].split(";", 1)[0].strip().lower()


def _navigation(request: Request) -> bool:
    return request.headers.get("sec-fetch-dest", "").lower() == "document"


def wants_inline(request: Request) -> bool:
    """The bytes, to be shown inside the preview page (``?inline=1`` on an embedded load)."""
    return request.query_params.get("inline") == "1" and not _navigation(request)


def wants_page(request: Request) -> bool:
    """The preview page instead of the bytes."""
    params = request.query_params
    if "download" in params or wants_inline(request):
        return False
    return _first_accepted_type(request) == "text/html"
