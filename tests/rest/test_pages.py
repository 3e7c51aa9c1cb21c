"""Pages for people (rest/pages): the preview behind keyless links, its content negotiation, the 410 page,
the console shell and the static assets; and that non-browsers still get the bytes exactly as before."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from typing import Any

import httpx2
import pytest

from store import ArtifactService, ManualClock
from store.errors import service_unavailable
from tests.conftest import assert_error
from tests.factories import uploaded
from tests.rest.test_content import public_path

pytestmark = pytest.mark.any_backend

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "Sec-Fetch-Dest": "document"}
PAGE_CSP = "default-src 'self'"
HOSTILE_LABEL = '<script>alert("label")</script>.csv'


async def share_path(client: httpx2.AsyncClient, auth: dict[str, str], output: dict[str, Any], **body: Any) -> str:
    response = await client.post(f"/v1/outputs/{output['outputId']}/share", json=body, headers=auth)
    assert response.status_code == 200, response.text
    url: str = response.json()["shareUrl"]
    return url.removeprefix("http://testserver")


class PageScan(HTMLParser):
    """What a strict CSP would block in a page, and the elements the tests look for."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.blocked_attributes: list[str] = []
        self.style_elements = 0
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        self.blocked_attributes += [name for name in attributes if name == "style" or name.startswith("on")]
        if tag == "script" and "src" not in attributes:
            self.inline_scripts += 1
        if tag == "style":
            self.style_elements += 1

    def find(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in wanted.items())]


def scan(response: httpx2.Response) -> PageScan:
    """The page, after checking the headers every page carries and that it has nothing CSP would block."""
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"].startswith(PAGE_CSP)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    page = PageScan()
    page.feed(response.text)
    assert (page.inline_scripts, page.blocked_attributes, page.style_elements) == (0, [], 0)
    return page


# --- content negotiation ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_browser_opening_a_share_link_gets_the_preview_page(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    """Label (escaped, never markup), type, size, sha256, the countdown and one download button."""
    output = await uploaded(client, auth, b"a,b\n1,2\n", mime="text/csv", label=HOSTILE_LABEL)
    path = await share_path(client, auth, output, expiresInSeconds=3600)
    response = await client.get(path, headers=BROWSER)
    assert response.status_code == 200
    page = scan(response)
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;alert(&#34;label&#34;)&lt;/script&gt;.csv" in response.text
    assert output["sha256"] in response.text
    assert len(page.find("a", id="download", href=f"{path}?download=1")) == 1
    assert page.find("span", id="countdown", **{"data-seconds": "3600"})
    assert page.find("table", id="csv-preview")


@pytest.mark.anyio
async def test_a_browser_opening_a_public_url_gets_the_preview_page(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    output = await uploaded(client, auth, b'{"b": [1, 2]}', mime="application/json", public=True)
    response = await client.get(public_path(output), headers=BROWSER)
    assert response.status_code == 200
    page = scan(response)
    assert page.find("pre", id="text-preview")
    assert '"b": [\n    1,\n    2\n  ]' in html.unescape(response.text)
    assert page.find("a", id="download", href=f"{public_path(output)}?download=1")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "query"),
    [
        pytest.param({}, "", id="curl"),
        pytest.param({"Accept": "application/json, text/html"}, "", id="html-not-first"),
        pytest.param({"Accept": "image/avif,image/webp,*/*"}, "", id="img-tag"),
        pytest.param(BROWSER, "?download=1", id="browser-download-1"),
        pytest.param(BROWSER, "?inline=1", id="browser-inline-navigation"),
    ],
)
async def test_everyone_but_a_navigating_browser_gets_the_bytes_as_before(
    client: httpx2.AsyncClient, auth: dict[str, str], headers: dict[str, str], query: str
) -> None:
    """The bytes and headers of SPEC section 4, attachment and sandbox included, on both keyless links."""
    data = b"<p>agent page</p>"
    output = await uploaded(client, auth, data, mime="text/html", label="page.html", public=True)
    private = await uploaded(client, auth, data, mime="text/html", label="page.html")
    for path in (public_path(output), await share_path(client, auth, private)):
        response = await client.get(path + query, headers=headers)
        if query == "?inline=1":
            # A top-level navigation never gets agent HTML inline: it gets the page instead.
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            continue
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["content-type"] == "text/html"
        assert response.headers["content-disposition"] == 'attachment; filename="page.html"'
        assert response.headers["content-security-policy"] == "sandbox"


