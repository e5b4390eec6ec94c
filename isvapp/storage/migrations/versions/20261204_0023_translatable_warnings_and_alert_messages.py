"""callbacks.warning_notes and alerts.message: texts kept as msgids with parameters (issue 32, zh)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 17:00:00

A callback's warnings and an alert's subject and text were stored as English words, so the
Chinese pages showed them in English. The words stay (the log's text, the CSV export, rows from
before); beside them, the msgid and its parameters, which the pages translate when they are read.
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("callbacks") as batch_op:
        batch_op.add_column(sa.Column("warning_notes", sa.JSON(), nullable=True))
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.add_column(sa.Column("message", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.drop_column("message")
    with op.batch_alter_table("callbacks") as batch_op:
        batch_op.drop_column("warning_notes")
