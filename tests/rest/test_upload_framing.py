"""The framing of an upload body (rest/uploads.py): its wire shape from Content-Type, and what a declared
Content-Length refuses or tells the store before a byte of the body is read."""

from __future__ import annotations

import pytest

from rest.uploads import FORM_ENVELOPE_BYTES, Framing, upload_framing
from store import JSON_BODY_LIMIT, StoreError

LIMIT = 1000


@pytest.mark.parametrize(
    ("content_type", "content_length", "expected"),
    [
        pytest.param("application/json", None, Framing("json", 0), id="json-chunked"),
        pytest.param("Application/JSON; charset=utf-8", JSON_BODY_LIMIT, Framing("json", 774_144), id="json-at-1mib"),
        pytest.param("application/json", 100, Framing("json", 0), id="json-smaller-than-its-envelope"),
        pytest.param("multipart/form-data; boundary=b", None, Framing("multipart", 0), id="multipart-chunked"),
        pytest.param(
            "multipart/form-data; boundary=b",
            LIMIT + FORM_ENVELOPE_BYTES,
            Framing("multipart", LIMIT),
            id="multipart-at-limit-plus-envelope",
        ),
    ],
)
def test_framing_names_the_wire_and_the_least_content_a_body_can_carry(
    content_type: str, content_length: int | None, expected: Framing
) -> None:
    """The least content is the declared length less the envelope (3/4 of it for base64 in JSON)."""
    assert upload_framing(content_type, content_length, LIMIT) == expected


@pytest.mark.parametrize(
    ("content_type", "content_length", "code"),
    [
        pytest.param("application/json", JSON_BODY_LIMIT + 1, "payload_too_large", id="json-over-1mib"),
        pytest.param(
            "multipart/form-data; boundary=b",
            LIMIT + FORM_ENVELOPE_BYTES + 1,
            "payload_too_large",
            id="multipart-over-limit-plus-envelope",
        ),
        pytest.param("text/plain", 10, "invalid_request", id="other-content-type"),
        pytest.param(None, None, "invalid_request", id="no-content-type"),
    ],
)
def test_framing_refuses_what_cannot_be_an_upload_before_the_body_is_read(
    content_type: str | None, content_length: int | None, code: str
) -> None:
    """An unknown wire shape, or a declared length that cannot fit, is refused from the headers alone."""
    with pytest.raises(StoreError) as caught:
        upload_framing(content_type, content_length, LIMIT)
    assert caught.value.code == code
