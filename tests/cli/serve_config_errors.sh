#!/usr/bin/env bash
# `tierserve serve` on bad configs: each must exit non-zero before listening,
# with a single error line naming the file and the key path.
set -u
BIN=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
MODEL=$(pwd)/tests/data/tiny_llama

# expect_error NAME KEYPATH YAML
expect_error() {
  local name=$1 key=$2
  printf '%s\n' "$3" >"$tmp/$name.yaml"
  timeout 20 "$BIN" serve --config "$tmp/$name.yaml" --listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0 \
    >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
    echo "FAIL $name: exit code $rc"; failures=$((failures + 1)); return
  fi
  if [ "$lines" -ne 1 ]; then
    echo "FAIL $name: expected one error line, got $lines:"; cat "$tmp/err"; failures=$((failures + 1)); return
  fi
  if ! grep -qF -- "$tmp/$name.yaml: $key" "$tmp/err"; then
    echo "FAIL $name: message does not name the file and $key:"; cat "$tmp/err"; failures=$((failures + 1)); return
  fi
  echo "ok   $name: $(cat "$tmp/err")"
}

expect_error unknown_key "server.listn" "
server:
  listn: 127.0.0.1:50051
models:
  - name: tiny
    path: $MODEL"

expect_error missing_model_path "models[0].path" "
models:
  - name: tiny
    path: $tmp/no-such-model.gguf"

expect_error unplaced_module "models[0].device_map" "
models:
  - name: tiny
    path: $MODEL
    device_map:
      model.embed_tokens: cpu
      model.layers.0: cpu
      model.norm: cpu
      lm_head: cpu"

expect_error gpu_placement_without_gpu 'models[0].device_map["model.layers.0-1"]' "
models:
  - name: tiny
    path: $MODEL
    device_map:
      model.embed_tokens: cpu
      model.layers.0-1: cuda:0
      model.norm: cpu
      lm_head: cpu"

expect_error int8_not_yet "models[0].quantization.load_in_8bit" "
models:
  - name: tiny
    path: $MODEL
    quantization:
      load_in_8bit: true"

echo "$((5 - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
