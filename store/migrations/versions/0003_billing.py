"""Billing: one row per PayPal capture ever applied, so a capture credits at most once.

The primary key on ``capture_id`` is the exactly-once guard: crediting inserts the capture
(``INSERT … ON CONFLICT DO NOTHING``) in the same transaction that adds the credits, and only the
transaction whose insert took effect credits anything, whichever process or delivery it was.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_captures",
        sa.Column("capture_id", sa.String(64), primary_key=True),
        sa.Column("purchase_id", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("billing_captures_by_purchase", "billing_captures", ["purchase_id"])


def downgrade() -> None:
    op.drop_table("billing_captures")
