"""the audit log's hash chain per community; entries already there are
chained in id order

Revision ID: 0012
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from kapok.cloud import auditchain

    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    op.create_index("ix_audit_log_community_id", "audit_log", ["community_id", "id"], unique=False)
    log = sa.table(
        "audit_log",
        sa.column("id", sa.BigInteger),
        sa.column("at", sa.Float),
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("target", sa.String),
        sa.column("community_id", sa.Integer),
        sa.column("detail", sa.JSON),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )
    bind = op.get_bind()
    last: dict = {}
    rows = bind.execute(sa.select(log).order_by(log.c.id)).mappings().all()
    for row in rows:
        prev = last.get(row["community_id"], auditchain.GENESIS)
        h = auditchain.entry_hash(
            prev,
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            target=row["target"],
            community=row["community_id"],
            detail=row["detail"],
        )
        bind.execute(log.update().where(log.c.id == row["id"]).values(prev_hash=prev, hash=h))
        last[row["community_id"]] = h


def downgrade() -> None:
    op.drop_index("ix_audit_log_community_id", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
