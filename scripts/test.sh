#!/usr/bin/env bash
# Install what is missing (scripts/setup.sh), then run the test suite and the linter.
# Extra arguments go to pytest, e.g. `./scripts/test.sh -x -k audio`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${SPEECHRNN_VENV:-.venv}

./scripts/setup.sh

status=0
"$VENV/bin/pytest" "$@" || status=$?
echo "ruff check"
"$VENV/bin/ruff" check . || status=$((status ? status : 1))
exit "$status"
