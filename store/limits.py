"""Every fixed limit of the store that is not a setting, written once.

Settings (store/settings.py) are what an operator may change; these are what the SPEC fixes.
"""

from __future__ import annotations

# A JSON upload body (REST ``application/json``) is at most 1 MB; larger files go as multipart.
JSON_BODY_LIMIT = 1_048_576
# A completed Idempotency-Key is remembered for 7 days (SPEC section 6).
IDEMPOTENCY_RETENTION_MS = 7 * 86_400_000
# An in-flight slot with no progress for OUTPUTLAYER_STALE_UPLOAD_SECONDS (default 60) is reclaimed;
# an upload that is still receiving bytes refreshes its slot six times per such period.
HEARTBEATS_PER_STALE_PERIOD = 6
# Rows one sweeper transaction expires at a time.
SWEEP_BATCH = 200
# The rolling window of per-hour rate limits, in seconds.
READ_WINDOW = 3600
# A share link lives 24 hours unless asked otherwise, and at least 60 seconds (store/sharing.py applies it).
SHARE_DEFAULT_SECONDS = 86_400
SHARE_MIN_SECONDS = 60
