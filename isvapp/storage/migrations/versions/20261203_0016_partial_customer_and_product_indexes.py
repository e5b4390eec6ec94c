"""instances: the customer and product indexes hold only the rows that have them

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 07:10:00

A G2 newInstance knows no customer or product yet (the order details bring them), so with
partial indexes (WHERE column IS NOT NULL) the order's own write transaction writes three index
pages fewer (models._where_set says why that matters). Every query on these columns compares them
with a value, which implies the condition, so the indexes still serve them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_instances_customer", "customer_id"),
    ("ix_instances_customer_name", "customer_name"),
    ("ix_instances_product", "product_id"),
)


def upgrade():
    for name, column in INDEXES:
        op.drop_index(name, table_name="instances")
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "instances", [column], sqlite_where=where, postgresql_where=where)


def downgrade():
    for name, column in INDEXES:
        op.drop_index(name, table_name="instances")
        op.create_index(name, "instances", [column])
