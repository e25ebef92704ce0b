#!/usr/bin/env bash
# el-larq's commands on a fresh machine (Python 3.11 with pip; apt-get for the data):
#   ./run.sh test [pytest args]   set up, lint, run the test suite
#   ./run.sh setup                only create/refresh the virtual environment
# Set-up is idempotent: the venv is rebuilt only when setup.cfg or pyproject.toml change.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${EL_LARQ_VENV:-.venv}
PY=$VENV/bin/python

setup() {
  local want have=""
  want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
  [ -f "$VENV/.el-larq-setup" ] && have=$(cat "$VENV/.el-larq-setup")
  if [ "$want" != "$have" ] || ! "$PY" -c "import el_larq" >/dev/null 2>&1; then
    local python=${PYTHON:-python3.11}
    command -v "$python" >/dev/null || python=python3
    "$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' || {
      echo "el-larq needs Python 3.11 (TensorFlow 2.19 + larq-compute-engine 0.16 wheels)" >&2
      exit 1
    }
    echo "==> setting up $VENV (pinned TensorFlow 2.19.1 / tf-keras / larq / LCE; a few minutes)"
    [ -x "$PY" ] || "$python" -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -e ".[test]"
    echo "$want" > "$VENV/.el-larq-setup"
  fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  test)
    setup
    "$VENV/bin/ruff" check .
    exec "$PY" -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh {test|setup} [args]" >&2
    exit 2
    ;;
esac
