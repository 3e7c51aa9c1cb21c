"""Views: how stored rows look on the wire (camelCase resources with their agent_contract)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from store.clock import iso_ms
from store.contract import output_contract

OUTPUT_COLUMNS = (
    "id, account_id, status, label, mime_type, size_bytes, sha256, public, metadata, blob_key, created_at, "
    "expires_at, deleted_at"
)


@dataclass(frozen=True, slots=True)
class Urls:
    """Where this server is reached: the API base and the base of public links."""

    base_url: str
    public_base_url: str


def effective_status(row: dict[str, Any], now_ms: int) -> str:
    """Expiry is evaluated on every read: a ready row past its expiry is expired, swept or not."""
    status: str = row["status"]
    if status == "ready" and row["expires_at"] <= now_ms:
        return "expired"
    return status


def expires_in_seconds(expires_at_ms: int, now_ms: int) -> int | None:
    remaining = (expires_at_ms - now_ms) // 1000
    return remaining if remaining > 0 else None


def output_fields(row: dict[str, Any], status: str, urls: Urls) -> dict[str, Any]:
    ready = status == "ready"
    output_id = row["id"]
    body: dict[str, Any] = {
        "outputId": output_id,
        "status": status,
        "label": row["label"],
        "mimeType": row["mime_type"],
        "sizeBytes": row["size_bytes"],
        "sha256": row["sha256"],
        "createdAt": iso_ms(row["created_at"]),
        "expiresAt": iso_ms(row["expires_at"]),
        "publicUrl": f"{urls.public_base_url}/{output_id}" if ready and row["public"] else None,
        "contentUrl": f"{urls.base_url}/v1/outputs/{output_id}/content" if ready else None,
        "metadata": json.loads(row["metadata"]),
    }
    if status == "deleted" and row["deleted_at"] is not None:
        body["deletedAt"] = iso_ms(row["deleted_at"])
    return body


def render_output(row: dict[str, Any], now_ms: int, urls: Urls) -> dict[str, Any]:
    """The output resource with its contract, in its effective status."""
    status = effective_status(row, now_ms)
    body = output_fields(row, status, urls)
    live = status in ("ready", "failed")
    body["agent_contract"] = output_contract(
        output_id=row["id"],
        status=status,
        public_url=body["publicUrl"],
        expires_in_seconds=expires_in_seconds(row["expires_at"], now_ms) if live else None,
    )
    return body
