#!/usr/bin/env bash
# Set up and run the test suite (the README's second Quick start command; CI runs this through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
python -m ruff check litesr tests benchmarks
python -m pytest -q -p no:cacheprovider "$@"
