"""jobs.given_up_by, given_up_at, given_up_reason: a dead job given up on the jobs page (issue 35)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 10:00:00

The merchant gives up a dead job on the jobs page instead of leaving it dead for ever: its state
becomes "given_up" (never claimed again), and who did it, when and why are kept beside its last
error. Three nullable columns; no row changes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("given_up_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("given_up_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("given_up_reason", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("given_up_reason")
        batch_op.drop_column("given_up_at")
        batch_op.drop_column("given_up_by")
