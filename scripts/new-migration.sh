#!/usr/bin/env bash
# Write the next schema migration from the difference between the models and the migrations.
#
#   scripts/new-migration.sh "add licenses table"
#
# Upgrades a scratch SQLite database to the newest migration, lets Alembic compare it with
# isvapp/storage/models.py, and writes isvapp/storage/migrations/versions/<date>_<NNNN>_<slug>.py (NNNN = next
# number). Read the file before committing: autogenerate misses renames and data moves. Then
# `./scripts/test.sh -k migrations` proves the migrations rebuild exactly the models' schema.
set -euo pipefail
cd "$(dirname "$0")/.."
message="${1:?usage: scripts/new-migration.sh \"what changed\"}"
. scripts/venv.sh test
last="$(find isvapp/storage/migrations/versions -name "*.py" | sed -n 's/.*_\([0-9]\{4\}\)_.*/\1/p' | sort | tail -n 1)"
next="$(printf '%04d' $((10#${last:-0} + 1)))"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export ISVAPP_SECRET_KEY=scratch-key-for-a-throwaway-database-0123456789 ISVAPP_INSTANCE_PATH="$scratch" ISVAPP_SQLALCHEMY_DATABASE_URI="sqlite:///$scratch/scratch.sqlite"
.venv/bin/isvapp db upgrade
.venv/bin/isvapp db migrate --rev-id "$next" -m "$message"
find isvapp/storage/migrations/versions -name "*_${next}_*.py" | grep . || echo "no schema change: nothing written" >&2
