"""agent_contract (SPEC section 2): output contracts for every state, error contracts for every code."""

from __future__ import annotations

from typing import Any

import pytest

from store import ERROR_KINDS, ArtifactService, ManualClock
from store.contract import error_contract
from tests.conftest import assert_contract
from tests.factories import failed_output_id, future_iso, register, upload

EXPIRED_TEXT = "The content for this output has expired. Upload again to create a new output."
DELETED_TEXT = "If you need to store a new artifact, create a new output."
RETRY_TEXT = "Retry the identical request with the same Idempotency-Key."


def codes(contract: dict[str, Any]) -> list[str]:
    return [item["action"] for item in contract["next_actions"]]


def by_code(contract: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [item for item in contract["next_actions"] if item["action"] == code]
    return found


# --- output contracts ----------------------------------------------------------------------------


async def output_in_state(service: ArtifactService, clock: ManualClock, state: str, monkeypatch: Any) -> str:
    account = await register(service)
    if state == "failed":
        return await failed_output_id(service, account, "k-failed", monkeypatch)
    result = await upload(
        service,
        account,
        f"k-{state}",
        public=state == "ready-public",
        expiresAt=future_iso(service, 3600),
    )
    output_id = str(result.body["outputId"])
    if state == "expired":
        clock.advance(3600)
    elif state == "deleted":
        await service.delete_output(account, output_id)
    return output_id


async def read_back(service: ArtifactService, output_id: str) -> dict[str, Any]:
    row = service.db.read_sync(lambda tx: tx.one("SELECT account_id FROM outputs WHERE id = ?", (output_id,)))
    assert row is not None
    account = await service.account(row["account_id"])
    result = await service.get_output(account, output_id)
    return result.body


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("state", "status", "accessible", "share", "retryable", "actions"),
    [
        pytest.param(
            "ready-public",
            "ready",
            True,
            True,
            False,
            ["share_public_url", "download_content", "delete_output"],
            id="ready-public",
        ),
        pytest.param(
            "ready-private",
            "ready",
            True,
            False,
            False,
            ["download_content", "create_public_output", "create_share_link", "delete_output"],
            id="ready-private",
        ),
        pytest.param("failed", "failed", False, False, True, ["retry_same_request"], id="failed"),
        pytest.param("expired", "expired", False, False, False, ["create_new_output"], id="expired"),
        pytest.param("deleted", "deleted", False, False, False, ["create_new_output"], id="deleted"),
    ],
)
async def test_output_contract_matches_the_state_table(
    service: ArtifactService,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    state: str,
    status: str,
    accessible: bool,
    share: bool,
    retryable: bool,
    actions: list[str],
) -> None:
    """Each row of the SPEC section 2 state table: flags and next_actions in order, recommended first."""
    output_id = await output_in_state(service, clock, state, monkeypatch)
    body = await read_back(service, output_id)
    contract = assert_contract(body)
    assert body["status"] == status
    assert contract["content_accessible"] is accessible
    assert contract["safe_to_share"] is share
    assert contract["retryable"] is retryable
    assert codes(contract) == actions
    if status in ("expired", "deleted"):
        assert contract["expires_in_seconds"] is None
        assert body["contentUrl"] is None and body["publicUrl"] is None


