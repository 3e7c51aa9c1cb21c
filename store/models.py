"""The single source of the database schema: every table, as SQLModel table models.

Each model states its columns, types, nullability, keys and indexes exactly as the migrations in
``store/migrations/versions`` create them on SQLite and PostgreSQL; those migrations (0001 to 0003) ran on
deployed databases and never change. Alembic's ``env.py`` takes :data:`SCHEMA_METADATA` as its target,
so a future migration is generated from a change here (``alembic revision --autogenerate``) and
``tests/store/test_schema.py`` proves that the models and the migrations agree on both databases.

The models declare; they do not run queries. The hot path keeps its raw SQL (``store/db.py`` says why)
and takes its column lists from here (:func:`column_list`); a statement naming a table or column the
models lack fails ``tests/store/test_sql_names.py``.

Conventions the migrations chose, kept here: instants are BIGINT milliseconds since the epoch (UTC),
flags are INTEGER 0/1, ids are ``<prefix>_<ULID>`` strings of at most 40 characters, and there are no
foreign keys, checks or server defaults (every value is written by the store).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class SchemaModel(SQLModel, registry=registry()):
    """Base of the store's tables: its own registry and metadata, shared with no other SQLModel user."""


class AccountRow(SchemaModel, table=True):
    __tablename__ = "accounts"

    id: str = Field(sa_type=String(40), primary_key=True)
    # SHA-256 of the API key (hex); the key itself is never stored.
    key_hash: str = Field(sa_type=String(64), unique=True)
    email: str | None = Field(default=None, sa_type=String(254))
    plan_tier: str = Field(sa_type=String(20))
    free_remaining: int = Field(sa_type=BigInteger)
    credits_remaining: int = Field(sa_type=BigInteger)
    storage_used_bytes: int = Field(sa_type=BigInteger)
    storage_limit_bytes: int = Field(sa_type=BigInteger)
    created_at: int = Field(sa_type=BigInteger)


class OutputRow(SchemaModel, table=True):
    __tablename__ = "outputs"
    __table_args__ = (
        Index("outputs_by_account", "account_id", "id"),
        Index("outputs_by_expiry", "status", "expires_at"),
    )

    id: str = Field(sa_type=String(40), primary_key=True)
    account_id: str = Field(sa_type=String(40))
    status: str = Field(sa_type=String(10))
    label: str | None = Field(default=None, sa_type=String(200))
    mime_type: str = Field(sa_type=String(100))
    size_bytes: int = Field(sa_type=BigInteger)
    sha256: str | None = Field(default=None, sa_type=String(64))
    public: int = Field(sa_type=Integer)
    # The column is named ``metadata``, which SQLAlchemy reserves as a class attribute.
    user_metadata: str = Field(sa_type=Text, sa_column_kwargs={"name": "metadata"})
    blob_key: str | None = Field(default=None, sa_type=String(120))
    created_at: int = Field(sa_type=BigInteger)
    expires_at: int = Field(sa_type=BigInteger)
    deleted_at: int | None = Field(default=None, sa_type=BigInteger)


class IdempotencyKeyRow(SchemaModel, table=True):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "key"),
        Index("idempotency_by_state", "state", "heartbeat_at"),
    )

    account_id: str = Field(sa_type=String(40))
    key: str = Field(sa_type=String(255))
    state: str = Field(sa_type=String(10))
    fingerprint: str | None = Field(default=None, sa_type=String(64))
    output_id: str = Field(sa_type=String(40))
    created_at: int = Field(sa_type=BigInteger)
    heartbeat_at: int = Field(sa_type=BigInteger)


class RateEventRow(SchemaModel, table=True):
    """One counted request. The table has no primary key (rows are only counted and pruned); the
    mapper is told to identify rows by (bucket, at), which changes nothing in the table."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("rate_events_by_bucket", "bucket", "at"),)
    __mapper_args__ = {"primary_key": ("bucket", "at")}

    bucket: str = Field(sa_type=String(120))
    at: int = Field(sa_type=BigInteger)


class PurchaseRow(SchemaModel, table=True):
    __tablename__ = "purchases"
    __table_args__ = (Index("purchases_by_account", "account_id", "id"),)

    id: str = Field(sa_type=String(40), primary_key=True)
    account_id: str = Field(sa_type=String(40))
    pack_id: str = Field(sa_type=String(20))
    status: str = Field(sa_type=String(12))
    provider_order_id: str | None = Field(default=None, sa_type=String(64), unique=True)
    capture_id: str | None = Field(default=None, sa_type=String(64), unique=True)
    credits_added: int = Field(sa_type=BigInteger)
    created_at: int = Field(sa_type=BigInteger)
    updated_at: int = Field(sa_type=BigInteger)


class ServerSecretRow(SchemaModel, table=True):
    __tablename__ = "server_secrets"

    name: str = Field(sa_type=String(40), primary_key=True)
    value: str = Field(sa_type=String(128))


class UploadLinkRow(SchemaModel, table=True):
    """One signed PUT link (SPEC section 14), keyed by its Idempotency-Key."""

    __tablename__ = "upload_links"
    __table_args__ = (UniqueConstraint("account_id", "idempotency_key", name="upload_links_by_key"),)

    id: str = Field(sa_type=String(40), primary_key=True)
    account_id: str = Field(sa_type=String(40))
    idempotency_key: str = Field(sa_type=String(255))
    # SHA-256 of the creation request's fields, to tell a repeated creation from a conflicting one.
    fingerprint: str = Field(sa_type=String(64))
    # The upload fields as sent (wire names, JSON), replayed into the upload when the bytes arrive.
    fields: str = Field(sa_type=Text)
    size_bytes: int | None = Field(default=None, sa_type=BigInteger)
    sha256: str | None = Field(default=None, sa_type=String(64))
    output_id: str | None = Field(default=None, sa_type=String(40))
    created_at: int = Field(sa_type=BigInteger)
    expires_at: int = Field(sa_type=BigInteger)


class BillingCaptureRow(SchemaModel, table=True):
    """One PayPal capture ever applied; its primary key is the exactly-once guard of crediting."""

    __tablename__ = "billing_captures"
    __table_args__ = (Index("billing_captures_by_purchase", "purchase_id"),)

    capture_id: str = Field(sa_type=String(64), primary_key=True)
    purchase_id: str = Field(sa_type=String(40))
    outcome: str = Field(sa_type=String(12))
    amount: str = Field(sa_type=String(32))
    currency: str = Field(sa_type=String(8))
    created_at: int = Field(sa_type=BigInteger)


SCHEMA_METADATA: MetaData = SchemaModel.metadata


def table_of(model: type[SchemaModel]) -> Table:
    """The table a model declares."""
    return SCHEMA_METADATA.tables[str(model.__tablename__)]


def column_list(model: type[SchemaModel], *, leave_out: tuple[str, ...] = ()) -> str:
    """The model's column names in table order, comma-separated, for a raw ``SELECT``/``INSERT``.

    Names in ``leave_out`` must be columns of the model: a stale name fails at import, not in a query.
    """
    names = [column.name for column in table_of(model).columns]
    unknown = sorted(set(leave_out) - set(names))
    if unknown:
        raise ValueError(f"{model.__name__} has no columns {unknown}")
    return ", ".join(name for name in names if name not in leave_out)
