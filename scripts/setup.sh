#!/usr/bin/env bash
# Install litesr (editable) with the pinned CPU torch; extra arguments pick extras, e.g. `scripts/setup.sh test`.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -c constraints.txt torch
python -m pip install --quiet -c constraints.txt -e ".${extras:+[$extras]}"
if [ "$extras" = "test" ]; then
  # spandrel is a reference implementation for parity tests; its torchvision import is stubbed in tests/conftest.py
  python -m pip install --quiet --no-deps spandrel==0.4.2
fi
