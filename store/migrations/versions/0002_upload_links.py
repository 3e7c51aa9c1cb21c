"""Upload links (SPEC section 14): one row per signed PUT link, keyed by its Idempotency-Key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_links",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        # SHA-256 of the creation request's fields, to tell a repeated creation from a conflicting one.
        sa.Column("fingerprint", sa.String(64), nullable=False),
        # The upload fields as sent (wire names, JSON), replayed into the upload when the bytes arrive.
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("sha256", sa.String(64)),
        sa.Column("output_id", sa.String(40)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("account_id", "idempotency_key", name="upload_links_by_key"),
    )


def downgrade() -> None:
    op.drop_table("upload_links")
