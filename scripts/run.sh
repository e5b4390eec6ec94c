#!/usr/bin/env bash
# Start isvapp: a virtual environment, instance/config.py (generated once), the schema (init-db
# applies pending migrations), the background worker, and gunicorn. Ctrl-C (or SIGTERM) stops both.
# "serving on ..." is printed only once gunicorn answers; a busy address ends the run at once.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
bind="${ISVAPP_BIND:-127.0.0.1:8000}"
if ! .venv/bin/python - "$bind" <<'PY'
import socket, sys
host, _, port = sys.argv[1].rpartition(":")
try:
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host.strip("[]") or "0.0.0.0", int(port)))
except OSError:
    sys.exit(1)
PY
then
  echo "isvapp: $bind is already in use: stop what listens there, or choose another address with ISVAPP_BIND (e.g. ISVAPP_BIND=127.0.0.1:8001 ./scripts/run.sh)" >&2
  exit 1
fi
.venv/bin/isvapp init-config
.venv/bin/isvapp init-db
.venv/bin/isvapp worker &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT
.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app &
server=$!
trap 'kill -TERM "$server" "$worker" 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
url="http://${bind}"
for _ in $(seq 1 150); do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "isvapp: gunicorn stopped before serving (see the lines above)" >&2
    exit 1
  fi
  if .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/healthz', timeout=1)" "$url" 2>/dev/null; then
    echo "isvapp: serving on $url, worker pid $worker (Ctrl-C stops)"
    .venv/bin/isvapp next-steps "$url"
    break
  fi
  sleep 0.2
done
wait -n "$server" "$worker"
