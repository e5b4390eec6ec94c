"""api_tokens: a token's scopes, and the product or key it is for

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 17:00:00

A token made before this has none of the three (NULL): it keeps working as it did, for every
scope and any product (the API tokens page shows it as such). Issue 33, review point 5.
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scopes", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("product_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("key_fingerprint", sa.String(length=24), nullable=True))


def downgrade():
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("key_fingerprint")
        batch_op.drop_column("product_id")
        batch_op.drop_column("scopes")
