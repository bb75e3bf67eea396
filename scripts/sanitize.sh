#!/usr/bin/env bash
# The tests under sanitizers, for CI:
#
#   asan  build-asan/: everything with AddressSanitizer + UndefinedBehaviorSanitizer
#         (LeakSanitizer included), then every ctest test there;
#   tsan  build-tsan/: ThreadSanitizer, only the binaries of the threaded parts,
#         and their tests: the thread pool, scheduler, engine (KV blocks, batching),
#         copy streams, streamer and offload, the server's unit tests, and the
#         daemon end to end (the Python integration tests of server/ against the
#         ThreadSanitizer daemon; see TSAN_SERVER_EXCLUDE for the ones left out).
#
#   scripts/sanitize.sh [asan] [tsan]     (default: both, in that order)
#   JOBS=N: ninja -j (default nproc); CTEST_JOBS=N: ctest -j (default nproc).
#
# Left out of both runs, with -LE: tests labelled `timing` assert wall-clock
# overlap or peak resident memory (VmHWM), which a sanitizer's slowdown, shadow
# memory and allocator quarantine make meaningless (the plain run in
# scripts/test.sh keeps them); tests labelled `gpu` report skipped without a
# device anyway.
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
[ ${#PHASES[@]} -gt 0 ] || PHASES=(asan tsan)

# The ctest names (gtest suites; a TEST_P's name carries its instantiation
# before a /) that ThreadSanitizer runs from runtime/: every suite that
# starts threads or runs the engine.
TSAN_RUNTIME_TESTS='(^|/)(ThreadPoolTest|SchedulerTest|EngineTest|BatchingTest|TinyBatchingTest|CopyStreamTest|SimCopyStreamTest|BufferTest|DeviceTest|SimDeviceTest|StreamerTest|OffloadTest|OffloadErrorTest|SimCapacityTest|BatchInvarianceTest)\.'
# The tests of server/ that ThreadSanitizer leaves out (ctest -E).
TSAN_SERVER_EXCLUDE='^$'

bash scripts/setup.sh
bash scripts/fetch_model.sh

configure() {  # DIR SANITIZERS
  cmake -S . -B "$1" -G Ninja -DTIERSERVE_SANITIZE="$2" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1" \
    -DTIERSERVE_CUDA=OFF -DTIERSERVE_BUILD_BENCH=OFF >/dev/null
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
  configure "$dir" address,undefined
  # The build runs each test binary (gtest discovery) under these options too.
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:print_stacktrace=1:strict_string_checks=1:check_initialization_order=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0"
  ninja -C "$dir" -j "$JOBS"
  local built=$SECONDS
  rm -rf "$logs" && mkdir -p "$logs"
  ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$logs/asan" UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$logs/ubsan" \
    ctest --test-dir "$dir" --output-on-failure -j "$CTEST_JOBS" -LE 'timing|gpu' || status=1
  check_reports "$logs" || status=1
  echo "sanitize: asan: build $((built - t0)) s, tests $((SECONDS - built)) s" >&2
  return $status
}

run_tsan() {
  local dir=build-tsan logs=$ROOT/build-tsan/sanitizer-logs
  local t0=$SECONDS
  configure "$dir" thread
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp"
  ninja -C "$dir" -j "$JOBS" runtime_tests server_tests metrics_tests tierserve
  local built=$SECONDS
  rm -rf "$logs" && mkdir -p "$logs"
  local status=0
  TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$logs/tsan" \
    ctest --test-dir "$dir/runtime" --output-on-failure -j "$CTEST_JOBS" -LE 'timing|gpu' \
      -R "$TSAN_RUNTIME_TESTS" || status=1
  TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$logs/tsan" \
    ctest --test-dir "$dir/server" --output-on-failure -j "$CTEST_JOBS" -LE 'timing|gpu' \
      -E "$TSAN_SERVER_EXCLUDE" || status=1
  check_reports "$logs" || status=1
  echo "sanitize: tsan: build $((built - t0)) s, tests $((SECONDS - built)) s" >&2
  return $status
}

status=0
for phase in "${PHASES[@]}"; do
  case "$phase" in
    asan) run_asan || status=1 ;;
    tsan) run_tsan || status=1 ;;
    *) echo "sanitize: unknown phase $phase (asan, tsan)" >&2; exit 2 ;;
  esac
done
exit $status
