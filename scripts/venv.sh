# Sourced by run.sh and test.sh: make .venv with isvapp installed (editable), reinstalling only
# when setup.cfg changed. Usage: . scripts/venv.sh [extra]   (extra: "test" for the test tools)
set -euo pipefail
extra="${1:-}"
# isvapp needs Python 3.11 or newer (setup.cfg python_requires): Debian 12 ships 3.11, Ubuntu
# 24.04 3.12; Ubuntu 22.04's 3.10 is too old. Checked before pip, which would only say that no
# version of isvapp matches. ISVAPP_PYTHON names another interpreter (python3.12) for a new .venv.
python="${ISVAPP_PYTHON:-python3}"
[ -x .venv/bin/python ] && python=.venv/bin/python
version=""
command -v "$python" >/dev/null && version="$("$python" --version 2>&1 || true)"
version="${version#Python }"
major="${version%%.*}"
minor="${version#*.}"
minor="${minor%%.*}"
case "$major.$minor" in
  [0-9]*.[0-9]*) ;;
  *) major=0 minor=0 ;;
esac
if [ "$major" -lt 3 ] || { [ "$major" = 3 ] && [ "$minor" -lt 11 ]; }; then
  if [ "$python" = .venv/bin/python ]; then
    what="the Python of .venv/ is ${version:-unknown}; remove .venv/ once a newer one is installed"
  else
    what="$python here is ${version:-not found}"
  fi
  cat >&2 <<EOF
isvapp needs Python 3.11 or newer: $what.
  - Debian 12 (bookworm) ships Python 3.11 and Ubuntu 24.04 ships 3.12:
      apt-get install python3 python3-venv
  - On an older host (Ubuntu 22.04 ships 3.10), either run isvapp's container image
    (README.md, "Deployment"), or install a newer Python beside the system's (Ubuntu: the
    deadsnakes PPA's python3.12 and python3.12-venv; or pyenv, or uv) and name it:
      ISVAPP_PYTHON=python3.12 ./scripts/run.sh
EOF
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    # Debian's python3 ships without venv; install it when we may.
    rm -rf .venv
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
      echo "python3 -m venv failed: install python3-venv (sudo apt-get install python3-venv)" >&2
      exit 1
    fi
    "$python" -m venv .venv
  fi
fi
stamp=".venv/.isvapp-installed${extra:+-$extra}"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".${extra:+[$extra]}"
  touch "$stamp"
fi
