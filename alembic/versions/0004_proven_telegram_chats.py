"""proven telegram chats and link codes

Telegram destinations may name only chats their owner proved. Existing destinations that are
provably the owner's (their own private chat) stay as they are; every other Telegram
destination is disabled with a reason the owner can read, until the chat is linked again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import alerts.db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNPROVEN = (
    "this chat was never proven yours: send /start (as an administrator) or /link CODE in it "
    "(a code from POST /v1/destinations/telegram-links), then enable this destination again"
)


def upgrade() -> None:
    op.create_table(
        "telegram_chats",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("proof", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("proven_at", alerts.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "chat_id"),
    )
    op.create_table(
        "telegram_link_codes",
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", alerts.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", alerts.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    with op.batch_alter_table("telegram_link_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telegram_link_codes_user_id"), ["user_id"], unique=False
        )

    destinations = sa.table(
        "destinations",
        sa.column("user_id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("chat_id", sa.BigInteger()),
        sa.column("enabled", sa.Boolean()),
        sa.column("disabled_reason", sa.String()),
    )
    users = sa.table("users", sa.column("id", sa.Integer()), sa.column("telegram_user_id"))
    own_chat = (
        sa.select(users.c.id)
        .where(users.c.id == destinations.c.user_id)
        .where(users.c.telegram_user_id == destinations.c.chat_id)
    )
    op.execute(
        destinations.update()
        .where(destinations.c.kind == "telegram")
        .where(~sa.exists(own_chat))
        .values(enabled=False, disabled_reason=UNPROVEN)
    )


def downgrade() -> None:
    with op.batch_alter_table("telegram_link_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_link_codes_user_id"))
    op.drop_table("telegram_link_codes")
    op.drop_table("telegram_chats")
