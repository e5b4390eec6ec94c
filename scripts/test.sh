#!/usr/bin/env bash
# Run the static checks (ruff, ruff format, mypy), then the whole test suite in .venv (made on first
# use): on SQLite (with the image test, tests/test_image.py, which runs once per command), and beside
# it on a throwaway PostgreSQL server (scripts/with-postgres.sh; tests marked any_database run on
# SQLite only, and those marked once_beside on PostgreSQL only when the runs are side by side;
# ISVAPP_TEST_POSTGRES=0 skips the PostgreSQL run, ISVAPP_TEST_PARALLEL=0 runs it after the SQLite
# run instead of beside it), measuring coverage of isvapp/ in both (pyproject.toml
# [tool.coverage.*]): one combined report, HTML in artifacts/coverage/. Extra arguments go to
# pytest, in both runs; with none, the total must reach the floor.
#
#   scripts/test.sh --fast [PYTEST ARGS]   the static checks, then the in-process tier: every test
#                                          not marked live (setup.cfg), on SQLite, no coverage
set -euo pipefail
cd "$(dirname "$0")/.."
fast=""
if [ "${1:-}" = --fast ]; then
  fast=1
  shift
fi
. scripts/venv.sh test
echo "== static checks: ruff, ruff format, mypy" >&2
.venv/bin/ruff check isvapp tests bench || { echo "test: ruff found problems (above); pyproject.toml [tool.ruff]" >&2; exit 1; }
.venv/bin/ruff format --check isvapp tests bench || { echo "test: not formatted: run .venv/bin/ruff format isvapp tests bench" >&2; exit 1; }
.venv/bin/mypy || { echo "test: mypy found problems (above); pyproject.toml [tool.mypy]" >&2; exit 1; }
if [ -n "$fast" ]; then
  # No server, process or browser starts here (tests/tiers.py fails a test that tries), so no
  # Chromium, wrk or PostgreSQL is needed.
  echo "== in-process tests on SQLite (not marked live)" >&2
  exec env -u ISVAPP_SQLALCHEMY_DATABASE_URI .venv/bin/python -m pytest -m "not live" "$@"
fi
# The page tests drive Debian's Chromium (Playwright never downloads a browser here) with a CJK
# font so Chinese pages render in the screenshots; the benchmark's smoke test drives wrk; the
# deployment files' tests run nginx, openssl and systemd-analyze, and the self-check's test puts
# nginx in front of gunicorn; the image test builds and runs the image with podman, runc and
# debootstrap (scripts/podman.sh). All come from Debian's packages
# when missing.
missing=""
command -v chromium >/dev/null || missing="$missing chromium"
command -v wrk >/dev/null || missing="$missing wrk"
for tool in nginx openssl systemd-analyze:systemd; do
  command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || missing="$missing ${tool##*:}"
done
podman=""  # not needed as much: without them the image test is skipped, saying why
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || podman="$podman $tool"
done
if [ -n "$podman" ]; then
  if [ "$(id -u)" = 0 ]; then
    missing="$missing$podman"
  else
    echo "test: missing$podman (sudo apt-get install$podman): the image test will be skipped" >&2
  fi
fi
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
# Every process writes its own data file here (the tests start some in other folders); they are
# combined after the runs.
export COVERAGE_FILE="$PWD/.coverage"
rm -f .coverage .coverage.*
rm -rf artifacts/coverage
sqlite_run() { env -u ISVAPP_SQLALCHEMY_DATABASE_URI .venv/bin/python -m coverage run -m pytest "$@"; }
postgres_run() { bash scripts/with-postgres.sh .venv/bin/python -m coverage run -m pytest "$@"; }
floor=""  # pyproject.toml [tool.coverage.report] fail_under, for both runs combined
if [ "${ISVAPP_TEST_POSTGRES:-1}" = 0 ]; then
  echo "== tests on SQLite" >&2
  sqlite_run "$@"
  floor="--fail-under=88"  # SQLite alone (89.4 % reached): the PostgreSQL-only paths are not run
elif [ "${ISVAPP_TEST_PARALLEL:-1}" = 0 ]; then
  echo "== tests on SQLite" >&2
  sqlite_run "$@"
  echo "== tests on PostgreSQL" >&2
  postgres_run "$@"
else
  # Side by side: much of each run is waiting (for servers, workers, a browser, timeouts), so on
  # two cores both take little longer than the longer one. Each line says which run it is from.
  echo "== tests on SQLite and on PostgreSQL, side by side (ISVAPP_TEST_PARALLEL=0: one after the other)" >&2
  (ISVAPP_TEST_POSTGRES_BESIDE=1 sqlite_run "$@" 2>&1 | sed -u 's/^/sqlite   | /') &
  sqlite=$!
  (ISVAPP_TEST_POSTGRES_BESIDE=1 postgres_run "$@" 2>&1 | sed -u 's/^/postgres | /') &
  postgres=$!
  failed=""
  wait "$sqlite" || failed="$failed SQLite"
  wait "$postgres" || failed="$failed PostgreSQL"
  if [ -n "$failed" ]; then
    echo "test: tests failed on$failed (above)" >&2
    exit 1
  fi
fi
echo "== coverage of isvapp/ (lines and branches, subprocesses included)" >&2
.venv/bin/python -m coverage combine -q
# The floor is checked below, for the whole suite only: html and json would apply it to any run.
.venv/bin/python -m coverage html -q --fail-under=0 -d artifacts/coverage
.venv/bin/python -m coverage json -q --fail-under=0 -o artifacts/coverage/coverage.json
.venv/bin/python - <<'PY'
import json
totals = json.load(open("artifacts/coverage/coverage.json"))["totals"]
print(f"coverage: {totals['covered_lines']}/{totals['num_statements']} lines "
      f"({100 * totals['covered_lines'] / totals['num_statements']:.1f} %), "
      f"{totals['covered_branches']}/{totals['num_branches']} branches "
      f"({100 * totals['covered_branches'] / totals['num_branches']:.1f} %); "
      f"combined {totals['percent_covered']:.1f} %; report: artifacts/coverage/index.html")
PY
# With extra arguments only part of the suite ran: the floor is for the whole suite.
if [ "$#" = 0 ] && ! .venv/bin/python -m coverage report --format=total $floor >/dev/null; then
  echo "test: coverage is below the floor (pyproject.toml [tool.coverage.report] fail_under)" >&2
  exit 1
fi
