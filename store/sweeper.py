"""The background sweeper every long-running process runs (``outputlayer serve`` and ``outputlayer mcp``).

Expiry is evaluated on every read, so correctness never waits for it; the sweeper is what hands
the storage of expired outputs back to their accounts and deletes their blobs (SPEC section 7).
"""

from __future__ import annotations

import logging

import anyio

from store.errors import StoreError
from store.service import ArtifactService

log = logging.getLogger("outputlayer.sweeper")


async def run_sweeper(service: ArtifactService, interval_seconds: int) -> None:
    """Expire, clean and prune every ``interval_seconds``; a failed pass is logged and retried next time."""
    while True:
        await anyio.sleep(interval_seconds)
        try:
            report = await service.sweep()
        except StoreError as exc:
            log.warning("sweep skipped: %s", exc.message)
            continue
        except Exception:  # the sweeper must outlive any single bad pass
            log.exception("sweep failed")
            continue
        if report.expired or report.stale_slots or report.blobs_deleted:
            log.info(
                "sweep expired=%d blobs_deleted=%d stale_slots=%d",
                report.expired,
                report.blobs_deleted,
                report.stale_slots,
            )
