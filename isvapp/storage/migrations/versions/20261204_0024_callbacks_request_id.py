"""callbacks.request_id: the request id the answer's X-Request-Id and the log lines carry

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 18:00:00

A nullable column, added in place (SQLite's ALTER TABLE ADD COLUMN does not copy the table):
rows logged before it have none.
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("callbacks", sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_column("request_id")
