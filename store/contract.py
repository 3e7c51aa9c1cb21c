"""agent_contract: the machine-readable "what may I do next" block on every response (SPEC section 2).

Pure functions only: each takes the facts it needs and returns plain dicts in the key order the
spec fixes. Exactly one action is recommended, and it is always the first.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

Action = dict[str, Any]
Contract = dict[str, Any]

CREATE_OUTPUT = ("POST", "/v1/outputs")
CAPABILITIES = ("GET", "/v1/capabilities")
REGISTER = ("POST", "/v1/keys/register")
CHECKOUT = ("POST", "/v1/credits/checkout")


def action(
    code: str,
    description: str,
    method: str,
    endpoint: str,
    *,
    retry_after_seconds: int | None = None,
) -> Action:
    """An available action; the first one in a contract is marked recommended by :func:`contract`."""
    item: Action = {
        "action": code,
        "available": True,
        "recommended": False,
        "description": description,
        "method": method,
        "endpoint": endpoint,
    }
    if retry_after_seconds is not None:
        item["retry_after_seconds"] = retry_after_seconds
    return item


def unavailable_action(code: str, description: str, reason: str, required_body_changes: dict[str, Any]) -> Action:
    return {
        "action": code,
        "available": False,
        "recommended": False,
        "description": description,
        "reason": reason,
        "required_body_changes": required_body_changes,
    }


def contract(
    actions: list[Action],
    *,
    content_accessible: bool = False,
    safe_to_share: bool = False,
    retryable: bool = False,
    expires_in_seconds: int | None = None,
) -> Contract:
    first, *rest = actions
    return {
        "version": "1",
        "content_accessible": content_accessible,
        "safe_to_share": safe_to_share,
        "retryable": retryable,
        "expires_in_seconds": expires_in_seconds,
        "next_actions": [{**first, "recommended": True}, *rest],
    }


# --- actions used in several contracts -------------------------------------------------------


def check_capabilities(description: str = "Read the server's limits, MIME types and quota rules.") -> Action:
    return action("check_capabilities", description, *CAPABILITIES)


def create_new_output(description: str = "Upload a new artifact with a new Idempotency-Key.") -> Action:
    return action("create_new_output", description, *CREATE_OUTPUT)


def register_key() -> Action:
    return action("register_key", "Register a new API key; it is shown once.", *REGISTER)


def buy_credits() -> Action:
    return action("buy_credits", "Buy a credit pack to continue uploading.", *CHECKOUT)


EXPIRED_DESCRIPTION = "The content for this output has expired. Upload again to create a new output."
DELETED_DESCRIPTION = "If you need to store a new artifact, create a new output."
RETRY_SAME = "Retry the identical request with the same Idempotency-Key."


# --- outputs ---------------------------------------------------------------------------------


def output_contract(
    *,
    output_id: str,
    status: str,
    public_url: str | None,
    expires_in_seconds: int | None,
) -> Contract:
    """The contract of an output in its effective status (expiry already evaluated by the caller)."""
    item_path = f"/v1/outputs/{output_id}"
    if status == "ready":
        download = action(
            "download_content",
            "Download the raw content via the authenticated content endpoint.",
            "GET",
            f"{item_path}/content",
        )
        delete = action("delete_output", "Delete this output when it is no longer needed.", "DELETE", item_path)
        if public_url is not None:
            share = action("share_public_url", "Share this public URL; it needs no API key.", "GET", public_url)
            actions = [share, download, delete]
        else:
            actions = [
                download,
                unavailable_action(
                    "create_public_output",
                    "Upload the artifact again with public:true to get a public URL.",
                    "This output was created without public:true.",
                    {"public": True},
                ),
                action(
                    "create_share_link",
                    "Create a signed, expiring link that serves the bytes without an API key.",
                    "POST",
                    f"{item_path}/share",
                ),
                delete,
            ]
        return contract(
            actions,
            content_accessible=True,
            safe_to_share=public_url is not None,
            expires_in_seconds=expires_in_seconds,
        )
    if status == "failed":
        return contract(
            [action("retry_same_request", RETRY_SAME, *CREATE_OUTPUT)],
            retryable=True,
            expires_in_seconds=expires_in_seconds,
        )
    description = EXPIRED_DESCRIPTION if status == "expired" else DELETED_DESCRIPTION
    return contract([create_new_output(description)])


def list_contract(next_cursor: str | None, limit: int, filters: dict[str, str] | None = None) -> Contract:
    """The listing's contract; the next-page endpoint keeps the filters of the listing."""
    if next_cursor is not None:
        query = urlencode({"limit": limit, **(filters or {}), "cursor": next_cursor})
        return contract(
            [
                action(
                    "list_outputs",
                    "Fetch the next page of outputs.",
                    "GET",
                    f"/v1/outputs?{query}",
                ),
                create_new_output(),
            ]
        )
    return contract([create_new_output()])


