#include "runtime/engine/engine.h"

#include <algorithm>
#include <chrono>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace tierserve {

KvBlockPool::Options Engine::PoolOptions(const CausalLM& model, const Options& options) {
  KvBlockPool::Options p;
  p.num_layers = model.config().num_layers;
  p.kv_dim = model.KvDim();
  p.block_tokens = options.kv_block_tokens;
  p.dtype = options.kv_dtype;
  const int64_t per_sequence = (model.config().max_position_embeddings + p.block_tokens - 1) / p.block_tokens;
  p.num_blocks = options.kv_blocks > 0 ? options.kv_blocks : options.max_batch_size * per_sequence;
  return p;
}

Engine::Engine(LoadedModel model, Options options)
    : model_(std::move(model)),
      options_(std::move(options)),
      pool_(PoolOptions(*model_.model, options_), options_.kv_storage),
      scheduler_{options_.max_batch_size, options_.max_step_tokens, options_.kv_block_tokens},
      worker_([this] { WorkerLoop(); }) {}

Engine::~Engine() {
  Shutdown();
  worker_.join();
}

int64_t Engine::kv_block_bytes() const {
  return KvBlockPool::BytesPerBlock(model_.model->config().num_layers, model_.model->KvDim(),
                                    options_.kv_block_tokens, options_.kv_dtype);
}

absl::Status Engine::Submit(std::shared_ptr<GenerationJob> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      return absl::UnavailableError(absl::StrCat("model ", options_.name, " is shutting down"));
    }
    const int waiting = waiting_count_.load();
    const int undelivered = undelivered_count_.load();
    if (waiting + undelivered >= options_.max_queued) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "model ", options_.name, " has ", waiting, " requests waiting",
          undelivered > 0 ? absl::StrCat(" and ", undelivered, " finished but not yet read by their clients")
                          : "",
          ", the most max_queued_requests allows; retry later"));
    }
    incoming_.emplace_back(std::move(job), std::chrono::steady_clock::now());
    waiting_count_.fetch_add(1);
  }
  cv_.notify_one();
  return absl::OkStatus();
}

void Engine::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

void Engine::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
  }
  cv_.notify_one();
}

void Engine::WorkerLoop() {
  bool idle = false;  // the last step computed nothing (every running sequence paused)
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (idle) {
        // Until a reader catches up (Wake) or a request arrives; the timeout
        // bounds how late a cancellation of a paused request is seen.
        cv_.wait_for(lock, std::chrono::milliseconds(100),
                     [&] { return stopping_ || wake_ || !incoming_.empty(); });
      } else {
        cv_.wait(lock, [&] { return stopping_ || !incoming_.empty() || !running_.empty() || !waiting_.empty(); });
      }
      wake_ = false;
      if (stopping_ && incoming_.empty() && running_.empty() && waiting_.empty()) return;
      for (auto& [job, submitted] : incoming_) {
        Active a;
        a.job = std::move(job);
        a.id = next_id_++;
        a.submitted = submitted;
        waiting_.push_back(std::move(a));
      }
      incoming_.clear();
    }
    idle = !Step();
  }
}

void Engine::Retire(Active& a, absl::StatusOr<GenerationResult> result) {
  if (a.seq) a.seq->ReleaseCache();
  kv_used_.store(pool_.used_blocks());
  (a.in_running ? running_count_ : waiting_count_).fetch_sub(1);
  if (!a.started && a.job->on_start) a.job->on_start();
  // No longer counted once its result is handed over: whoever waits on
  // on_done sees the counts without it.
  a.job->on_done(std::move(result));
  a.job.reset();
}

void Engine::Preempt(std::vector<Active>::iterator it) {
  it->seq->ReleaseCache();
  it->in_running = false;
  waiting_.push_front(std::move(*it));
  running_.erase(it);
  waiting_count_.fetch_add(1);
  running_count_.fetch_sub(1);
}

