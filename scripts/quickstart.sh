#!/usr/bin/env bash
# Set up litesr and run the main job on the built-in sample image (the README's first Quick start command).
# Writes litesr_demo/: the low-resolution input, the x2 upscale and a side-by-side comparison with bicubic.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
litesr upscale --demo --output litesr_demo "$@"
