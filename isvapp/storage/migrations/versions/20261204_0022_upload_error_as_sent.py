"""licenses.upload_error: text, to keep the marketplace's resultMsg and extra_info as sent

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 18:00:00

The order query's error page: a failed answer's resultMsg (String 1,024) carries the failure's
detail, to be read with extra_info. 255 characters cut them. Issue 33, "What Huawei's pages
say", point 3.
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.alter_column(
            "upload_error", existing_type=sa.String(length=255), type_=sa.Text(), existing_nullable=True
        )


def downgrade():
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.alter_column(
            "upload_error",
            existing_type=sa.Text(),
            type_=sa.String(length=255),
            existing_nullable=True,
            postgresql_using="left(upload_error, 255)",
        )
