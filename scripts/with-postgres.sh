#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL server on 127.0.0.1, then stop and delete it.
#
#   scripts/with-postgres.sh COMMAND [ARGS...]
#
# Installs Debian's `postgresql` when its binaries are missing (as root: apt-get update first),
# makes a cluster in a temporary folder owned by an unprivileged user (PostgreSQL refuses to run
# as root: `postgres` when we are root, else ourselves), starts it on a free loopback port, creates
# database `isvapp_test`, and runs COMMAND with ISVAPP_SQLALCHEMY_DATABASE_URI pointing at it (and
# ISVAPP_TEST_PG_*, with which tests/pgctl.py restarts the server to play a database outage).
# The server is stopped and its folder removed however COMMAND ends; COMMAND's status is ours.
set -euo pipefail

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(pg_bin)" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "with-postgres: installing PostgreSQL from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "with-postgres: PostgreSQL is missing: sudo apt-get install postgresql" >&2
    exit 1
  fi
fi
BIN="$(pg_bin)"

if [ "$(id -u)" = 0 ]; then
  owner=postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  owner="$(id -un)"
  as_owner() { "$@"; }
fi

dir="$(mktemp -d /tmp/isvapp-pg.XXXXXX)"
chown "$owner" "$dir"
chmod 700 "$dir"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

cleanup() {
  as_owner "$BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

as_owner "$BIN/initdb" -D "$dir/data" -U isvapp --auth=trust -E UTF8 --no-locale >/dev/null
# Throwaway data: durability off makes the suite faster; many connections for the gunicorn tests.
options="-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off \
  -c full_page_writes=off -c max_connections=300"
as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o "$options" >/dev/null
as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" -U isvapp isvapp_test

export ISVAPP_SQLALCHEMY_DATABASE_URI="postgresql+psycopg://isvapp@127.0.0.1:$port/isvapp_test"
# For tests that stop and start this server (tests/pgctl.py: a database outage): pg_ctl, the
# cluster, its log and start options, and the user to run pg_ctl as (empty: ourselves).
export ISVAPP_TEST_PG_CTL="$BIN/pg_ctl" ISVAPP_TEST_PG_DATA="$dir/data" ISVAPP_TEST_PG_LOG="$dir/server.log"
export ISVAPP_TEST_PG_OPTIONS="$options"
if [ "$(id -u)" = 0 ]; then export ISVAPP_TEST_PG_RUNUSER="$owner"; else export ISVAPP_TEST_PG_RUNUSER=""; fi
echo "with-postgres: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
status=0
"$@" || status=$?
exit "$status"
