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
  # The IQA reference libraries for tests/test_metrics_*.py; their package imports need torchvision/cv2, so they
  # install without dependencies and tests/metrics_reference_libs.py loads only their metric modules
  python -m pip install --quiet --no-deps pyiqa==0.1.16 piq==0.8.0 lpips==0.1.4
  # spandrel reads SRFormer through its extra (non-commercial) architectures package
  python -m pip install --quiet --no-deps spandrel-extra-arches==0.2.0
  # The studio's browser tests drive Debian's chromium through playwright (no browser download); without it they skip
  # and say why.
  as_root=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then as_root="sudo -n"; fi
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    { $as_root apt-get update -qq &&
      $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
      >/dev/null 2>&1 || echo "setup.sh: could not install chromium; the studio's browser tests will be skipped" >&2
  fi
fi
