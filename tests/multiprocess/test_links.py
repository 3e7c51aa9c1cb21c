"""Links through every process (SPEC section 14): a link one ``outputlayer serve`` process made is
answered by another on the same database, and a link PUT to both at once still makes one output, one
charge and one blob."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

import httpx2
import pytest

from tests.multiprocess.cluster import (
    Backend,
    assert_check_passes,
    balance,
    register,
    request,
    serving,
    together,
)
from tests.serving import Server

pytestmark = pytest.mark.slow

RATES_OFF = {"OUTPUTLAYER_RATE_LIMITS": "off"}
CONTENT = b"moved by the shell, not the model\n" * 30_000


def on(server: Server, url: str) -> str:
    """The same link path, asked of ``server``."""
    return f"{server.base_url}{urlsplit(url).path}"


def put(server: Server, url: str) -> httpx2.Response:
    return request(server, "PUT", urlsplit(url).path, content=CONTENT)


def test_a_link_made_by_one_process_is_answered_by_another(shared: Backend) -> None:
    with serving(shared, 2, RATES_OFF) as (first, second):
        auth, account_id = register(first)
        created = request(
            first,
            "POST",
            "/v1/uploads",
            json={"mimeType": "text/plain", "label": "moved.txt"},
            headers={**auth, "Idempotency-Key": "k"},
        )
        assert created.status_code == 201, created.text
        url = created.json()["uploadUrl"]
        assert url.startswith(first.base_url)

        # The same link PUT to both processes at once: one output, one charge, one blob.
        answers = together([functools.partial(put, server, url) for server in (first, second, first, second)])
        assert sorted({r.status_code for r in answers} - {503}) == [201], [r.text for r in answers]
        output_ids = {r.json()["outputId"] for r in answers if r.status_code == 201}
        assert len(output_ids) == 1
        output_id = output_ids.pop()
        assert shared.scalar("SELECT COUNT(*) AS n FROM outputs WHERE account_id = ?", (account_id,)) == 1
        assert balance(second, auth)["freeRemaining"] == 4
        state = request(second, "GET", f"/v1/uploads/{created.json()['uploadId']}", headers=auth).json()
        assert (state["status"], state["outputId"]) == ("completed", output_id)

        # A share link made by the second process opens on the first, without a key.
        shared_url = request(second, "POST", f"/v1/outputs/{output_id}/share", json={}, headers=auth).json()["shareUrl"]
        with httpx2.Client(timeout=60) as anonymous:
            response = anonymous.get(on(first, shared_url))
        assert response.status_code == 200 and response.content == CONTENT
    assert_check_passes(shared)
