// Timing one kernel call the way the kernel benchmarks do: the fastest of five
// rounds, since other tenants of a shared machine only ever slow a round down.
#ifndef TIERSERVE_BENCH_TIME_PER_CALL_H_
#define TIERSERVE_BENCH_TIME_PER_CALL_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>

namespace tierserve {

// Seconds per call of fn(copy): calls cycle through `copies` weight copies
// (enough to overflow the last-level cache, so weights stream from memory as
// in a forward pass). Five rounds of min_seconds / 5 each (at least one call);
// the fastest round's mean is reported.
inline double TimePerCall(const std::function<void(int)>& fn, int copies, double min_seconds) {
  using Clock = std::chrono::steady_clock;
  fn(0);
  int64_t calls = 0;
  double best = 1e30;
  for (int round = 0; round < 5; ++round) {
    int64_t n = 0;
    const auto t0 = Clock::now();
    double elapsed = 0;
    do {
      fn(static_cast<int>(++calls % copies));
      ++n;
      elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (elapsed < min_seconds / 5);
    best = std::min(best, elapsed / static_cast<double>(n));
  }
  return best;
}

}  // namespace tierserve

#endif  // TIERSERVE_BENCH_TIME_PER_CALL_H_
