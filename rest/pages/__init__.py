"""Pages for people: the preview behind every keyless link and the console at ``/console``.

Server-rendered with Jinja2 (autoescaping on, so agent-provided text is always text) and a few small
hand-written static files served from the package; no framework, no CDN, no inline script or style,
so every page can carry a strict Content-Security-Policy. The pages hold no rule: a preview is what
:mod:`store.previews` says, and the console acts only through the public REST API.
"""

from __future__ import annotations

from rest.pages.negotiation import wants_inline, wants_page
from rest.pages.render import Pages
from rest.pages.routes import page_routes

__all__ = ["Pages", "page_routes", "wants_inline", "wants_page"]
