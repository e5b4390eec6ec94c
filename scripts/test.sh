#!/usr/bin/env bash
# Run the whole test suite in .venv (made on first use): once on SQLite, then once more on a
# throwaway PostgreSQL server (scripts/with-postgres.sh; ISVAPP_TEST_POSTGRES=0 skips that run).
# Extra arguments go to pytest, in both runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh test
# The page tests drive Debian's Chromium (Playwright never downloads a browser here) with a CJK
# font so Chinese pages render in the screenshots; the benchmark's smoke test drives wrk. All
# come from Debian's packages when missing.
missing=""
command -v chromium >/dev/null || missing="$missing chromium"
command -v wrk >/dev/null || missing="$missing wrk"
[ -d /usr/share/fonts/opentype/noto ] && ls /usr/share/fonts/opentype/noto | grep -qi cjk || missing="$missing fonts-noto-cjk"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing$missing from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "test: missing$missing: sudo apt-get install$missing" >&2
    exit 1
  fi
fi
echo "== tests on SQLite" >&2
env -u ISVAPP_SQLALCHEMY_DATABASE_URI .venv/bin/python -m pytest "$@"
if [ "${ISVAPP_TEST_POSTGRES:-1}" != 0 ]; then
  echo "== tests on PostgreSQL" >&2
  bash scripts/with-postgres.sh .venv/bin/python -m pytest "$@"
fi
