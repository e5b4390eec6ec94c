#!/usr/bin/env bash
# Run the whole test suite in .venv (made on first use). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh test
exec .venv/bin/python -m pytest "$@"