def register_contract() -> Contract:
    return contract([create_new_output("Upload your first artifact with this key."), check_capabilities()])


def balance_contract(free_remaining: int, credits_remaining: int) -> Contract:
    if free_remaining == 0 and credits_remaining == 0:
        return contract([buy_credits(), check_capabilities()])
    return contract([create_new_output(), check_capabilities()])


def purchase_contract(purchase_id: str, status: str) -> Contract:
    if status == "confirmed":
        return contract([check_capabilities("Credits have been added to your account. You may now create outputs.")])
    if status == "pending":
        return contract(
            [
                action(
                    "retry_after_wait",
                    "The payment is not confirmed yet. Check again shortly.",
                    "GET",
                    f"/v1/credits/verify?purchaseId={purchase_id}",
                    retry_after_seconds=5,
                )
            ],
            retryable=True,
        )
    return contract([action("retry_checkout", "The payment did not complete. Start a new checkout.", *CHECKOUT)])


def discovery_contract(authenticated: bool) -> Contract:
    if authenticated:
        return contract([create_new_output(), check_capabilities()])
    return contract([register_key(), check_capabilities()])


def share_contract(share_url: str, output_id: str, expires_in_seconds: int | None) -> Contract:
    return contract(
        [
            action("share_public_url", "Give this link to a person; it needs no API key.", "GET", share_url),
            action("get_output", "Read the output's metadata.", "GET", f"/v1/outputs/{output_id}"),
        ],
        content_accessible=True,
        safe_to_share=True,
        expires_in_seconds=expires_in_seconds,
    )


# --- errors ----------------------------------------------------------------------------------


def error_contract(code: str, *, method: str, path: str, retry_after: int | None, retryable: bool) -> Contract:
    """The contract of an error; retry actions point at the request that failed."""
    return contract(_error_actions(code, method, path, retry_after), retryable=retryable)


