#!/usr/bin/env bash
# el-larq's commands on a fresh machine (Python 3.11 with pip; apt-get for the data):
#   ./run.sh demo [flags]         the main job: train EL-ResNet26 on Fashion-MNIST, convert to
#                                 LCE, verify, benchmark (flags go to train/main_job.py)
#   ./run.sh test [pytest args]   set up, lint, run the test suite
#   ./run.sh setup                only create/refresh the virtual environment
#   ./run.sh data                 only install Fashion-MNIST (Debian's dataset-fashion-mnist)
#   ./run.sh smoke-oldest         build .venv-oldest with the lowest versions setup.cfg allows
#                                 and run the smoke tests (pytest -m smoke) in it
# Set-up is idempotent: the venv is rebuilt only when a file it installs from changes
# (setup.cfg, pyproject.toml, constraints.txt, reference-requirements.txt).
set -euo pipefail
cd "$(dirname "$0")"
VENV=${EL_LARQ_VENV:-.venv}
PY=$VENV/bin/python

setup() {
  local want have=""
  want=$(cat setup.cfg pyproject.toml constraints.txt reference-requirements.txt | sha256sum | cut -d' ' -f1)
  [ -f "$VENV/.el-larq-setup" ] && have=$(cat "$VENV/.el-larq-setup")
  if [ "$want" != "$have" ] || ! "$PY" -c "import el_larq" >/dev/null 2>&1; then
    local python=${PYTHON:-python3.11}
    command -v "$python" >/dev/null || python=python3
    "$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' || {
      echo "el-larq needs Python 3.11 (TensorFlow 2.19 + larq-compute-engine 0.16 wheels)" >&2
      exit 1
    }
    echo "==> setting up $VENV (TensorFlow / tf-keras / larq / LCE as in constraints.txt; a few minutes)"
    [ -x "$PY" ] || "$python" -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
    # The exact known-good versions (constraints.txt) within setup.cfg's ranges.
    "$PY" -m pip install -q -c constraints.txt -e ".[test,plot]"
    # larq-zoo's QuickNets as reference rows (its own pins conflict: el_larq/reference.py)
    "$PY" -m pip install -q --no-deps -c constraints.txt -r reference-requirements.txt
    echo "$want" > "$VENV/.el-larq-setup"
  fi
}

# The lowest version of every requirement that setup.cfg bounds from below, as pins.
oldest_constraints() {
  "$1" - <<'PY'
import configparser
import re

config = configparser.ConfigParser()
config.read("setup.cfg")
for line in config["options"]["install_requires"].splitlines():
    match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)", line)
    if match:
        print(f"{match[1]}=={match[2]}")
PY
}

# A separate venv with the oldest versions setup.cfg declares; runs the smoke tests there.
smoke_oldest() {
  local venv=.venv-oldest python=${PYTHON:-python3.11}
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  oldest_constraints "$venv/bin/python" > "$venv/oldest-constraints.txt"
  echo "==> installing the oldest declared versions into $venv:" $(cat "$venv/oldest-constraints.txt")
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -c "$venv/oldest-constraints.txt" -e ".[test,plot]"
  "$venv/bin/python" -m pip list 2>/dev/null | grep -iE "^(tensorflow|tf.keras|larq|larq.compute.engine|numpy|keras) "
  exec "$venv/bin/python" -m pytest -n 0 -m smoke "$@"
}

fashion_mnist() {
  local dir=${EL_LARQ_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
  ls "$dir"/train-images-idx3-ubyte* >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
    apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    echo "==> installing Fashion-MNIST with sudo (Debian package dataset-fashion-mnist)"
    sudo apt-get update -q >/dev/null && sudo apt-get install -y -q dataset-fashion-mnist >/dev/null
  fi
  ls "$dir"/train-images-idx3-ubyte* >/dev/null 2>&1 || {
    echo "Fashion-MNIST not found in $dir. Install it with 'apt-get install dataset-fashion-mnist'" >&2
    echo "(Debian/Ubuntu), or put the four *-ubyte.gz IDX files in a folder and set" >&2
    echo "EL_LARQ_FASHION_MNIST_DIR to it." >&2
    exit 1
  }
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  data) fashion_mnist ;;
  smoke-oldest) smoke_oldest "$@" ;;
  demo)
    setup
    fashion_mnist
    export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
    exec "$PY" train/main_job.py "$@"
    ;;
  test)
    setup
    "$VENV/bin/ruff" check .
    exec "$PY" -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh {demo|test|setup|data|smoke-oldest} [args]" >&2
    exit 2
    ;;
esac
