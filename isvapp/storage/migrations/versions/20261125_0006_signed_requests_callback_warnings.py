"""signed-request replay store, callback warnings and key fingerprints, wider free-text columns

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 04:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "signed_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "nonce", name="uq_signed_requests_scope_nonce"),
        sa.UniqueConstraint("scope", "token", name="uq_signed_requests_scope_token"),
    )
    with op.batch_alter_table("signed_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signed_requests_seen_at"), ["seen_at"], unique=False)
    with op.batch_alter_table("nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nonces_seen_at"))
    op.drop_table("nonces")
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warnings", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("key_fingerprint", sa.String(length=24), nullable=True))
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.alter_column(
            "charging_mode", existing_type=sa.String(length=16), type_=sa.String(length=32), existing_nullable=True
        )
        batch_op.alter_column(
            "period_type", existing_type=sa.String(length=16), type_=sa.String(length=32), existing_nullable=True
        )


def downgrade():
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.alter_column(
            "period_type", existing_type=sa.String(length=32), type_=sa.String(length=16), existing_nullable=True
        )
        batch_op.alter_column(
            "charging_mode", existing_type=sa.String(length=32), type_=sa.String(length=16), existing_nullable=True
        )
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_column("key_fingerprint")
        batch_op.drop_column("warnings")
    op.create_table(
        "nonces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "nonce", name="uq_nonces_scope_nonce"),
    )
    with op.batch_alter_table("nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nonces_seen_at"), ["seen_at"], unique=False)
    with op.batch_alter_table("signed_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signed_requests_seen_at"))
    op.drop_table("signed_requests")