def _error_actions(code: str, method: str, path: str, retry_after: int | None) -> list[Action]:
    if code in ("missing_api_key", "invalid_api_key"):
        return [register_key()]
    if code == "quota_exhausted":
        return [buy_credits(), check_capabilities()]
    if code == "storage_limit_reached":
        return [
            action(
                "delete_output",
                "Delete one or more existing outputs to free storage, then retry with the same Idempotency-Key.",
                "DELETE",
                "/v1/outputs/{outputId}",
            ),
            buy_credits(),
            check_capabilities(),
        ]
    if code in ("output_not_found", "idempotency_conflict"):
        description = (
            "The Idempotency-Key was reused with a different payload. Generate a new key and retry."
            if code == "idempotency_conflict"
            else "No such output for this key. Create a new output if you need one."
        )
        return [create_new_output(description)]
    if code == "output_expired":
        return [create_new_output(EXPIRED_DESCRIPTION)]
    if code == "output_deleted":
        return [create_new_output(DELETED_DESCRIPTION)]
    if code == "billing_disabled":
        return [check_capabilities("Billing is disabled here; credits are granted by the server's operator.")]
    if code in ("purchase_not_found",):
        return [action("retry_checkout", "Start a new checkout.", *CHECKOUT)]
    if code == "upload_failed":
        # Whichever request found it (an upload, or a download of a failed output), the fix is the upload.
        return [action("retry_same_request", RETRY_SAME, *CREATE_OUTPUT)]
    if code in ("rate_limited", "server_error", "idempotency_in_flight", "service_unavailable"):
        wait = retry_after if retry_after is not None else 30
        description = {
            "rate_limited": "Rate limit reached. Wait, then retry the same request.",
            "server_error": "An unexpected error occurred. Wait, then retry the same request.",
            "idempotency_in_flight": (
                "A request with this Idempotency-Key is already being processed. "
                "Wait and retry with the same key and payload."
            ),
            "service_unavailable": "A backend (storage, database or PayPal) is unavailable. Wait, then retry.",
        }[code]
        return [action("retry_after_wait", description, method, path, retry_after_seconds=wait)]
    if code == "wrong_method":
        return [_right_method_action(path)]
    return [check_capabilities()]


_OUTPUT_ITEM = re.compile(r"^/v1/outputs/(?P<id>[^/]+)$")


def _right_method_action(path: str) -> Action:
    """For a known path called with the wrong method, the action that uses it correctly."""
    path = path.split("?", 1)[0]
    if path == "/v1/keys/register":
        return register_key()
    if path == "/v1/outputs":
        return create_new_output()
    if path == "/v1/credits/checkout":
        return buy_credits()
    match = _OUTPUT_ITEM.match(path)
    if match:
        return action("get_output", "Read this output's metadata with GET.", "GET", path)
    if path.endswith("/content"):
        return action("download_content", "Download the content with GET.", "GET", path)
    if path.endswith("/share"):
        return action("create_share_link", "Create a share link with POST.", "POST", path)
    return check_capabilities()


# --- upload links (SPEC section 14) ----------------------------------------------------------


def upload_link_contract(upload_url: str, upload_id: str, expires_in_seconds: int | None) -> Contract:
    """A pending upload link: PUT the bytes to it (no key needed)."""
    return contract(
        [
            action(
                "upload_content",
                "PUT the raw bytes to this URL, without the API key (curl -T FILE URL). It accepts one upload.",
                "PUT",
                upload_url,
            ),
            action("get_upload", "Check whether the bytes have arrived.", "GET", f"/v1/uploads/{upload_id}"),
        ],
        expires_in_seconds=expires_in_seconds,
    )


def upload_status_contract(
    status: str, *, upload_id: str, upload_url: str | None, output_id: str | None, expires_in_seconds: int | None
) -> Contract:
    """The contract of ``GET /v1/uploads/{id}``: upload while pending, read the output once completed."""
    if status == "pending" and upload_url is not None:
        return upload_link_contract(upload_url, upload_id, expires_in_seconds)
    if status == "completed" and output_id is not None:
        return contract(
            [
                action("get_output", "Read the output the upload created.", "GET", f"/v1/outputs/{output_id}"),
                action(
                    "download_content",
                    "Download the raw content via the authenticated content endpoint.",
                    "GET",
                    f"/v1/outputs/{output_id}/content",
                ),
            ]
        )
    return contract(
        [
            action(
                "create_new_output",
                "The link expired before any bytes arrived. Repeat the same POST /v1/uploads for a fresh link.",
                "POST",
                "/v1/uploads",
            )
        ]
    )


def compact_contract(full: Contract) -> Contract:
    """The contract as the compact tool results carry it (SPEC section 11's token budget): the same
    flags and the recommended action with its method and endpoint; the alternatives and descriptions
    are left to the full representation (``get_artifact``, or the REST resource)."""
    first = {key: value for key, value in full["next_actions"][0].items() if key != "description"}
    return {**full, "next_actions": [first]}
