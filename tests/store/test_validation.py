"""Field rules of SPEC section 5 and the fingerprint of section 6, at the store's validation layer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from store import StoreError
from store.clock import ManualClock, iso_ms
from store.validation import (
    SUPPORTED_MIME_TYPES,
    CheckedFields,
    check_idempotency_key,
    fingerprint,
    normalise_mime_type,
    parse_form_field,
    validate_fields,
)

NOW = ManualClock(1_800_000_000_000).now_ms()
DEFAULT_TTL = 604_800
MAX_TTL = 2_592_000
SHA = "ab" * 32


def at(seconds_from_now: float) -> str:
    return iso_ms(NOW + int(seconds_from_now * 1000))


def in_zone(seconds_from_now: float, offset: str) -> str:
    """``at(seconds_from_now)`` written in another zone, e.g. ``+02:00``."""
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = (int(part) for part in offset[1:].split(":"))
    zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    instant = datetime.fromtimestamp((NOW + int(seconds_from_now * 1000)) / 1000, tz=zone)
    return instant.isoformat(timespec="milliseconds")


def check(raw: dict[str, Any]) -> CheckedFields:
    fields = validate_fields(raw, now_ms=NOW, default_ttl_seconds=DEFAULT_TTL, max_ttl_seconds=MAX_TTL)
    assert fields is not None
    return fields


def nested(depth: int) -> dict[str, Any]:
    """An object nested ``depth`` levels deep: depth 1 is {"k": 1}."""
    value: dict[str, Any] = {"k": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


# --- Idempotency-Key -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "code"),
    [
        pytest.param(None, "missing_idempotency_key", id="absent"),
        pytest.param("", "missing_idempotency_key", id="empty"),
        pytest.param("k" * 256, "invalid_request", id="256-chars"),
        pytest.param("tab\tkey", "invalid_request", id="control-tab"),
        pytest.param("nl\nkey", "invalid_request", id="control-newline"),
        pytest.param("del\x7fkey", "invalid_request", id="del-0x7f"),
        pytest.param("clé", "invalid_request", id="non-ascii"),
        pytest.param("\x1f", "invalid_request", id="0x1f"),
    ],
)
def test_bad_idempotency_key_is_refused_with_its_code(key: str | None, code: str) -> None:
    """A missing key is missing_idempotency_key; a malformed one is invalid_request."""
    with pytest.raises(StoreError) as caught:
        check_idempotency_key(key)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k", id="1-char"),
        pytest.param("k" * 255, id="255-chars"),
        pytest.param(" ", id="space-0x20"),
        pytest.param("~", id="tilde-0x7e"),
        pytest.param("job-42:step/3?retry=1&x=y", id="punctuation"),
        pytest.param("01J8ZQ4Y5N7B3K2M0P9R8S7T6V", id="ulid"),
    ],
)
def test_printable_ascii_key_of_1_to_255_chars_is_accepted(key: str) -> None:
    """Any printable ASCII key of 1..255 chars comes back unchanged."""
    assert check_idempotency_key(key) == key


# --- fields --------------------------------------------------------------------------------------

VALID: dict[str, Any] = {"mimeType": "text/plain"}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param({}, "invalid_request", id="mime-missing"),
        pytest.param({"mimeType": "text/markdown"}, "invalid_mime_type", id="mime-unsupported"),
        pytest.param({"mimeType": "image/svg+xml"}, "invalid_mime_type", id="mime-svg"),
        pytest.param({"mimeType": ""}, "invalid_mime_type", id="mime-empty"),
        pytest.param({"mimeType": "text/plain" + " " * 200}, "invalid_mime_type", id="mime-too-long"),
        pytest.param({**VALID, "label": "x" * 201}, "invalid_request", id="label-201-chars"),
        pytest.param({**VALID, "label": "line\nbreak"}, "invalid_request", id="label-newline"),
        pytest.param({**VALID, "label": "nul\x00"}, "invalid_request", id="label-nul"),
        pytest.param({**VALID, "label": "del\x7f"}, "invalid_request", id="label-del"),
        pytest.param({**VALID, "label": "c1\x85"}, "invalid_request", id="label-c1-control"),
        pytest.param({**VALID, "label": 42}, "invalid_request", id="label-not-string"),
        pytest.param({**VALID, "expiresAt": "tomorrow"}, "invalid_expiry", id="expiry-not-iso"),
        pytest.param({**VALID, "expiresAt": "2099-01-01"}, "invalid_expiry", id="expiry-date-only"),
        pytest.param({**VALID, "expiresAt": at(3600)[:-1]}, "invalid_expiry", id="expiry-no-zone"),
        pytest.param({**VALID, "expiresAt": at(-1)}, "invalid_expiry", id="expiry-past"),
        pytest.param({**VALID, "expiresAt": at(0)}, "invalid_expiry", id="expiry-now"),
        pytest.param({**VALID, "expiresAt": at(MAX_TTL + 0.001)}, "invalid_expiry", id="expiry-beyond-max-ttl"),
        pytest.param({**VALID, "expiresAt": 1_900_000_000}, "invalid_expiry", id="expiry-number"),
        pytest.param({**VALID, "public": "true"}, "invalid_request", id="public-string"),
        pytest.param({**VALID, "public": 1}, "invalid_request", id="public-int"),
        pytest.param({**VALID, "public": None}, "invalid_request", id="public-null"),
        pytest.param({**VALID, "metadata": ["a"]}, "invalid_metadata", id="metadata-list"),
        pytest.param({**VALID, "metadata": "{}"}, "invalid_metadata", id="metadata-string"),
        pytest.param({**VALID, "metadata": {"owner": "me"}}, "invalid_metadata", id="metadata-unknown-key"),
        pytest.param({**VALID, "metadata": {"agentId": "a" * 101}}, "invalid_metadata", id="agent-id-101"),
        pytest.param({**VALID, "metadata": {"jobId": "j" * 101}}, "invalid_metadata", id="job-id-101"),
        pytest.param({**VALID, "metadata": {"sourceSystem": "s" * 101}}, "invalid_metadata", id="source-101"),
        pytest.param({**VALID, "metadata": {"agentId": 7}}, "invalid_metadata", id="agent-id-number"),
        pytest.param({**VALID, "metadata": {"tags": ["t"] * 11}}, "invalid_metadata", id="tags-11"),
        pytest.param({**VALID, "metadata": {"tags": ["t" * 51]}}, "invalid_metadata", id="tag-51-chars"),
        pytest.param({**VALID, "metadata": {"tags": "a,b"}}, "invalid_metadata", id="tags-string"),
        pytest.param({**VALID, "metadata": {"tags": [1]}}, "invalid_metadata", id="tag-number"),
        pytest.param({**VALID, "metadata": {"custom": [1]}}, "invalid_metadata", id="custom-list"),
        pytest.param({**VALID, "metadata": {"custom": {"x": "y" * 4090}}}, "invalid_metadata", id="custom-4097-bytes"),
        pytest.param({**VALID, "metadata": {"custom": nested(4)}}, "invalid_metadata", id="custom-depth-4"),
        pytest.param(
            {**VALID, "metadata": {"custom": {f"k{i}": i for i in range(51)}}}, "invalid_metadata", id="custom-51-keys"
        ),
        pytest.param(
            {**VALID, "metadata": {"custom": {f"k{i}": {"a": 1} for i in range(26)}}},
            "invalid_metadata",
            id="custom-52-keys-in-all",
        ),
        pytest.param({**VALID, "colour": "blue"}, "invalid_request", id="unknown-field"),
    ],
)
def test_field_breaking_a_rule_is_refused_with_its_code(raw: dict[str, Any], code: str) -> None:
    """Each rule of SPEC section 5 maps a bad field to its error code."""
    with pytest.raises(StoreError) as caught:
        validate_fields(raw, now_ms=NOW, default_ttl_seconds=DEFAULT_TTL, max_ttl_seconds=MAX_TTL)
    assert caught.value.code == code, caught.value.message


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({**VALID, "label": "x" * 200}, id="label-200-chars"),
        pytest.param({**VALID, "label": "rapport-été ✓.txt"}, id="label-unicode"),
        pytest.param({**VALID, "expiresAt": at(0.001)}, id="expiry-1ms-ahead"),
        pytest.param({**VALID, "expiresAt": at(MAX_TTL)}, id="expiry-exactly-max-ttl"),
        pytest.param({**VALID, "expiresAt": in_zone(3600, "+02:00")}, id="expiry-offset-zone"),
        pytest.param({**VALID, "public": True}, id="public-true"),
        pytest.param({**VALID, "metadata": {}}, id="metadata-empty"),
        pytest.param(
            {
                **VALID,
                "metadata": {
                    "agentId": "a" * 100,
                    "jobId": "j" * 100,
                    "sourceSystem": "s" * 100,
                    "tags": ["t" * 50] * 10,
                    "custom": {f"k{i}": i for i in range(50)},
                },
            },
            id="metadata-at-every-limit",
        ),
        pytest.param({**VALID, "metadata": {"custom": nested(3)}}, id="custom-depth-3"),
        pytest.param({**VALID, "metadata": {"custom": {"x": "y" * 4088}}}, id="custom-4096-bytes"),
    ],
)
def test_field_within_the_rules_is_accepted(raw: dict[str, Any]) -> None:
    """Values at the edge of each rule pass validation."""
    check(raw)


def test_expiry_is_judged_against_the_given_clock() -> None:
    """expiresAt is parsed to the instant it names, relative to the clock passed in, and kept as sent."""
    sent = in_zone(60, "-05:30")
    fields = check({**VALID, "expiresAt": sent})
    assert fields.expires_at_ms == NOW + 60_000
    assert fields.expires_at_raw == sent


def test_absent_expiry_defaults_to_now_plus_default_ttl() -> None:
    """Without expiresAt the output lives the default TTL, and the raw value stays None."""
    fields = check(VALID)
    assert fields.expires_at_ms == NOW + DEFAULT_TTL * 1000
    assert fields.expires_at_raw is None
    assert fields.public is False
    assert fields.label is None
    assert fields.metadata == {}


def test_metadata_keeps_only_the_keys_sent() -> None:
    """Checked metadata carries the sent keys and no nulls for the absent ones."""
    fields = check({**VALID, "metadata": {"tags": ["a"], "custom": {"n": 1}}})
    assert fields.metadata == {"tags": ["a"], "custom": {"n": 1}}


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        pytest.param("text/plain", "text/plain", id="plain"),
        pytest.param("TEXT/PLAIN", "text/plain", id="upper-case"),
        pytest.param("text/plain; charset=utf-8", "text/plain", id="charset-parameter"),
        pytest.param("Application/JSON;charset=UTF-8", "application/json", id="mixed-case-parameter"),
        pytest.param("  image/png  ", "image/png", id="surrounding-space"),
        pytest.param("text/csv; header=present; charset=utf-8", "text/csv", id="two-parameters"),
    ],
)
def test_mime_type_is_lower_cased_and_stripped_of_parameters(sent: str, stored: str) -> None:
    """mimeType is normalised before it is checked and stored."""
    assert normalise_mime_type(sent) == stored
    assert check({"mimeType": sent}).mime_type == stored


def test_all_twelve_supported_mime_types_pass() -> None:
    """The 12 types of seed 004 are accepted."""
    assert len(SUPPORTED_MIME_TYPES) == 12
    for mime in SUPPORTED_MIME_TYPES:
        assert check({"mimeType": mime}).mime_type == mime


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        pytest.param("public", "yes", "invalid_request", id="public-yes"),
        pytest.param("public", "True", "invalid_request", id="public-capitalised"),
        pytest.param("public", "1", "invalid_request", id="public-one"),
        pytest.param("metadata", "{not json", "invalid_metadata", id="metadata-not-json"),
    ],
)
def test_bad_form_field_text_is_refused(name: str, value: str, code: str) -> None:
    """Multipart text fields that cannot be typed are refused with the field's code."""
    with pytest.raises(StoreError) as caught:
        parse_form_field(name, value)
    assert caught.value.code == code


