"""the merchant's own simulation, marked: callbacks, instances and license codes

The simulator marks every request it sends (isvapp.koo.simulated). The go-live page shows what it
did as "simulated here", apart from the Seller Console's debugging, which alone makes a scenario
ready; a simulated order's details are not asked of the marketplace. Rows from before are not
simulated (server default false).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

FLAGGED = ("callbacks", "instances", "license_codes")


def upgrade():
    for table in FLAGGED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("simulated", sa.Boolean(), server_default=sa.text("false"), nullable=False))


def downgrade():
    for table in reversed(FLAGGED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("simulated")
