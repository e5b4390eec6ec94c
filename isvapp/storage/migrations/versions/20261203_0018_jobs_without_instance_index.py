"""jobs: no index on instance_id

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 07:40:00

The instance page was its only reader, and it now finds an instance's jobs through its events and
licenses (the jobs are keyed by their ids, and the jobs' unique index names the key first). Each
order's two jobs had written a page of this index on a random key (the marketplace's businessId).
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_jobs_instance", table_name="jobs")


def downgrade():
    op.create_index("ix_jobs_instance", "jobs", ["instance_id"])