def test_form_metadata_that_is_json_but_not_an_object_is_invalid_metadata() -> None:
    """A metadata form field holding a JSON array fails validation as invalid_metadata."""
    raw = {**VALID, "metadata": parse_form_field("metadata", "[1, 2]")}
    with pytest.raises(StoreError) as caught:
        check(raw)
    assert caught.value.code == "invalid_metadata"


# --- fingerprint ---------------------------------------------------------------------------------

EXPIRES = at(3600)
JSON_FIELDS: dict[str, Any] = {
    "mimeType": "text/csv",
    "label": "report.csv",
    "expiresAt": EXPIRES,
    "public": True,
    "metadata": {"agentId": "a1", "tags": ["x", "y"], "custom": {"b": 2, "a": [1, {"z": None}]}},
}
FORM_TEXT = {
    "label": "report.csv",
    "metadata": '{"custom": {"a": [1, {"z": null}], "b": 2}, "tags": ["x", "y"], "agentId": "a1"}',
    "public": "true",
    "expiresAt": EXPIRES,
    "mimeType": "text/csv; charset=utf-8",
}


def fp(raw: dict[str, Any], sha: str = SHA) -> str:
    return fingerprint(check(raw), sha)


def test_json_and_form_fields_of_one_artifact_have_one_fingerprint() -> None:
    """The same artifact as typed JSON fields and as multipart text fields fingerprints alike."""
    form = {name: parse_form_field(name, text) for name, text in FORM_TEXT.items()}
    assert fp(form) == fp(JSON_FIELDS)