@pytest.mark.anyio
async def test_ready_public_contract_shares_the_absolute_public_url(
    service: ArtifactService, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """share_public_url GETs the absolute publicUrl; download and delete name the output's paths."""
    output_id = await output_in_state(service, clock, "ready-public", monkeypatch)
    body = await read_back(service, output_id)
    contract = body["agent_contract"]
    assert body["publicUrl"] == f"http://testserver/public/{output_id}"
    share = by_code(contract, "share_public_url")
    assert (share["method"], share["endpoint"]) == ("GET", body["publicUrl"])
    download = by_code(contract, "download_content")
    assert (download["method"], download["endpoint"]) == ("GET", f"/v1/outputs/{output_id}/content")
    delete = by_code(contract, "delete_output")
    assert (delete["method"], delete["endpoint"]) == ("DELETE", f"/v1/outputs/{output_id}")
    assert contract["expires_in_seconds"] == 3600


@pytest.mark.anyio
async def test_ready_private_contract_explains_why_it_cannot_be_shared_publicly(
    service: ArtifactService, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_public_output is unavailable with the reason and the body change that would enable it."""
    output_id = await output_in_state(service, clock, "ready-private", monkeypatch)
    contract = (await read_back(service, output_id))["agent_contract"]
    download = by_code(contract, "download_content")
    assert (download["method"], download["endpoint"]) == ("GET", f"/v1/outputs/{output_id}/content")
    public = by_code(contract, "create_public_output")
    assert public["available"] is False
    assert public["reason"] == "This output was created without public:true."
    assert public["required_body_changes"] == {"public": True}
    assert "method" not in public and "endpoint" not in public
    link = by_code(contract, "create_share_link")
    assert (link["method"], link["endpoint"]) == ("POST", f"/v1/outputs/{output_id}/share")
    delete = by_code(contract, "delete_output")
    assert (delete["method"], delete["endpoint"]) == ("DELETE", f"/v1/outputs/{output_id}")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("state", "code", "method", "endpoint", "description"),
    [
        pytest.param("failed", "retry_same_request", "POST", "/v1/outputs", RETRY_TEXT, id="failed"),
        pytest.param("expired", "create_new_output", "POST", "/v1/outputs", EXPIRED_TEXT, id="expired"),
        pytest.param("deleted", "create_new_output", "POST", "/v1/outputs", DELETED_TEXT, id="deleted"),
    ],
)
async def test_terminal_state_contract_points_at_a_new_upload(
    service: ArtifactService,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    state: str,
    code: str,
    method: str,
    endpoint: str,
    description: str,
) -> None:
    """failed says retry the same request; expired and deleted say create a new output, in SPEC words."""
    output_id = await output_in_state(service, clock, state, monkeypatch)
    (only,) = (await read_back(service, output_id))["agent_contract"]["next_actions"]
    assert only["action"] == code
    assert (only["method"], only["endpoint"]) == (method, endpoint)
    assert only["description"] == description


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("elapsed_ms", "status", "expires_in"),
    [
        pytest.param(0, "ready", 100, id="just-created"),
        pytest.param(1, "ready", 99, id="1ms-later-floors"),
        pytest.param(500, "ready", 99, id="half-second-floors-not-rounds"),
        pytest.param(999, "ready", 99, id="999ms"),
        pytest.param(1_000, "ready", 99, id="1s"),
        pytest.param(99_000, "ready", 1, id="1s-left"),
        pytest.param(99_001, "ready", None, id="under-1s-left-is-null"),
        pytest.param(100_000, "expired", None, id="at-expiry"),
        pytest.param(500_000, "expired", None, id="long-after"),
    ],
)
async def test_expires_in_seconds_is_the_floor_and_null_when_not_positive(
    service: ArtifactService, clock: ManualClock, elapsed_ms: int, status: str, expires_in: int | None
) -> None:
    """expires_in_seconds = floor(seconds to expiresAt) when > 0, else null; expiry is read with the clock."""
    account = await register(service)
    created = await upload(service, account, "k", expiresAt=future_iso(service, 100))
    clock.advance(elapsed_ms / 1000)
    body = (await service.get_output(account, created.body["outputId"])).body
    assert body["status"] == status
    assert body["agent_contract"]["expires_in_seconds"] == expires_in
    assert body["agent_contract"]["content_accessible"] is (status == "ready")


@pytest.mark.anyio
async def test_every_output_answer_carries_the_contract_of_its_state(service: ArtifactService) -> None:
    """POST 201, replay and DELETE bodies carry contracts for ready, ready and deleted respectively."""
    account = await register(service)
    created = await upload(service, account, "k", public=True)
    assert codes(assert_contract(created.body))[0] == "share_public_url"
    replayed = await upload(service, account, "k", public=True)
    assert replayed.replayed is True
    assert replayed.body["agent_contract"] == created.body["agent_contract"]
    deleted = await service.delete_output(account, created.body["outputId"])
    assert codes(assert_contract(deleted)) == ["create_new_output"]
    assert deleted["agent_contract"]["expires_in_seconds"] is None
    replay_after_delete = await upload(service, account, "k", public=True)
    assert replay_after_delete.body["agent_contract"] == deleted["agent_contract"]


# --- error contracts -----------------------------------------------------------------------------

# SPEC section 3 (and the additions named in store.errors), with the request each error is tried on:
# code: (HTTP status, retryable, next_actions in order, method, path, retry_after given)
ERRORS: dict[str, tuple[int, bool, list[str], str, str, int | None]] = {
    "missing_idempotency_key": (400, False, ["check_capabilities"], "POST", "/v1/outputs", None),
    "invalid_mime_type": (400, False, ["check_capabilities"], "POST", "/v1/outputs", None),
    "payload_too_large": (400, False, ["check_capabilities"], "POST", "/v1/outputs", None),
    "invalid_metadata": (400, False, ["check_capabilities"], "POST", "/v1/outputs", None),
    "invalid_expiry": (400, False, ["check_capabilities"], "POST", "/v1/outputs", None),
    "invalid_request": (400, False, ["check_capabilities"], "GET", "/v1/outputs", None),
    "missing_api_key": (401, False, ["register_key"], "GET", "/v1/credits/balance", None),
    "invalid_api_key": (401, False, ["register_key"], "GET", "/v1/outputs", None),
    "quota_exhausted": (402, False, ["buy_credits", "check_capabilities"], "POST", "/v1/outputs", None),
    "storage_limit_reached": (
        402,
        False,
        ["delete_output", "buy_credits", "check_capabilities"],
        "POST",
        "/v1/outputs",
        None,
    ),
    "output_not_found": (404, False, ["create_new_output"], "GET", "/v1/outputs/out_x", None),
    "purchase_not_found": (404, False, ["retry_checkout"], "GET", "/v1/credits/verify", None),
    "not_found": (404, False, ["check_capabilities"], "GET", "/v2/nothing", None),
    "wrong_method": (405, False, ["register_key"], "GET", "/v1/keys/register", None),
    "idempotency_conflict": (409, False, ["create_new_output"], "POST", "/v1/outputs", None),
    "output_expired": (410, False, ["create_new_output"], "GET", "/v1/outputs/out_x/content", None),
    "output_deleted": (410, False, ["create_new_output"], "GET", "/v1/outputs/out_x/content", None),
    "range_not_satisfiable": (416, False, ["check_capabilities"], "GET", "/v1/outputs/out_x/content", None),
    "upload_failed": (422, True, ["retry_same_request"], "POST", "/v1/outputs", None),
    "rate_limited": (429, True, ["retry_after_wait"], "GET", "/v1/outputs/out_x", 17),
    "server_error": (500, True, ["retry_after_wait"], "DELETE", "/v1/outputs/out_x", 30),
    "idempotency_in_flight": (503, True, ["retry_after_wait"], "POST", "/v1/outputs", 5),
    "service_unavailable": (503, True, ["retry_after_wait"], "GET", "/v1/outputs", 5),
    "billing_disabled": (503, False, ["check_capabilities"], "POST", "/v1/credits/checkout", None),
}
RETRY_ACTIONS = ("retry_same_request", "retry_after_wait")


def test_error_table_covers_every_error_kind_with_the_spec_status() -> None:
    """Every code in ERROR_KINDS is in the SPEC-derived table here, with the same status and retryability."""
    assert set(ERROR_KINDS) == set(ERRORS)
    for code, (status, retryable, *_rest) in ERRORS.items():
        assert (ERROR_KINDS[code].status, ERROR_KINDS[code].retryable) == (status, retryable), code


@pytest.mark.parametrize("code", [pytest.param(code, id=code) for code in ERRORS])
def test_error_contract_recommends_the_spec_action_first(code: str) -> None:
    """Exactly one action is recommended, the first, and the actions are those of SPEC section 3."""
    _status, retryable, actions, method, path, retry_after = ERRORS[code]
    contract = assert_contract(
        {"agent_contract": error_contract(code, method=method, path=path, retry_after=retry_after, retryable=retryable)}
    )
    assert codes(contract) == actions
    assert contract["retryable"] is retryable
    assert contract["content_accessible"] is False
    assert contract["safe_to_share"] is False
    assert contract["expires_in_seconds"] is None


@pytest.mark.parametrize(
    "code", [pytest.param(code, id=code) for code, row in ERRORS.items() if set(row[2]) & set(RETRY_ACTIONS)]
)
def test_retry_action_points_at_the_request_that_failed(code: str) -> None:
    """retry_same_request / retry_after_wait carry the failed request's method and path, never a fixed POST."""
    _status, retryable, _actions, method, path, retry_after = ERRORS[code]
    contract = error_contract(code, method=method, path=path, retry_after=retry_after, retryable=retryable)
    first = contract["next_actions"][0]
    assert (first["method"], first["endpoint"]) == (method, path)


def test_upload_failed_found_by_a_download_points_at_the_upload() -> None:
    """The content of a failed output is fixed by retrying the upload (seed 002), not the download."""
    contract = error_contract(
        "upload_failed", method="GET", path="/v1/outputs/out_x/content", retry_after=None, retryable=True
    )
    first = contract["next_actions"][0]
    assert (first["action"], first["method"], first["endpoint"]) == ("retry_same_request", "POST", "/v1/outputs")


@pytest.mark.parametrize(
    ("code", "given", "expected"),
    [
        pytest.param("rate_limited", 17, 17, id="rate-limited-real-wait"),
        pytest.param("rate_limited", 3599, 3599, id="rate-limited-long-wait"),
        pytest.param("server_error", 30, 30, id="server-error-30s"),
        pytest.param("server_error", None, 30, id="server-error-default-30s"),
        pytest.param("idempotency_in_flight", 5, 5, id="in-flight-5s"),
    ],
)
def test_retry_after_wait_carries_the_wait(code: str, given: int | None, expected: int) -> None:
    """retry_after_seconds is the wait given (server_error defaults to 30 s)."""
    contract = error_contract(code, method="GET", path="/v1/outputs", retry_after=given, retryable=True)
    assert contract["next_actions"][0]["retry_after_seconds"] == expected


@pytest.mark.parametrize("code", [pytest.param(code, id=code) for code in ERRORS])
def test_retry_after_seconds_appears_only_on_retry_after_wait(code: str) -> None:
    """No action other than retry_after_wait carries retry_after_seconds, even when a wait is given."""
    _status, retryable, _actions, method, path, _wait = ERRORS[code]
    contract = error_contract(code, method=method, path=path, retry_after=9, retryable=retryable)
    for item in contract["next_actions"]:
        assert ("retry_after_seconds" in item) is (item["action"] == "retry_after_wait"), item


def test_storage_limit_contract_offers_the_delete_template() -> None:
    """storage_limit_reached recommends DELETE /v1/outputs/{outputId} with the SPEC description."""
    contract = error_contract(
        "storage_limit_reached", method="POST", path="/v1/outputs", retry_after=None, retryable=False
    )
    first = contract["next_actions"][0]
    assert (first["method"], first["endpoint"]) == ("DELETE", "/v1/outputs/{outputId}")
    assert first["description"] == (
        "Delete one or more existing outputs to free storage, then retry with the same Idempotency-Key."
    )


def test_idempotency_conflict_contract_says_generate_a_new_key() -> None:
    """idempotency_conflict's create_new_output explains the key was reused with a different payload."""
    contract = error_contract(
        "idempotency_conflict", method="POST", path="/v1/outputs", retry_after=None, retryable=False
    )
    assert (
        "reused with a different payload. Generate a new key and retry." in contract["next_actions"][0]["description"]
    )


@pytest.mark.parametrize(
    ("path", "action", "method"),
    [
        pytest.param("/v1/keys/register", "register_key", "POST", id="register"),
        pytest.param("/v1/outputs", "create_new_output", "POST", id="outputs"),
        pytest.param("/v1/credits/checkout", "buy_credits", "POST", id="checkout"),
        pytest.param("/v1/outputs/out_1", "get_output", "GET", id="output-item"),
        pytest.param("/v1/outputs/out_1/content", "download_content", "GET", id="content"),
    ],
)
def test_wrong_method_contract_names_the_right_method(path: str, action: str, method: str) -> None:
    """A 405 recommends the action that uses the same path with the right method."""
    contract = error_contract("wrong_method", method="PUT", path=path, retry_after=None, retryable=False)
    first = contract["next_actions"][0]
    assert (first["action"], first["method"]) == (action, method)
