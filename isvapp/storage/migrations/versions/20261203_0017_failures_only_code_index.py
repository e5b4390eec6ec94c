"""callbacks: the result-code index becomes an index of the answers that were not success, by time

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 07:30:00

Most callbacks are answered success, and every query of the result-code index looks for recent
failures (the callbacks page's filter on one failing code names both terms), so a partial index
of the failures by time (WHERE result_code <> '000000') serves them all, newest first without a
sort, and a successful callback's write transaction writes one index page fewer
(models._where_set says why that matters).
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_callbacks_code_received", table_name="callbacks")
    where = sa.text("result_code <> '000000'")
    op.create_index(
        "ix_callbacks_failed_received", "callbacks", ["received_at"], sqlite_where=where, postgresql_where=where
    )


def downgrade():
    op.drop_index("ix_callbacks_failed_received", table_name="callbacks")
    op.create_index("ix_callbacks_code_received", "callbacks", ["result_code", "received_at"])
