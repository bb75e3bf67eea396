#!/usr/bin/env bash
# The main job on a fresh machine: install, build, fetch the default model,
# start the daemon with deploy/tierserve.yaml, answer a sample request over
# gRPC, and keep serving (Ctrl-C or SIGTERM stops it gracefully).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash scripts/fetch_model.sh
bash proto/gen_python.sh >/dev/null

log=$(mktemp)
build/server/tierserve serve --config deploy/tierserve.yaml 2>"$log" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon; rm -f "$log"' EXIT INT TERM
for _ in $(seq 600); do
  grep -q "^tierserve: serving" "$log" && break
  kill -0 $daemon 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
cat "$log" >&2

echo "sample request: What is the capital of France?" >&2
/usr/bin/python3 examples/stream_client.py --server 127.0.0.1:50051 --model smollm2 --chat \
  "What is the capital of France?"

echo "tierserve is serving on 0.0.0.0:50051 (metrics on :9464/metrics); Ctrl-C stops it." >&2
wait $daemon
