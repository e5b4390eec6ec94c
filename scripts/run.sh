#!/usr/bin/env bash
# Start isvapp: a virtual environment, instance/config.py (generated once), the schema (init-db
# applies pending migrations), gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
.venv/bin/flask --app isvapp init-config
.venv/bin/flask --app isvapp init-db
echo "isvapp: serving on http://${ISVAPP_BIND:-127.0.0.1:8000} (Ctrl-C stops)"
exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
