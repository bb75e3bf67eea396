#!/usr/bin/env bash
# `tierserve generate` on broken model files: each must exit non-zero with a
# single error line that names the offending file and the problem.
set -u
BIN=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect_error NAME MODEL FILE PATTERN: run on MODEL, expect exit != 0 and one
# stderr line naming FILE and matching PATTERN.
expect_error() {
  local name=$1 model=$2 path=$3 pattern=$4
  "$BIN" generate --model "$model" --prompt hi --max_new_tokens 1 --stats=false >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -eq 0 ]; then
    echo "FAIL $name: exit code 0"; failures=$((failures + 1)); return
  fi
  if [ "$lines" -ne 1 ]; then
    echo "FAIL $name: expected one error line, got $lines:"; cat "$tmp/err"; failures=$((failures + 1)); return
  fi
  if ! grep -qF -- "$path" "$tmp/err" || ! grep -qE -- "$pattern" "$tmp/err"; then
    echo "FAIL $name: message does not name $path and /$pattern/:"; cat "$tmp/err"; failures=$((failures + 1)); return
  fi
  echo "ok   $name: $(cat "$tmp/err")"
}

# A truncated GGUF file.
head -c 4096 tests/data/tiny_llama_gguf/tiny_llama_f32.gguf >"$tmp/truncated.gguf"
expect_error truncated_gguf "$tmp/truncated.gguf" "$tmp/truncated.gguf" "truncated|past the end|end of file"

# A GGUF whose tensor data lies past the end of the file (the header is intact).
size=$(stat -c %s tests/data/tiny_llama_gguf/tiny_llama_f32.gguf)
head -c $((size - 1000)) tests/data/tiny_llama_gguf/tiny_llama_f32.gguf >"$tmp/short_data.gguf"
expect_error gguf_offsets_past_end "$tmp/short_data.gguf" "$tmp/short_data.gguf" "past the end"

# config.json missing a field.
cp -r tests/data/tiny_llama "$tmp/missing_field"
python3 - "$tmp/missing_field/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); del c["hidden_size"]; json.dump(c, open(p, "w"))
PY
expect_error config_missing_field "$tmp/missing_field" "$tmp/missing_field/config.json" "missing required field \"hidden_size\""

# An unknown architecture.
cp -r tests/data/tiny_llama "$tmp/unknown_arch"
python3 - "$tmp/unknown_arch/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["architectures"] = ["FalconForCausalLM"]; json.dump(c, open(p, "w"))
PY
expect_error unknown_architecture "$tmp/unknown_arch" "$tmp/unknown_arch/config.json" "unknown architecture \"FalconForCausalLM\""

# A tokenizer.json that is not JSON.
cp -r tests/data/tiny_llama "$tmp/bad_tokenizer"
echo '{"model": {"type": "BPE", ' >"$tmp/bad_tokenizer/tokenizer.json"
expect_error tokenizer_not_json "$tmp/bad_tokenizer" "$tmp/bad_tokenizer/tokenizer.json" "not (valid )?JSON|parse error"

# A safetensors file with a lying header length.
cp -r tests/data/tiny_llama "$tmp/bad_safetensors"
python3 - "$tmp/bad_safetensors/model.safetensors" <<'PY'
import struct, sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[0:8] = struct.pack("<Q", len(b) * 2); open(p, "wb").write(b)
PY
expect_error safetensors_header_past_end "$tmp/bad_safetensors" "$tmp/bad_safetensors/model.safetensors" "header"

# Counts read from the file are bounded before they size anything: a u32
# metadata value of 0xFFFFFFFF in the tiny GGUF (block_count, then
# context_length) must be refused with the key, not abort on bad_alloc.
patch_u32() {  # SRC DST KEY VALUE: DST is SRC with the u32 metadata KEY set to VALUE
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import struct, sys
src, dst, key, value = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
b = bytearray(open(src, "rb").read())
at = b.index(struct.pack("<Q", len(key)) + key) + 8 + len(key)
assert struct.unpack_from("<I", b, at)[0] == 4, "not a u32 value"
struct.pack_into("<I", b, at + 4, value)
open(dst, "wb").write(b)
PY
}
patch_u32 tests/data/tiny_llama_gguf/tiny_llama_f32.gguf "$tmp/layers.gguf" llama.block_count 4294967295
expect_error gguf_block_count_huge "$tmp/layers.gguf" "$tmp/layers.gguf" "number of layers .*4294967295.*at most"
patch_u32 tests/data/tiny_llama_gguf/tiny_llama_f32.gguf "$tmp/context.gguf" llama.context_length 4294967295
expect_error gguf_context_length_huge "$tmp/context.gguf" "$tmp/context.gguf" "max_position_embeddings .*4294967295.*at most"

echo "$((8 - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