bool Engine::Step() {
  const auto t0 = std::chrono::steady_clock::now();
  CausalLM& model = *model_.model;
  StepStats stats;

  // New sequences; requests cancelled while they wait leave now.
  for (Active& a : waiting_) {
    if (a.seq == nullptr) {
      absl::StatusOr<std::unique_ptr<Sequence>> s =
          Sequence::Create(std::move(a.job->request), model, model_.tokenizer.get(), &pool_);
      if (!s.ok()) {
        Retire(a, s.status());
        continue;
      }
      a.seq = std::move(*s);
      const int64_t blocks = (a.seq->max_tokens() + pool_.block_tokens() - 1) / pool_.block_tokens();
      if (blocks > pool_.num_blocks()) {
        Retire(a, absl::ResourceExhaustedError(absl::StrCat(
                      "prompt + max_new_tokens = ", a.seq->max_tokens(), " tokens needs ", blocks,
                      " KV cache blocks; model ", options_.name, " has ", pool_.num_blocks(), " in all")));
        continue;
      }
    }
    if (Cancelled(a)) {
      if (a.started) {  // preempted: it has streamed tokens already
        a.seq->Cancel();
        Retire(a, std::move(a.seq->result()));
      } else {
        Retire(a, absl::CancelledError("the request was cancelled before it started"));
      }
    }
  }
  for (Active& a : running_) {
    if (Cancelled(a)) {
      a.seq->Cancel();
      Retire(a, std::move(a.seq->result()));
    }
  }
  auto retired = [](const Active& a) { return a.job == nullptr; };
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), retired), waiting_.end());
  running_.erase(std::remove_if(running_.begin(), running_.end(), retired), running_.end());
  if (running_.empty() && waiting_.empty()) {
    // The last sequences left by cancellation: the gauges hear of it now,
    // as no further step will run until a request arrives.
    Publish(stats, t0);
    return true;
  }

  auto describe = [this](const Active& a) {
    const std::vector<int32_t>& blocks = a.seq->cache().blocks();
    const int64_t exclusive =
        std::count_if(blocks.begin(), blocks.end(), [this](int32_t b) { return pool_.refs(b) == 1; });
    return ScheduledSequence{a.id, a.seq->num_tokens(), a.seq->num_computed(), static_cast<int64_t>(blocks.size()),
                             exclusive};
  };
  // A sequence whose reader has not taken its output yet sits this step out
  // (keeping its blocks and its place in the batch), so a slow reader holds
  // a bounded amount of queued output.
  std::vector<ScheduledSequence> running, waiting;
  SchedulerOptions options = scheduler_;
  for (const Active& a : running_) {
    if (a.job->ready && !a.job->ready()) {
      --options.max_batch_size;
      ++stats.paused;
    } else {
      running.push_back(describe(a));
    }
  }
  for (const Active& a : waiting_) waiting.push_back(describe(a));
  const StepPlan plan = Schedule(running, waiting, pool_.free_blocks(), options);

  // Preempted sequences go back to the queue's front, oldest first.
  for (int64_t id : plan.preempted) {
    Preempt(std::find_if(running_.begin(), running_.end(), [&](const Active& a) { return a.id == id; }));
  }
  stats.preempted = static_cast<int64_t>(plan.preempted.size());
  // What each sequence computes this step.
  absl::flat_hash_map<int64_t, int64_t> tokens_of;
  for (const StepPlan::Work& w : plan.work) tokens_of[w.id] = w.num_tokens;
  // The admitted are the queue's head, in order. Each takes what the prefix
  // cache holds of its first chunk: the plan counted the chunk's blocks as
  // new, and a hit costs at most that (a block shared with a running
  // sequence costs nothing, one revived from the cache one free block).
  for (size_t i = 0; i < plan.admitted.size(); ++i) {
    Active a = std::move(waiting_.front());
    waiting_.pop_front();
    int64_t& n = tokens_of[a.id];
    if (options_.prefix_caching) n -= a.seq->MatchPrefix(n - 1);
    if (!a.started) {
      if (options_.prefix_caching) stats.prefix_query_tokens += a.seq->num_tokens();
      stats.prefix_hit_tokens += a.seq->num_computed();
      stats.queue_seconds.push_back(std::chrono::duration<double>(t0 - a.submitted).count());
      a.started = true;
      a.seq->Start();
      if (a.job->on_start) a.job->on_start();
    }
    a.in_running = true;
    waiting_count_.fetch_sub(1);
    running_count_.fetch_add(1);
    running_.push_back(std::move(a));
  }
  stats.admitted = static_cast<int64_t>(plan.admitted.size());

  // One forward over every sequence's share of the step.
  absl::flat_hash_map<int64_t, Active*> by_id;
  for (Active& a : running_) by_id[a.id] = &a;
  std::vector<SequenceInput> inputs;
  std::vector<Active*> members;
  std::vector<int64_t> preempt_late;
  for (const StepPlan::Work& w : plan.work) {
    Active* a = by_id[w.id];
    Sequence& seq = *a->seq;
    const int64_t n = tokens_of[w.id];
    if (!seq.Reserve(n)) {
      // The plan counts only blocks it knows will be free, so this should
      // not happen; if it does, the sequence waits rather than fails.
      preempt_late.push_back(a->id);
      continue;
    }
    SequenceInput in;
    in.tokens = absl::Span<const int32_t>(seq.tokens()).subspan(seq.num_computed(), n);
    in.start_pos = seq.num_computed();
    in.cache = &seq.cache();
    in.skip_logits = seq.num_computed() + n < seq.num_tokens();
    inputs.push_back(in);
    members.push_back(a);
    stats.tokens += n;
    if (n > 1 || seq.num_computed() + 1 < static_cast<int64_t>(seq.request().prompt.size())) {
      stats.prefill_tokens += n;
    }
  }
  stats.sequences = static_cast<int64_t>(inputs.size());
  if (!inputs.empty()) {
    const absl::Status forward = model.Forward(inputs, &logits_);
    if (forward.code() == absl::StatusCode::kDataLoss && options_.on_fault) {
      options_.on_fault(forward);
    }
    const int64_t V = model.config().vocab_size;
    int64_t row = 0;
    for (size_t i = 0; i < members.size(); ++i) {
      Active& a = *members[i];
      if (!forward.ok()) {
        Retire(a, forward);
        continue;
      }
      a.seq->Advance(static_cast<int64_t>(inputs[i].tokens.size()));
      if (inputs[i].skip_logits) continue;
      GenerationDelta delta = a.seq->Step(absl::Span<const float>(logits_).subspan(row * V, V));
      ++row;
      if (a.seq->result().tokens.size() == 1) {
        stats.prefill_seconds.push_back(a.seq->result().prefill_seconds);
      } else {
        stats.inter_token_seconds.push_back(a.seq->last_token_gap());
      }
      if (a.job->on_delta && !a.job->on_delta(delta)) a.seq->Cancel();
      if (a.seq->finished()) Retire(a, std::move(a.seq->result()));
    }
  } else if (running_.empty() && !waiting_.empty() && plan.preempted.empty() && pool_.used_blocks() == 0) {
    // Nothing runs, nothing was preempted, every block is free, and still
    // the head cannot start: it never will (Submit's check makes this
    // unreachable while a whole request fits the pool; kept as a guard
    // against a silent stall).
    Retire(waiting_.front(), absl::ResourceExhaustedError(absl::StrCat(
                                 "model ", options_.name, "'s KV cache cannot hold the request's first chunk")));
    waiting_.pop_front();
  }
  running_.erase(std::remove_if(running_.begin(), running_.end(), retired), running_.end());
  for (int64_t id : preempt_late) {
    Preempt(std::find_if(running_.begin(), running_.end(), [&](const Active& a) { return a.id == id; }));
  }
  stats.preempted += static_cast<int64_t>(preempt_late.size());

  Publish(stats, t0);
  return !inputs.empty();
}

void Engine::Publish(StepStats& stats, std::chrono::steady_clock::time_point t0) {
  kv_used_.store(pool_.used_blocks());
  stats.kv_used_blocks = pool_.used_blocks();
  stats.kv_cached_blocks = pool_.cached_blocks();
  stats.kv_total_blocks = pool_.num_blocks();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (options_.on_step) options_.on_step(stats);
}

}  // namespace tierserve
