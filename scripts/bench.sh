#!/usr/bin/env bash
# Measure isvapp on this machine and rewrite BENCHMARKS.md (about 12 minutes; --quick: seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh test
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "bench: wrk is missing: sudo apt-get install wrk" >&2
    exit 1
  fi
fi
exec .venv/bin/python -m bench "$@"
