#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang 14, ASan + UBSan, see
# TIERSERVE_FUZZ in CMakeLists.txt) and runs each for FUZZ_SECONDS over a
# copy of its seed corpus tests/fuzz/corpus/<target>/ (the repository's
# corpus is never written). Fails if any target finds a crash, a sanitizer
# report, a leak, a timeout (> 10 s per input) or an input using > 2 GiB;
# the input is kept in $BUILD_DIR/fuzz-run/<target>/ and the log names it.
#
#   BUILD_DIR=build-fuzz  JOBS=$(nproc)  FUZZ_SECONDS=20  FUZZ_TARGETS="gguf_reader ..."
#   FUZZ_CONFIGURED=1  (BUILD_DIR configured already, as scripts/sanitize.sh fuzz does)
#
# A longer run by hand, keeping what it finds in a corpus of your own:
#   build-fuzz/tests/fuzz/gguf_reader_fuzz -dict=tests/fuzz/gguf_reader.dict \
#     -rss_limit_mb=2048 -timeout=10 /tmp/gguf_corpus tests/fuzz/corpus/gguf_reader
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
ALL="gguf_reader safetensors_reader tokenizer_json model_config_json yaml_config chat_template"
ALL+=" request_validation"
read -r -a TARGETS <<<"${FUZZ_TARGETS:-$ALL}"

# Debug with -O1: assertions stay on, and the build is quicker than -O2.
# FUZZ_CONFIGURED=1: BUILD_DIR is already configured with TIERSERVE_FUZZ=ON
# (scripts/sanitize.sh's asan build, -O0), build and run only.
if [ -z "${FUZZ_CONFIGURED:-}" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
    -DTIERSERVE_FUZZ=ON -DTIERSERVE_CUDA=OFF -DTIERSERVE_BUILD_TESTS=OFF -DTIERSERVE_BUILD_BENCH=OFF \
    >/dev/null
fi
ninja -C "$BUILD_DIR" -j "$JOBS" $(printf '%s_fuzz ' "${TARGETS[@]}")

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run="$BUILD_DIR/fuzz-run"
rm -rf "$run"
failed=()
printf '%-20s %12s %10s %8s %8s %s\n' target executions exec/s cov ft result
for t in "${TARGETS[@]}"; do
  dir="$run/$t"
  mkdir -p "$dir/corpus"
  cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
  args=(-max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
        -artifact_prefix="$dir/")
  [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
  result=ok
  if ! "$BUILD_DIR/tests/fuzz/${t}_fuzz" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1; then
    result="FAILED (log: $dir/log)"
    failed+=("$t")
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
  printf '%-20s %12s %10s %8s %8s %s\n' "$t" "${execs:--}" "${speed:--}" "${cov:--}" "${ft:--}" "$result"
done
if ((${#failed[@]})); then
  for t in "${failed[@]}"; do
    echo "== $t"
    grep -E 'ERROR|SUMMARY|invariant|Test unit written|^    #[0-9]' "$run/$t/log" | head -30
  done
  echo "fuzz: ${#failed[@]} target(s) found a problem: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, ${FUZZ_SECONDS} s each, no finding"
