#!/usr/bin/env bash
# Start isvapp: a virtual environment, instance/config.py (generated once), the schema (init-db
# applies pending migrations), the background worker, and gunicorn. Ctrl-C (or SIGTERM) stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
.venv/bin/flask --app isvapp init-config
.venv/bin/flask --app isvapp init-db
.venv/bin/flask --app isvapp worker &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT
echo "isvapp: serving on http://${ISVAPP_BIND:-127.0.0.1:8000}, worker pid $worker (Ctrl-C stops)"
.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app &
server=$!
trap 'kill -TERM "$server" "$worker" 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
wait -n "$server" "$worker"
