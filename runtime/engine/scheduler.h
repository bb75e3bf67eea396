// Decides, each engine step, which sequences run and how many tokens each
// computes — a pure function of plain data, so it is tested without a model.
//
// The policy (vLLM v1's, with TGI's FIFO):
//  - Running sequences first, oldest first, decoding ones (one token left to
//    compute) before those still prefilling, so a long prompt never stalls
//    decoding: prefill takes what is left of the step's token budget, in
//    chunks.
//  - A sequence that needs a block when none is free preempts the newest
//    running sequence (its blocks are freed; it returns to the front of the
//    queue and is recomputed later), or itself if it is the newest.
//  - Then waiting sequences in FIFO order while the running set is below
//    max_batch_size, budget remains and the blocks for their first chunk are
//    free. The queue is never overtaken: if its head does not fit, nobody
//    behind it starts.
#ifndef TIERSERVE_RUNTIME_ENGINE_SCHEDULER_H_
#define TIERSERVE_RUNTIME_ENGINE_SCHEDULER_H_

#include <cstdint>
#include <vector>

namespace tierserve {

struct SchedulerOptions {
  int64_t max_batch_size = 8;     // sequences running at once
  int64_t max_step_tokens = 512;  // tokens computed per step, all sequences together
  int64_t block_tokens = 16;
};

// What the scheduler needs to know of one sequence.
struct ScheduledSequence {
  int64_t id = 0;
  int64_t num_tokens = 0;    // prompt + generated
  int64_t num_computed = 0;  // tokens in its cache
  int64_t num_blocks = 0;    // blocks its table holds
  // Of those, the blocks no other sequence references: what preempting it
  // frees for sure (shared prefix blocks stay with their other holders).
  int64_t exclusive_blocks = 0;
};

struct StepPlan {
  struct Work {
    int64_t id = 0;
    int64_t num_tokens = 0;  // to compute this step, from num_computed on
    bool operator==(const Work&) const = default;
  };
  // In forward order: every running sequence that computes this step.
  std::vector<Work> work;
  // Waiting sequences that start running (a prefix of the queue).
  std::vector<int64_t> admitted;
  // Running sequences to free and put back at the front of the queue, in
  // the order they were chosen (newest first).
  std::vector<int64_t> preempted;
};

// `running` in admission order (oldest first), `waiting` in queue order.
// `free_blocks` are those the pool can hand out now.
StepPlan Schedule(const std::vector<ScheduledSequence>& running, const std::vector<ScheduledSequence>& waiting,
                  int64_t free_blocks, const SchedulerOptions& options);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_ENGINE_SCHEDULER_H_
