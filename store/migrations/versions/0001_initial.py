"""The first schema: accounts, outputs, idempotency slots, rate-limit events, purchases, secrets.

Instants are BIGINT milliseconds since the epoch (UTC) and flags are integers 0/1, so the same
SQL runs unchanged on SQLite and PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("email", sa.String(254)),
        sa.Column("plan_tier", sa.String(20), nullable=False),
        sa.Column("free_remaining", sa.BigInteger, nullable=False),
        sa.Column("credits_remaining", sa.BigInteger, nullable=False),
        sa.Column("storage_used_bytes", sa.BigInteger, nullable=False),
        sa.Column("storage_limit_bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "outputs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("label", sa.String(200)),
        sa.Column("mime_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("public", sa.Integer, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("blob_key", sa.String(120)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.BigInteger),
    )
    op.create_index("outputs_by_account", "outputs", ["account_id", "id"])
    op.create_index("outputs_by_expiry", "outputs", ["status", "expires_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("output_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key"),
    )
    op.create_index("idempotency_by_state", "idempotency_keys", ["state", "heartbeat_at"])
    op.create_table(
        "rate_events",
        sa.Column("bucket", sa.String(120), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("rate_events_by_bucket", "rate_events", ["bucket", "at"])
    op.create_table(
        "purchases",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("pack_id", sa.String(20), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("provider_order_id", sa.String(64), unique=True),
        sa.Column("capture_id", sa.String(64), unique=True),
        sa.Column("credits_added", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("purchases_by_account", "purchases", ["account_id", "id"])
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    for table in ("server_secrets", "purchases", "rate_events", "idempotency_keys", "outputs", "accounts"):
        op.drop_table(table)
