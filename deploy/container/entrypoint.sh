#!/bin/sh
# The image's entrypoint (Containerfile): what `podman run IMAGE [COMMAND]` does.
#
#   serve (default)  a SECRET_KEY (written into the instance volume on the first start when none is
#                    set anywhere), pending migrations (init-db), then gunicorn on $ISVAPP_BIND
#   worker           waits for the SECRET_KEY the server writes, init-db, then the background worker
#   healthcheck      the image's HEALTHCHECK: GET /healthz on the server; the worker's is its process
#   anything else    `isvapp ARGS` (create-admin NAME, jobs list, backup PATH ...), or the program
#                    named (sh, python3)
#
# init-db may run in both containers and on several hosts at once: it takes a lock (a PostgreSQL
# advisory lock, or a file lock beside the SQLite database), so migrations run one at a time.
set -eu

instance="${ISVAPP_INSTANCE_PATH:-/srv/isvapp/instance}"
config="$instance/config.py"

say() { echo "isvapp: $*" >&2; }

# The reason SECRET_KEY is not fit to serve with (empty when it is): from the environment, or the
# instance folder's config.py, as create_app reads them.
secret_key_problem() {
  python3 - "$config" <<'PY'
import os, sys
from isvapp.config import secret_key_problem
value = os.environ.get("ISVAPP_SECRET_KEY")
if value is None and os.path.exists(sys.argv[1]):
    scope = {}
    try:
        exec(compile(open(sys.argv[1], "rb").read(), sys.argv[1], "exec"), scope)
    except Exception as error:  # a file still being written, or a mistake in it
        print(f"{sys.argv[1]} cannot be read ({type(error).__name__}: {error})")
        sys.exit()
    value = scope.get("SECRET_KEY")
print(secret_key_problem(value) or "")
PY
}

writable_instance() {
  if [ ! -w "$instance" ]; then
    say "the instance folder $instance is not writable by uid $(id -u): give the volume to that uid" \
      "(a host folder: chown $(id -u):$(id -g) DIR, or podman's -v DIR:$instance:U)"
    exit 1
  fi
}

case "${1:-serve}" in
serve)
  writable_instance
  if [ -z "${ISVAPP_SECRET_KEY:-}" ] && [ ! -e "$config" ]; then
    # What scripts/run.sh does on a host: a new SECRET_KEY (and a development KOO_ACCESS_KEY) in
    # the instance folder, mode 600, never overwritten. Here the folder is the volume, so the key
    # lives as long as the volume does, and the worker, mounting the same volume, reads it too.
    isvapp init-config | grep -v '^Development KOO_ACCESS_KEY' >&2
    say "no SECRET_KEY was set, so a new one was written to $config, in the instance volume." \
      "Keep that volume (and back it up): the key seals the buyers' stored passwords. Or set" \
      "ISVAPP_SECRET_KEY (the same value in every container, at least 32 characters)."
    if [ -z "${ISVAPP_KOO_ACCESS_KEY:-}" ]; then
      say "KOO_ACCESS_KEY is a development key for now: set ISVAPP_KOO_ACCESS_KEY to the Key the Seller" \
        "Console shows for this product."
    fi
  fi
  problem="$(secret_key_problem)"
  if [ -n "$problem" ]; then
    say "$problem"
    say "in a container: set ISVAPP_SECRET_KEY, or put SECRET_KEY into $config in the instance volume."
    exit 3
  fi
  isvapp init-db >&2
  exec gunicorn -c /opt/isvapp/gunicorn.conf.py wsgi:app
  ;;
worker)
  writable_instance
  # The server writes the SECRET_KEY on its first start; wait for it rather than make another.
  waited=0
  wait_s=120
  while problem="$(secret_key_problem)" && [ -n "$problem" ]; do
    if [ "$waited" -ge "$wait_s" ]; then
      say "$problem"
      say "the worker needs the server's SECRET_KEY: start the server first on the same instance volume," \
        "or set ISVAPP_SECRET_KEY to the same value in both containers."
      exit 3
    fi
    [ "$waited" = 0 ] && say "waiting up to ${wait_s} s for the server to write the SECRET_KEY into $config"
    sleep 2
    waited=$((waited + 2))
  done
  isvapp init-db >&2
  exec isvapp worker
  ;;
healthcheck)
  # PID 1 is gunicorn (serve) or the worker. The worker is checked by its process: it exits on
  # what it cannot survive, and the restart policy starts it again; the server's go-live page and
  # the worker_silent alert watch its heartbeat.
  if ! tr '\0' ' ' </proc/1/cmdline | grep -q gunicorn; then
    exit 0
  fi
  exec python3 - "${ISVAPP_BIND:-0.0.0.0:8000}" <<'PY'
import sys, urllib.request
port = sys.argv[1].rpartition(":")[2]
with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as answer:
    sys.exit(0 if answer.status == 200 else 1)
PY
  ;;
*)
  case "$(command -v "$1" 2>/dev/null || true)" in
  /*) exec "$@" ;;  # a program (sh, python3, gunicorn), not a shell builtin such as `jobs`
  esac
  exec isvapp "$@"
  ;;
esac
