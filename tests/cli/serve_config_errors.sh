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
checks=0
expect_error() {
  local name=$1 key=$2
  checks=$((checks + 1))
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

# This build has no CUDA compute path behind its kernel table, so cuda:N
# placements and budgets are refused whether or not a GPU is present (the
# absence of a GPU itself is tested at the device layer:
# CudaDeviceAvailabilityTest.NoDeviceMeansCuda0IsUnavailable).
expect_error cuda_placement_not_in_this_build 'models[0].device_map["model.layers.0-1"]' "
models:
  - name: tiny
    path: $MODEL
    device_map:
      model.embed_tokens: cpu
      model.layers.0-1: cuda:0
      model.norm: cpu
      lm_head: cpu"

quant_error() {  # NAME KEY QUANTIZATION-MAP
  expect_error "$1" "models[0].quantization.$2" "
models:
  - name: tiny
    path: $MODEL
    quantization: $3"
}
expect_error both_8_and_4_bit "models[0].quantization: load_in_8bit and load_in_4bit" "
models:
  - name: tiny
    path: $MODEL
    quantization: {load_in_8bit: true, load_in_4bit: true}"
quant_error unknown_quant_type bnb_4bit_quant_type "{load_in_4bit: true, bnb_4bit_quant_type: nf3}"
quant_error negative_threshold llm_int8_threshold "{load_in_8bit: true, llm_int8_threshold: -1}"
quant_error unknown_compute_dtype bnb_4bit_compute_dtype "{load_in_4bit: true, bnb_4bit_compute_dtype: fp8}"
quant_error threshold_without_mode llm_int8_threshold "{llm_int8_threshold: 4}"
expect_error unknown_activation_precision "models[0].activation_precision" "
models:
  - name: tiny
    path: $MODEL
    activation_precision: int4"
expect_error unknown_kv_cache_dtype "models[0].kv_cache_dtype" "
models:
  - name: tiny
    path: $MODEL
    kv_cache_dtype: q8_0"
expect_error int8_activations_with_quantization "models[0].activation_precision" "
models:
  - name: tiny
    path: $MODEL
    quantization: {load_in_4bit: true}
    activation_precision: int8"

expect_error precision_not_makeable 'models[0].device_map.lm_head.precision' "
models:
  - name: tiny
    path: $MODEL
    device_map:
      \"\": cpu
      lm_head: {device: cpu, precision: q4_0}"

expect_error map_over_max_memory "models[0].max_memory" "
models:
  - name: tiny
    path: $MODEL
    max_memory: {cpu: 1KiB}"

expect_error auto_without_room "models[0].device_map" "
models:
  - name: tiny
    path: $MODEL
    device_map: auto
    max_memory: {cpu: 64KiB}"

expect_error cuda_budget_not_in_this_build "models[0].max_memory[\"cuda:0\"]" "
models:
  - name: tiny
    path: $MODEL
    device_map: auto
    max_memory: {cuda:0: 1GiB}"

expect_error max_memory_not_a_size "models[0].max_memory.cpu" "
models:
  - name: tiny
    path: $MODEL
    device_map: auto
    max_memory: {cpu: lots}"

expect_error disk_without_offload_folder "models[0].device_map[\"model.layers.0\"]" "
models:
  - name: tiny
    path: $MODEL
    device_map: {\"\": cpu, model.layers.0: disk}"

# A FIFO given as the config must not block start-up (nothing ever writes to it).
checks=$((checks + 1))
mkfifo "$tmp/fifo.yaml"
timeout 20 "$BIN" serve --config "$tmp/fifo.yaml" --listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0 \
  >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || ! grep -qF "$tmp/fifo.yaml: not a regular file" "$tmp/err"; then
  echo "FAIL fifo_config: exit code $rc:"; cat "$tmp/err"; failures=$((failures + 1))
else
  echo "ok   fifo_config: $(cat "$tmp/err")"
fi

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
