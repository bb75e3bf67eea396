#!/usr/bin/env bash
# The tests under sanitizers, and the fuzz targets, for CI:
#
#   asan  build-asan/: clang 14 at -O0, AddressSanitizer + UndefinedBehaviorSanitizer
#         (LeakSanitizer included) with libFuzzer's coverage (TIERSERVE_FUZZ) in every
#         library, so one build serves the tests and the fuzz targets; then every
#         ctest test there but the ones left out below;
#   fuzz  each fuzz target of build-asan/ for FUZZ_SECONDS (default 10) over its seed
#         corpus (scripts/fuzz.sh; run `asan` first);
#   tsan  build-tsan/: ThreadSanitizer (clang 14, -O0, the kernels at -O1), only
#         the binaries of the threaded parts, and their tests: the thread pool,
#         scheduler, engine (KV blocks, batching), copy streams, streamer and
#         offload, and the server's unit and CLI tests. Not the integration tests
#         (the daemon under gRPC): gRPC 1.51's core is uninstrumented and
#         ThreadSanitizer reports races inside it (FilterStackCall, slices, the TCP
#         client) that it cannot see synchronized; those runs need gRPC built with
#         ThreadSanitizer. Measured on 2 cores with other work running: build
#         167 s from scratch (gcc took 343 s), tests 52-71 s.
#
#   scripts/sanitize.sh [asan] [fuzz] [tsan]     (default: all, in that order,
#                                                 as .ci/run runs them)
#   JOBS=N: ninja -j (default nproc); CTEST_JOBS=N: ctest -j (default nproc).
#
# Left out of the runs: tests labelled `timing` assert peak or returned
# resident memory (VmHWM, RSS), which a sanitizer's shadow memory and
# allocator quarantine make meaningless (the plain run in scripts/test.sh keeps
# them); tests labelled `gpu` report skipped without a device anyway. Left out
# of both runs too: the model-scale tests (MODEL_SCALE_TESTS, and in the
# integration scripts those marked model_scale, which CMake's
# TIERSERVE_SKIP_MODEL_SCALE turns off in sanitizer builds), which run SmolLM2's
# 135 M parameters through code that their tiny-model instantiations run as
# well, and took 33 min under ASan (the plain run keeps them; one of them,
# cli.generate_chat_answers_paris, stays here for the real GGUF file's path).
#
# -O0 but the kernels at -O1 (TIERSERVE_KERNELS_OPTIMIZATION): clang compiles
# the whole instrumented build at -O0 about 4x faster than gcc at -O1 (measured
# on this project: 290 s against 1,213 s on 2 cores; all the libraries at -O1
# cost 200 s more); the kernels' -O1 keeps the daemon serving SmolLM2 in
# integration.daemon within its timeout.
#
# No report is lost: every sanitized process, the test binaries and the daemons
# that the integration tests start (and often SIGKILL) alike, writes its reports
# to files under <build>/sanitizer-logs (log_path), and a run with any report
# there fails and prints it, whatever the exit code of the test that started it.
#
# Suppressions (scripts/sanitizers/*.supp) name frames of Debian's
# uninstrumented libraries only, each with the reason; tierserve's own races and
# leaks are fixed, never suppressed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
CTEST_JOBS=${CTEST_JOBS:-$(nproc)}
SUPP=$ROOT/scripts/sanitizers
PHASES=("$@")
[ ${#PHASES[@]} -gt 0 ] || PHASES=(asan fuzz tsan)

# The ctest names of the model-scale tests (see above).
MODEL_SCALE_TESTS='smollm2|SmolLm2|^cli\.generate_(int8|nf4_double_quant|fp4)_answers_paris$|^integration\.batching$'

# The ctest names (gtest suites; a TEST_P's name carries its instantiation
# before a /) that ThreadSanitizer runs from runtime/: every suite that
# starts threads or runs the engine.
TSAN_RUNTIME_TESTS='(^|/)(ThreadPoolTest|SchedulerTest|EngineTest|BatchingTest|TinyBatchingTest|CopyStreamTest|SimCopyStreamTest|BufferTest|DeviceTest|SimDeviceTest|StreamerTest|OffloadTest|OffloadErrorTest|SimCapacityTest|BatchInvarianceTest)\.'
# The tests of server/ that ThreadSanitizer leaves out besides the model-scale
# ones (ctest -E): the daemon under gRPC (see tsan above), and `tierserve
# health` against no daemon, a gRPC client whose channel teardown races
# inside Debian's uninstrumented libgrpc/libabsl_status as ThreadSanitizer
# sees it (three different reports in three CI runs: a status payload freed
# after an atomic unref, Status::UnrefNonInlined, an LB picker's destructor).
TSAN_SERVER_EXCLUDE='^integration\.|^cli\.health_without_a_daemon$'

bash scripts/setup.sh
bash scripts/fetch_model.sh

# -g1: line tables for the reports' stacks.
configure_tsan() {  # DIR
  # A cache from before the build moved to clang would keep gcc.
  if [ -f "$1/CMakeCache.txt" ] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang++-14' "$1/CMakeCache.txt"; then
    rm -rf "$1"
  fi
  cmake -S . -B "$1" -G Ninja -DTIERSERVE_SANITIZE=thread \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O0 -g1" -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" \
    -DTIERSERVE_KERNELS_OPTIMIZATION=-O1 \
    -DTIERSERVE_CUDA=OFF -DTIERSERVE_BUILD_BENCH=OFF >/dev/null
}
configure_asan() {  # DIR
  # A cache from before the build moved to clang would keep gcc.
  if [ -f "$1/CMakeCache.txt" ] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang++-14' "$1/CMakeCache.txt"; then
    rm -rf "$1"
  fi
  cmake -S . -B "$1" -G Ninja -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O0 -g1" -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" \
    -DTIERSERVE_KERNELS_OPTIMIZATION=-O1 \
    -DTIERSERVE_FUZZ=ON -DTIERSERVE_CUDA=OFF -DTIERSERVE_BUILD_BENCH=OFF >/dev/null
}

# Fails, printing them, when the processes of the run left reports in LOGS.
check_reports() {  # LOGS
  local reports
  reports=$(find "$1" -type f 2>/dev/null | sort)
  [ -z "$reports" ] && return 0
  echo "sanitize: $(echo "$reports" | wc -l) sanitizer report(s) in $1:" >&2
  for f in $reports; do
    echo "==== $f" >&2
    cat "$f" >&2
  done
  return 1
}

run_asan() {
  local dir=build-asan logs=$ROOT/build-asan/sanitizer-logs
  local t0=$SECONDS status=0
  configure_asan "$dir" || return 1
  # The build runs each test binary (gtest discovery) under these options too.
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:print_stacktrace=1:strict_string_checks=1:check_initialization_order=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0"
  ninja -C "$dir" -j "$JOBS" || return 1
  local built=$SECONDS
  rm -rf "$logs" && mkdir -p "$logs"
  ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$logs/asan" UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$logs/ubsan" \
    ctest --test-dir "$dir" --output-on-failure -j "$CTEST_JOBS" -LE 'timing|gpu' \
      -E "$MODEL_SCALE_TESTS" || status=1
  check_reports "$logs" || status=1
  echo "sanitize: asan: build $((built - t0)) s, tests $((SECONDS - built)) s" >&2
  return $status
}

run_fuzz() {
  local t0=$SECONDS status=0
  BUILD_DIR=build-asan FUZZ_SECONDS=${FUZZ_SECONDS:-10} FUZZ_CONFIGURED=1 bash scripts/fuzz.sh || status=1
  echo "sanitize: fuzz: $((SECONDS - t0)) s" >&2
  return $status
}

run_tsan() {
  local dir=build-tsan logs=$ROOT/build-tsan/sanitizer-logs
  local t0=$SECONDS
  configure_tsan "$dir" || return 1
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp"
  ninja -C "$dir" -j "$JOBS" runtime_tests server_tests metrics_tests tierserve || return 1
  local built=$SECONDS
  rm -rf "$logs" && mkdir -p "$logs"
  local status=0
  TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$logs/tsan" \
    ctest --test-dir "$dir/runtime" --output-on-failure -j "$CTEST_JOBS" -LE 'timing|gpu' \
      -R "$TSAN_RUNTIME_TESTS" -E "$MODEL_SCALE_TESTS" || status=1
  TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$logs/tsan" \
    ctest --test-dir "$dir/server" --output-on-failure -j "$CTEST_JOBS" -LE 'timing|gpu' \
      -E "$MODEL_SCALE_TESTS|$TSAN_SERVER_EXCLUDE" || status=1
  check_reports "$logs" || status=1
  echo "sanitize: tsan: build $((built - t0)) s, tests $((SECONDS - built)) s" >&2
  return $status
}

# The phases run in `|| status=1` lists, where bash ignores set -e inside the
# function: each phase returns its own failures explicitly.
status=0
for phase in "${PHASES[@]}"; do
  case "$phase" in
    asan) run_asan || status=1 ;;
    fuzz) run_fuzz || status=1 ;;
    tsan) run_tsan || status=1 ;;
    *) echo "sanitize: unknown phase $phase (asan, fuzz, tsan)" >&2; exit 2 ;;
  esac
done
exit $status