def test_fingerprint_ignores_key_order_and_mime_normalisation() -> None:
    """Reordered keys and an un-normalised MIME type do not change the fingerprint."""
    reordered = dict(reversed(list(JSON_FIELDS.items())))
    reordered["mimeType"] = "TEXT/CSV"
    assert fp(reordered) == fp(JSON_FIELDS)


def test_fingerprint_is_stable_across_calls() -> None:
    """Fingerprinting is deterministic: the same input gives the same 64-hex digest."""
    first, second = fp(JSON_FIELDS), fp(dict(JSON_FIELDS))
    assert first == second
    assert len(first) == 64 and all(c in "0123456789abcdef" for c in first)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"mimeType": "text/plain"}, id="mime-type"),
        pytest.param({"label": "report-2.csv"}, id="label"),
        pytest.param({"label": None}, id="label-absent"),
        pytest.param({"expiresAt": at(3601)}, id="expires-at"),
        pytest.param({"expiresAt": None}, id="expires-at-absent"),
        pytest.param({"public": False}, id="public"),
        pytest.param(
            {"metadata": {"agentId": "a1", "tags": ["y", "x"], "custom": {"b": 2, "a": [1, {"z": None}]}}},
            id="tag-order",
        ),
        pytest.param(
            {"metadata": {"agentId": "a2", "tags": ["x", "y"], "custom": {"b": 2, "a": [1, {"z": None}]}}},
            id="agent-id",
        ),
        pytest.param({"metadata": {"agentId": "a1", "tags": ["x", "y"]}}, id="custom-removed"),
        pytest.param({"metadata": None}, id="metadata-absent"),
    ],
)
def test_fingerprint_differs_when_any_field_differs(changed: dict[str, Any]) -> None:
    """Changing (or dropping) any one field changes the fingerprint."""
    raw = {**JSON_FIELDS, **changed}
    raw = {k: v for k, v in raw.items() if v is not None}
    assert fp(raw) != fp(JSON_FIELDS)


def test_fingerprint_differs_when_content_differs() -> None:
    """The content's SHA-256 is part of the fingerprint."""
    assert fp(JSON_FIELDS, "cd" * 32) != fp(JSON_FIELDS, SHA)


def test_absent_expiry_and_explicit_default_expiry_differ() -> None:
    """expiresAt absent is not the same request as expiresAt = now + default TTL (absent ≠ default)."""
    absent = check(VALID)
    explicit = check({**VALID, "expiresAt": iso_ms(absent.expires_at_ms)})
    assert explicit.expires_at_ms == absent.expires_at_ms
    assert fingerprint(absent, SHA) != fingerprint(explicit, SHA)
