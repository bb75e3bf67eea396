#!/usr/bin/env bash
# The test command: installs what is missing, fetches the default model (some
# tests run it), builds, and runs every test with ctest. Tests labelled `gpu`
# report as skipped on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch_model.sh
bash scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
