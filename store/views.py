"""Views: how stored rows look on the wire (camelCase resources with their agent_contract)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from store.clock import iso_ms
from store.contract import output_contract
from store.models import OutputRow, column_list

OUTPUT_COLUMNS = column_list(OutputRow)

# Integers orjson may not keep exact (it reads those beyond 64 bits as floats).
_LONG_DIGIT_RUN = re.compile(r"[0-9]{19}")


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


def parse_metadata(text: str) -> Any:
    """The stored metadata column as JSON values (a fresh object every call: callers may change it).

    orjson parses ~6x faster than json, which matters at 100 items a listing page. It differs from
    json on a few documents: it refuses some (lone surrogate escapes, NaN) and reads integers beyond
    64 bits as floats, so a document with a run of 19+ digits or one orjson refuses goes to json.
    """
    if text == "{}":
        return {}
    if _LONG_DIGIT_RUN.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


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
        "metadata": parse_metadata(row["metadata"]),
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
