"""Rendering: the Jinja2 environment, the static assets, and the security headers every page carries."""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response

from store import Settings

# Scripts and styles only from files of this origin (no inline code); images may also be blob: URLs
# (the console's thumbnails of private artifacts, fetched with the key) and come from the public
# base URL when that is another origin (a CDN).
PAGE_SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Share links are capabilities: never hand one to another site in a Referer header.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
}
ASSET_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    version: str


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    images = ["'self'", "blob:", "data:"]
    public_origin = _origin(settings.effective_public_base_url)
    if public_origin != _origin(settings.base_url):
        images.append(public_origin)
    return (
        f"default-src 'self'; img-src {' '.join(images)}; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def load_assets() -> dict[str, Asset]:
    """The files of ``rest/pages/static``, read once, each with a version for cache-busting URLs."""
    assets: dict[str, Asset] = {}
    for entry in importlib.resources.files("rest.pages").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if suffix in ASSET_TYPES:
            body = entry.read_bytes()
            assets[entry.name] = Asset(body, ASSET_TYPES[suffix], hashlib.sha256(body).hexdigest()[:12])
    return assets


class Pages:
    """The templates and assets of one application; built in ``create_app``, shared by its routes."""

    def __init__(self, settings: Settings) -> None:
        self.assets = load_assets()
        self.csp = content_security_policy(settings)
        self.env = Environment(
            loader=PackageLoader("rest.pages", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["asset"] = self.asset_url
        self.env.filters["bytes"] = human_bytes
        self.env.filters["duration"] = human_duration
        self.env.filters["thousands"] = lambda number: f"{number:,}"
        self.env.filters["when"] = human_instant

    def asset_url(self, name: str) -> str:
        return f"/assets/{name}?v={self.assets[name].version}"

    def render(self, template: str, *, status: int = 200, **context: Any) -> Response:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(
            html, status_code=status, headers={**PAGE_SECURITY_HEADERS, "Content-Security-Policy": self.csp}
        )


def human_bytes(size: int) -> str:
    """``1.2 MB``: decimal units, as file managers show them."""
    if size < 1000:
        return f"{size} bytes" if size != 1 else "1 byte"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def human_duration(seconds: int | None) -> str:
    """``6 days 23 hours``: the two largest units, enough for a countdown a person reads."""
    if seconds is None or seconds <= 0:
        return "expired"
    units = (("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1))
    parts: list[str] = []
    for name, length in units:
        count, seconds = divmod(seconds, length)
        if count or parts:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
        if len(parts) == 2:
            break
    return " ".join(part for part in parts if not part.startswith("0 "))


def human_instant(iso: str | None) -> str:
    """``2026-12-05 21:19 UTC`` from the API's ``2026-12-05T21:19:31.910Z``."""
    if not iso:
        return "unknown"
    return f"{iso[:10]} {iso[11:16]} UTC"
