"""Which rate-limit family each use case counts against, and each family's budget (SPEC section 9).

REST routes and MCP tools name their use case and ask this table for its family, so a read, a share,
a listing or a delete spends the same budget through either door. Uploads and registrations are
counted inside their own transactions (store/idempotency.py, store/accounts.py), not here.
"""

from __future__ import annotations

from typing import Final, Literal

from store.settings import RateLimits

RateFamily = Literal["reads", "deletes", "credits", "discovery"]
UseCase = Literal[
    "list_outputs",
    "read_output",
    "read_content",
    "share",
    "create_upload_link",
    "upload_status",
    "delete_output",
    "balance",
    "checkout",
    "verify_purchase",
    "discovery",
]

# Share links and upload links count as reads (docs/DECISIONS.md, "Rate-limit families").
FAMILIES: Final[dict[UseCase, RateFamily]] = {
    "list_outputs": "reads",
    "read_output": "reads",
    "read_content": "reads",
    "share": "reads",
    "create_upload_link": "reads",
    "upload_status": "reads",
    "delete_output": "deletes",
    "balance": "credits",
    "checkout": "credits",
    "verify_purchase": "credits",
    "discovery": "discovery",
}

HOUR_SECONDS = 3600
MINUTE_SECONDS = 60


def family_of(use_case: UseCase) -> RateFamily:
    """The rate-limit family ``use_case`` counts against."""
    return FAMILIES[use_case]


def budget(limits: RateLimits, family: RateFamily) -> tuple[int, int]:
    """How many requests of ``family`` one subject may make, and in how many seconds (a rolling window)."""
    if family == "reads":
        return limits.reads_per_hour, HOUR_SECONDS
    if family == "deletes":
        return limits.deletes_per_hour, HOUR_SECONDS
    if family == "credits":
        return limits.credits_per_hour, HOUR_SECONDS
    return limits.discovery_per_minute, MINUTE_SECONDS
