"""read-only API keys of outside systems; transaction ids on readings and
alarms for cursors that never skip a late commit

Revision ID: 0009
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the 64-bit id of the inserting transaction (PostgreSQL 13+)
CURRENT_TX = sa.text("(pg_current_xact_id()::text::bigint)")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in ("readings", "alarms"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("tx", sa.BigInteger(), nullable=True))
        if postgres:
            # the default separately, so adding the column does not rewrite
            # the table; rows from before the upgrade come first (tx 0)
            op.alter_column(table, "tx", server_default=CURRENT_TX)
            op.execute(f"UPDATE {table} SET tx = 0 WHERE tx IS NULL")
        op.create_index(f"ix_{table}_tx_id", table, ["tx", "id"], unique=False)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_keys_token_hash")),
    )
    op.create_table(
        "api_key_communities",
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_communities_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_api_key_communities_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", "community_id", name=op.f("pk_api_key_communities")),
    )
    op.create_table(
        "api_key_usage",
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_usage_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", "minute", name=op.f("pk_api_key_usage")),
    )


def downgrade() -> None:
    op.drop_table("api_key_usage")
    op.drop_table("api_key_communities")
    op.drop_table("api_keys")
    for table in ("alarms", "readings"):
        op.drop_index(f"ix_{table}_tx_id", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tx")
