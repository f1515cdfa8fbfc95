#!/usr/bin/env bash
# The static checks CI runs before the tests (make check; make test runs it first):
# ruff lint, ruff format check, mypy (pyproject.toml [tool.mypy]), import-linter (the layering
# contracts in pyproject.toml). Every check runs, in this order, so one run shows every problem;
# the script fails if any of them failed and names each one that did.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

for tool in ruff mypy lint-imports; do
  if [ ! -x "$BIN/$tool" ]; then
    echo "check.sh: $BIN/$tool not found: install the dev extra (make install, or $BIN/pip install -e '.[test,pulp,dev]')" >&2
    exit 1
  fi
done

failed=()
run() {
  local name=$1
  shift
  echo "== $name: $*"
  if ! "$@"; then
    echo "check failed: $name ($*)" >&2
    failed+=("$name")
  fi
}

run "ruff check" "$BIN/ruff" check .
run "ruff format" "$BIN/ruff" format --check .
run "mypy" "$BIN/mypy"
run "import-linter" "$BIN/lint-imports"

if [ ${#failed[@]} -gt 0 ]; then
  echo "checks failed: ${failed[*]}" >&2
  exit 1
fi
echo "all checks passed"
