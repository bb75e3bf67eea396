#include "runtime/engine/scheduler.h"

#include <algorithm>

namespace tierserve {
namespace {

int64_t BlocksFor(int64_t tokens, int64_t block_tokens) { return (tokens + block_tokens - 1) / block_tokens; }

}  // namespace

StepPlan Schedule(const std::vector<ScheduledSequence>& running, const std::vector<ScheduledSequence>& waiting,
                  int64_t free_blocks, const SchedulerOptions& o) {
  const size_t R = running.size();
  auto new_blocks = [&](const ScheduledSequence& s, int64_t n) {
    return std::max<int64_t>(0, BlocksFor(s.num_computed + n, o.block_tokens) - s.num_blocks);
  };
  // Decoding sequences first, then prefilling ones; oldest first in each.
  std::vector<size_t> order;
  for (size_t i = 0; i < R; ++i)
    if (running[i].num_tokens - running[i].num_computed == 1) order.push_back(i);
  for (size_t i = 0; i < R; ++i)
    if (running[i].num_tokens - running[i].num_computed > 1) order.push_back(i);

  StepPlan plan;
  int64_t budget = o.max_step_tokens;
  int64_t free = free_blocks;
  std::vector<int64_t> tokens(R, 0), blocks(R, 0);  // scheduled so far
  std::vector<bool> gone(R, false);
  size_t newest = R;  // running[newest..R) are preempted
  for (size_t i : order) {
    if (gone[i]) continue;
    const ScheduledSequence& s = running[i];
    const int64_t n = std::min(s.num_tokens - s.num_computed, budget);
    if (n <= 0) continue;
    const int64_t need = new_blocks(s, n);
    while (need > free && !gone[i]) {
      const size_t v = --newest;  // the newest still running
      gone[v] = true;
      plan.preempted.push_back(running[v].id);
      // What it held and what this step had granted it come back.
      free += running[v].exclusive_blocks + blocks[v];
      budget += tokens[v];
      tokens[v] = blocks[v] = 0;
    }
    if (gone[i]) continue;
    free -= need;
    budget -= n;
    tokens[i] = n;
    blocks[i] = need;
  }
  for (size_t i : order) {
    if (!gone[i] && tokens[i] > 0) plan.work.push_back({running[i].id, tokens[i]});
  }

  // New sequences, in queue order, while nothing had to be preempted.
  int64_t active = static_cast<int64_t>(newest);
  for (const ScheduledSequence& w : waiting) {
    if (!plan.preempted.empty() || active >= o.max_batch_size || budget <= 0) break;
    const int64_t n = std::min(w.num_tokens - w.num_computed, budget);
    const int64_t need = new_blocks(w, n);
    if (need > free) break;
    free -= need;
    budget -= n;
    ++active;
    plan.admitted.push_back(w.id);
    plan.work.push_back({w.id, n});
  }
  return plan;
}

}  // namespace tierserve
