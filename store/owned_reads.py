"""The hot-path read of one output by its owner's key: the account and the output in ONE statement.

A metadata GET or a download needs the caller's account (who, and the quota figures every answer
carries in its headers) and the output row. Looked up one after the other they are two round trips;
joined on the key digest and the output id they are one. The row is handed back as an
:class:`OwnedOutput`, which the output use cases take instead of reading the row again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from store.accounts import Account, presented_key_digest
from store.db import ACCOUNT_COLUMNS
from store.errors import StoreError
from store.views import OUTPUT_COLUMNS

if TYPE_CHECKING:
    from store.service import ArtifactService

_OUTPUT_NAMES = tuple(name.strip() for name in OUTPUT_COLUMNS.split(","))
_ACCOUNT_NAMES = tuple(name.strip() for name in ACCOUNT_COLUMNS.split(","))
# Output columns carry an ``o_`` prefix: both tables have ``id`` and ``created_at``.
ACCOUNT_AND_OUTPUT_SQL = (
    "SELECT "
    + ", ".join(f"a.{name}" for name in _ACCOUNT_NAMES)
    + ", "
    + ", ".join(f"o.{name} AS o_{name}" for name in _OUTPUT_NAMES)
    + " FROM accounts a LEFT JOIN outputs o ON o.id = ? AND o.account_id = a.id WHERE a.key_hash = ?"
)


@dataclass(frozen=True, slots=True)
class OwnedOutput:
    """The row of ``output_id`` as its owner's key found it (``None``: no such output of this account)."""

    output_id: str
    row: dict[str, Any] | None


async def authenticate_with_output(
    service: ArtifactService, api_key: str | None, output_id: str
) -> tuple[Account, OwnedOutput]:
    """The account of ``api_key`` and its output ``output_id``, in one statement."""
    digest = presented_key_digest(api_key)
    row = await service.db.one(ACCOUNT_AND_OUTPUT_SQL, (output_id, digest))
    if row is None:
        raise StoreError("invalid_api_key", "The API key is not valid.")
    output = None if row["o_id"] is None else {name: row[f"o_{name}"] for name in _OUTPUT_NAMES}
    return Account.from_row(row), OwnedOutput(output_id, output)
