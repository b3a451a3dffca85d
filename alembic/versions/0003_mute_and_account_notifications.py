"""mute and account notifications

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import alerts.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("orders_rule_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("balances_rule_id", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("held", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("muted_until", alerts.db.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("muted_until")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("held")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("balances_rule_id")
        batch_op.drop_column("orders_rule_id")
