"""jobs unique on key then kind

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 06:46:35.451166

The jobs' unique constraint names the key (an event id) first: an event's jobs (provision, and
fetch_order after a G2 order) then sit side by side in one index page, which a newInstance writes
once instead of once per job (bench/NOTES.md, "Time-ordered ids"). Nothing looks jobs up by kind
alone. On SQLite the table is copied (batch mode): about a minute for two million jobs.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_jobs_kind_key"), type_="unique")
        batch_op.create_unique_constraint("uq_jobs_key_kind", ["key", "kind"])


def downgrade():
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_jobs_key_kind", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_jobs_kind_key"), ["kind", "key"])