@pytest.mark.anyio
async def test_embedded_inline_bytes_stay_sandboxed_and_framable_only_here(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    output = await uploaded(client, auth, b"<script>x()</script>", mime="text/html", label="page.html")
    path = await share_path(client, auth, output)
    response = await client.get(f"{path}?inline=1", headers={**BROWSER, "Sec-Fetch-Dest": "iframe"})
    assert response.status_code == 200
    assert response.content == b"<script>x()</script>"
    assert response.headers["content-disposition"] == 'inline; filename="page.html"'
    policy = [part.strip() for part in response.headers["content-security-policy"].split(";")]
    assert policy[0] == "sandbox"
    assert "frame-ancestors 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.anyio
async def test_html_artifacts_are_previewed_only_in_a_script_less_sandboxed_frame(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    output = await uploaded(client, auth, b"<script>x()</script>", mime="text/html")
    path = await share_path(client, auth, output)
    page = scan(await client.get(path, headers=BROWSER))
    frames = page.find("iframe")
    assert len(frames) == 1
    assert frames[0]["sandbox"] in ("", None)  # present and empty: no allow-scripts, no allow-same-origin
    assert "sandbox" in frames[0]
    assert frames[0]["src"] == f"{path}?inline=1"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mime", "element", "element_id"),
    [
        pytest.param("image/png", "img", "image-preview", id="image"),
        pytest.param("application/pdf", "iframe", "pdf-preview", id="pdf"),
    ],
)
async def test_images_and_pdfs_are_shown_by_the_browser_from_the_inline_bytes(
    client: httpx2.AsyncClient, auth: dict[str, str], mime: str, element: str, element_id: str
) -> None:
    """A PDF viewer does not run in a sandboxed frame; the inline bytes still carry CSP sandbox themselves."""
    output = await uploaded(client, auth, b"\x89PNG not really", mime=mime)
    path = await share_path(client, auth, output)
    page = scan(await client.get(path, headers=BROWSER))
    shown = page.find(element, id=element_id)
    assert [found["src"] for found in shown] == [f"{path}?inline=1"]


@pytest.mark.anyio
async def test_types_without_a_preview_still_show_the_facts_and_the_download(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    output = await uploaded(client, auth, b"PK\x03\x04", mime="application/zip", label="bundle.zip")
    path = await share_path(client, auth, output)
    page = scan(await client.get(path, headers=BROWSER))
    assert page.find("section", id="viewer", **{"data-kind": "none"})
    assert page.find("a", id="download")


# --- links that lead nowhere ------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_deleted_artifact_shows_a_410_page_to_browsers_and_the_envelope_to_others(
    client: httpx2.AsyncClient, auth: dict[str, str]
) -> None:
    output = await uploaded(client, auth, public=True)
    private = await uploaded(client, auth)
    link = await share_path(client, auth, private)
    for owned in (output, private):
        assert (await client.delete(f"/v1/outputs/{owned['outputId']}", headers=auth)).status_code == 200
    for path in (public_path(output), link):
        response = await client.get(path, headers=BROWSER)
        assert response.status_code == 410
        assert scan(response).find("section", **{"data-code": "output_deleted"})
        assert_error(await client.get(path), 410, "output_deleted", retryable=False, action="create_new_output")


@pytest.mark.anyio
async def test_an_expired_share_link_shows_a_410_page(
    client: httpx2.AsyncClient, auth: dict[str, str], clock: ManualClock
) -> None:
    output = await uploaded(client, auth)
    path = await share_path(client, auth, output, expiresInSeconds=60)
    clock.advance(61)
    response = await client.get(path, headers=BROWSER)
    assert response.status_code == 410
    assert scan(response).find("section", **{"data-code": "output_expired"})


@pytest.mark.anyio
async def test_a_tampered_or_unknown_link_shows_a_404_page(client: httpx2.AsyncClient, auth: dict[str, str]) -> None:
    output = await uploaded(client, auth)
    path = await share_path(client, auth, output)
    tampered = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
    for bad in (tampered, "/public/out_01J00000000000000000000000"):
        response = await client.get(bad, headers=BROWSER)
        assert response.status_code == 404
        assert scan(response).find("section", **{"data-code": "output_not_found"})


@pytest.mark.anyio
async def test_a_blob_store_outage_shows_a_retryable_503_page(
    client: httpx2.AsyncClient, auth: dict[str, str], service: ArtifactService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the text to preview fails: a 503 page with Retry-After, never a broken or half page."""
    output = await uploaded(client, auth, public=True)

    async def unavailable_small(key: str, start: int, length: int) -> bytes:
        raise service_unavailable("blob store")

    monkeypatch.setattr(service.blobs, "read_small", unavailable_small)
    response = await client.get(public_path(output), headers=BROWSER)
    assert response.status_code == 503
    assert scan(response).find("section", **{"data-code": "service_unavailable"})
    assert int(response.headers["retry-after"]) > 0


# --- console and assets -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_console_is_a_static_shell_with_a_strict_policy(client: httpx2.AsyncClient) -> None:
    """No key needed to load it; the key is asked for by the page and never placed in a form action or URL."""
    response = await client.get("/console", headers=BROWSER)
    assert response.status_code == 200
    page = scan(response)
    scripts = [script["src"] or "" for script in page.find("script")]
    assert len(scripts) == 1
    assert scripts[0].startswith("/assets/console.js?v=")
    assert page.find("input", id="api-key", type="password")
    assert not page.find("form", method="get")
    type_filters = [option for option in page.find("option") if "/" in (option["value"] or "")]
    assert len(type_filters) == 12


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        pytest.param("console.js", "text/javascript; charset=utf-8", id="js"),
        pytest.param("pages.css", "text/css; charset=utf-8", id="css"),
        pytest.param("favicon.svg", "image/svg+xml", id="svg"),
    ],
)
async def test_assets_are_served_from_the_package(client: httpx2.AsyncClient, name: str, content_type: str) -> None:
    response = await client.get(f"/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.content) > 100


@pytest.mark.anyio
async def test_an_unknown_asset_is_the_api_404(client: httpx2.AsyncClient) -> None:
    assert_error(await client.get("/assets/nope.js"), 404, "not_found", retryable=False, action="check_capabilities")
