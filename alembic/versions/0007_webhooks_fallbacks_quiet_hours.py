"""webhook destinations, fallback routes, quiet hours

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _flag(name: str) -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean(), server_default=sa.false(), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("destinations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_sealed", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("body", sa.JSON(), nullable=True))

    op.create_table(
        "rule_fallbacks",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("destination_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["destination_id"], ["destinations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rule_id"], ["rules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("rule_id", "destination_id"),
    )
    with op.batch_alter_table("rule_fallbacks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rule_fallbacks_destination_id"), ["destination_id"], unique=False
        )

    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.add_column(_flag("urgent"))

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(_flag("fell_back"))

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(_flag("fallback"))
        batch_op.add_column(sa.Column("hold_reason", sa.String(length=8), nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False)
        )
        batch_op.add_column(sa.Column("quiet_start", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("quiet_end", sa.String(length=5), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("quiet_end")
        batch_op.drop_column("quiet_start")
        batch_op.drop_column("timezone")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("hold_reason")
        batch_op.drop_column("fallback")

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("fell_back")

    with op.batch_alter_table("rules", schema=None) as batch_op:
        batch_op.drop_column("urgent")

    with op.batch_alter_table("rule_fallbacks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rule_fallbacks_destination_id"))
    op.drop_table("rule_fallbacks")

    with op.batch_alter_table("destinations", schema=None) as batch_op:
        batch_op.drop_column("body")
        batch_op.drop_column("secret_sealed")
