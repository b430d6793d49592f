#!/usr/bin/env bash
# Set up and run the test suite (the README's second Quick start command; CI runs this through .ci/run).
# Extra arguments go to pytest: `scripts/test.sh -m slow` runs the long reproductions instead of the fast suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
python -m ruff check litesr tests benchmarks scripts
if [ "$#" -eq 0 ]; then
  set -- -m "not slow"
fi
# One test process per core (tests run one torch thread each; see tests/conftest.py).
python -m pytest -q -p no:cacheprovider -n "${LITESR_TEST_WORKERS:-$(nproc)}" "$@"
