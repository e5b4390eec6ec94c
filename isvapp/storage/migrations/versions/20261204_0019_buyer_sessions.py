"""buyer_sessions: the buyer's login session, ended on the server by logout

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 17:00:00

Until now the buyer's session lived only in its signed cookie, with the IdP's refresh token sealed
inside: logout deleted the browser's copy, and any other copy kept working for 12 hours.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "buyer_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("instance_key", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("refresh_sealed", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    op.create_index("ix_buyer_sessions_expires", "buyer_sessions", ["expires_at"])


def downgrade():
    op.drop_index("ix_buyer_sessions_expires", table_name="buyer_sessions")
    op.drop_table("buyer_sessions")
