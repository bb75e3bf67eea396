#!/usr/bin/env bash
# The main job on a fresh machine: install, build, fetch the default model and
# answer a sample request with it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash scripts/fetch_model.sh
exec build/server/tierserve generate --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
  --chat --prompt "What is the capital of France?" --max_new_tokens 64
