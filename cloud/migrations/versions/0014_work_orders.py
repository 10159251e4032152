"""work orders and their timeline (notes, photos, state changes)

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNFINISHED = sa.text("state NOT IN ('done', 'cancelled')")


def _fk(table: str, column: str, other: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{other}.id"], name=op.f(f"fk_{table}_{column}_{other}")
    )


def upgrade() -> None:
    op.create_table(
        "work_orders",
        sa.Column("id", BigId, nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", BigId, nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.String(length=16), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        _fk("work_orders", "alarm_id", "alarms"),
        _fk("work_orders", "assignee_id", "users"),
        _fk("work_orders", "community_id", "communities"),
        _fk("work_orders", "device_id", "devices"),
        _fk("work_orders", "unit_id", "units"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
    )
    op.create_index(op.f("ix_work_orders_alarm_id"), "work_orders", ["alarm_id"])
    op.create_index(op.f("ix_work_orders_assignee_id"), "work_orders", ["assignee_id"])
    op.create_index("ix_work_orders_community_state", "work_orders", ["community_id", "state"])
    op.create_index(
        "uq_work_orders_alarm_unfinished",
        "work_orders",
        ["alarm_id"],
        unique=True,
        sqlite_where=UNFINISHED,
        postgresql_where=UNFINISHED,
    )
    op.create_table(
        "work_order_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("order_id", BigId, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("photo_type", sa.String(length=32), nullable=True),
        sa.Column("photo_size", sa.Integer(), nullable=True),
        sa.Column("photo", sa.LargeBinary(), nullable=True),
        _fk("work_order_events", "order_id", "work_orders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_events")),
    )
    op.create_index(op.f("ix_work_order_events_order_id"), "work_order_events", ["order_id"])


def downgrade() -> None:
    op.drop_table("work_order_events")
    op.drop_table("work_orders")
