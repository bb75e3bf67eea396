#include "runtime/engine/engine.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>

#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"

namespace tierserve {
namespace {

// Holds the engine's worker inside a job's first token until released.
struct WorkerGate {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  bool once = false;
  void HoldAtFirstToken(GenerationJob& job) {
    job.on_delta = [this](const GenerationDelta&) {
      if (!once) {
        once = true;
        entered.set_value();
        released.wait();
      }
      return true;
    };
  }
};

class EngineTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> MakeEngine(int max_queued) {
    absl::StatusOr<LoadedModel> m = LoadModel("tests/data/tiny_llama", &pool_);
    EXPECT_TRUE(m.ok()) << m.status();
    Engine::Options o;
    o.name = "tiny";
    o.max_queued = max_queued;
    return std::make_unique<Engine>(std::move(*m), o);
  }
  static std::shared_ptr<GenerationJob> Job(int n, std::promise<absl::StatusOr<GenerationResult>>* done) {
    auto job = std::make_shared<GenerationJob>();
    job->request.prompt = {5, 6, 7};
    job->request.max_new_tokens = n;
    job->request.sampling.temperature = 0;
    job->request.ignore_eos = true;
    job->on_done = [done](absl::StatusOr<GenerationResult> r) { done->set_value(std::move(r)); };
    return job;
  }
  ThreadPool pool_{2};
};

TEST_F(EngineTest, RunsJobsInOrderAndDrainsOnShutdown) {
  auto engine = MakeEngine(8);
  std::promise<absl::StatusOr<GenerationResult>> a, b;
  ASSERT_TRUE(engine->Submit(Job(5, &a)).ok());
  ASSERT_TRUE(engine->Submit(Job(7, &b)).ok());
  engine->Shutdown();
  EXPECT_EQ(engine->Submit(Job(1, &a)).code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<GenerationResult> ra = a.get_future().get(), rb = b.get_future().get();
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->tokens.size(), 5u);
  EXPECT_EQ(rb->tokens.size(), 7u);
  EXPECT_EQ(engine->running(), 0);
}

TEST_F(EngineTest, FullQueueIsResourceExhausted) {
  auto engine = MakeEngine(1);
  // Hold the worker inside the first job until the queue has been tested.
  WorkerGate gate;
  std::promise<absl::StatusOr<GenerationResult>> first, second, third;
  auto blocker = Job(2, &first);
  gate.HoldAtFirstToken(*blocker);
  ASSERT_TRUE(engine->Submit(blocker).ok());
  gate.entered.get_future().wait();
  ASSERT_TRUE(engine->Submit(Job(1, &second)).ok());  // waits in the queue
  absl::Status full = engine->Submit(Job(1, &third));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("max_queued_requests"), absl::string_view::npos);
  EXPECT_EQ(engine->running(), 1);
  EXPECT_EQ(engine->waiting(), 1);
  gate.release.set_value();
  EXPECT_TRUE(first.get_future().get().ok());
  EXPECT_TRUE(second.get_future().get().ok());
}

TEST_F(EngineTest, CancellationStopsWithinAStep) {
  auto engine = MakeEngine(4);
  std::atomic<int> steps{0};
  std::promise<absl::StatusOr<GenerationResult>> done;
  auto job = Job(100, &done);
  job->on_delta = [&](const GenerationDelta&) { return ++steps < 1000; };
  job->cancelled = [&] { return steps.load() >= 3; };
  ASSERT_TRUE(engine->Submit(job).ok());
  absl::StatusOr<GenerationResult> r = done.get_future().get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(r->tokens.size(), 3u);

}

// A job cancelled while it waits behind a full batch ends CANCELLED without
// ever producing a token.
TEST_F(EngineTest, CancelledWhileWaitingNeverRuns) {
  absl::StatusOr<LoadedModel> m = LoadModel("tests/data/tiny_llama", &pool_);
  ASSERT_TRUE(m.ok()) << m.status();
  Engine::Options o;
  o.max_batch_size = 1;  // the second job waits while the first runs
  Engine engine(std::move(*m), o);
  WorkerGate gate;
  std::promise<absl::StatusOr<GenerationResult>> first_done, waiting_done;
  auto first = Job(4, &first_done);
  gate.HoldAtFirstToken(*first);
  ASSERT_TRUE(engine.Submit(first).ok());
  gate.entered.get_future().wait();
  std::atomic<bool> cancel{false};
  std::atomic<int> tokens{0};
  auto waiting = Job(10, &waiting_done);
  waiting->cancelled = [&] { return cancel.load(); };
  waiting->on_delta = [&](const GenerationDelta&) { return ++tokens > 0; };
  ASSERT_TRUE(engine.Submit(waiting).ok());
  EXPECT_EQ(engine.waiting(), 1);
  cancel = true;  // while it waits
  gate.release.set_value();
  EXPECT_TRUE(first_done.get_future().get().ok());
  EXPECT_EQ(waiting_done.get_future().get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(tokens.load(), 0);
}

// ---- Continuous batching -------------------------------------------------

struct ModelCase {
  std::string name;
  std::string path;
  std::string quantization;  // "", "int8", "nf4", "fp4"
  int32_t new_tokens;
};
std::ostream& operator<<(std::ostream& os, const ModelCase& c) { return os << c.name; }

ModelLoadOptions LoadOptions(const ModelCase& c, ThreadPool* pool) {
  ModelLoadOptions o;
  o.pool = pool;
  if (c.quantization == "int8") o.quantization.load_in_8bit = true;
  if (c.quantization == "nf4" || c.quantization == "fp4") {
    o.quantization.load_in_4bit = true;
    o.quantization.bnb_4bit_quant_type =
        c.quantization == "nf4" ? QuantizationConfig::QuantType::kNf4 : QuantizationConfig::QuantType::kFp4;
  }
  return o;
}

// Request i of a mixed load: prompts of 1 to 40 tokens; even ones greedy,
// odd ones sampled with their own seed.
GenerationRequest MixedRequest(int i, int64_t vocab, int32_t new_tokens) {
  GenerationRequest r;
  const int len = 1 + (i * 13) % 40;
  for (int k = 0; k < len; ++k) r.prompt.push_back(static_cast<int32_t>((k * 7919 + i * 104729 + 3) % vocab));
  r.max_new_tokens = new_tokens;
  r.ignore_eos = true;
  if (i % 2 == 0) {
    r.sampling.temperature = 0;
  } else {
    r.sampling.temperature = 0.9f;
    r.sampling.top_p = 0.95f;
    r.sampling.seed = 1000 + i;
  }
  return r;
}

// Runs `requests` through `engine` all at once: the first job's start holds
// the worker until every job is submitted, so the rest join one step.
std::vector<absl::StatusOr<GenerationResult>> RunAll(Engine& engine, const std::vector<GenerationRequest>& requests,
                                                     std::function<void(int, GenerationJob&)> adjust = nullptr) {
  const size_t n = requests.size();
  std::vector<std::promise<absl::StatusOr<GenerationResult>>> done(n);
  std::promise<void> all_submitted;
  std::shared_future<void> submitted = all_submitted.get_future().share();
  for (size_t i = 0; i < n; ++i) {
    auto job = std::make_shared<GenerationJob>();
    job->request = requests[i];
    job->on_done = [&done, i](absl::StatusOr<GenerationResult> r) { done[i].set_value(std::move(r)); };
    if (i == 0) job->on_start = [submitted] { submitted.wait(); };
    if (adjust) adjust(static_cast<int>(i), *job);
    EXPECT_TRUE(engine.Submit(job).ok());
  }
  all_submitted.set_value();
  std::vector<absl::StatusOr<GenerationResult>> results;
  for (auto& d : done) results.push_back(d.get_future().get());
  return results;
}

// What each step did, gathered from on_step (worker thread; read after the
// jobs are done).
struct StepLog {
  std::mutex mu;
  std::vector<StepStats> steps;  // guarded by mu
  int64_t Max(int64_t StepStats::*field) {
    std::lock_guard<std::mutex> lock(mu);
    int64_t m = 0;
    for (const StepStats& s : steps) m = std::max(m, s.*field);
    return m;
  }
  int64_t Sum(int64_t StepStats::*field) {
    std::lock_guard<std::mutex> lock(mu);
    int64_t m = 0;
    for (const StepStats& s : steps) m += s.*field;
    return m;
  }
  // The steps logged so far (the worker may still be logging the last one).
  std::vector<StepStats> Steps() {
    std::lock_guard<std::mutex> lock(mu);
    return steps;
  }
  std::function<void(const StepStats&)> Hook() {
    return [this](const StepStats& s) {
      {
        std::lock_guard<std::mutex> lock(mu);
        steps.push_back(s);
      }
      logged.notify_all();
    };
  }
  // Waits until a logged step satisfies `pred`; false if none has within
  // `timeout` (a bound on a failure, not a timing: the step comes at once).
  bool WaitFor(const std::function<bool(const StepStats&)>& pred, std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    return logged.wait_for(lock, timeout, [&] { return std::any_of(steps.begin(), steps.end(), pred); });
  }
  std::condition_variable logged;
};

// The step that retires the last running sequence by cancellation computes
// nothing and is still reported: the KV gauges go back to 0 (the daemon's
// soak once saw blocks_used stay at 5 after every request had ended).
TEST_F(EngineTest, CancellingTheLastSequenceReportsItsBlocksFreed) {
  absl::StatusOr<LoadedModel> m = LoadModel("tests/data/tiny_llama", &pool_);
  ASSERT_TRUE(m.ok()) << m.status();
  StepLog log;
  Engine::Options o;
  o.prefix_caching = false;  // so that no block outlives the sequence
  o.on_step = log.Hook();
  Engine engine(std::move(*m), o);
  std::atomic<int> tokens{0};
  std::promise<absl::StatusOr<GenerationResult>> done;
  auto job = Job(100, &done);
  job->on_delta = [&](const GenerationDelta&) { return ++tokens > 0; };
  job->cancelled = [&] { return tokens.load() >= 3; };
  ASSERT_TRUE(engine.Submit(job).ok());
  absl::StatusOr<GenerationResult> r = done.get_future().get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->finish_reason, FinishReason::kCancelled);
  EXPECT_GT(log.Max(&StepStats::kv_used_blocks), 0);
  EXPECT_TRUE(log.WaitFor([](const StepStats& s) { return s.kv_used_blocks == 0; }, std::chrono::seconds(30)))
      << "no step reported the cancelled sequence's blocks freed";
  EXPECT_EQ(engine.kv_used_blocks(), 0);
}

class BatchingTest : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    absl::StatusOr<LoadedModel> m = LoadModel(GetParam().path, LoadOptions(GetParam(), &pool_));
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m);
  }
  // Each request run alone, start to end, by the single-sequence Generator.
  std::vector<std::vector<int32_t>> Alone(const std::vector<GenerationRequest>& requests) {
    Generator gen(model_.model.get(), model_.tokenizer.get());
    std::vector<std::vector<int32_t>> out;
    for (const GenerationRequest& r : requests) {
      absl::StatusOr<GenerationResult> g = gen.Generate(r);
      EXPECT_TRUE(g.ok()) << g.status();
      out.push_back(g.ok() ? g->TokenIds() : std::vector<int32_t>{});
    }
    return out;
  }
  std::unique_ptr<Engine> Start(Engine::Options o) {
    // The engine takes the model; load a second copy for it.
    absl::StatusOr<LoadedModel> m = LoadModel(GetParam().path, LoadOptions(GetParam(), &pool_));
    EXPECT_TRUE(m.ok()) << m.status();
    o.name = GetParam().name;
    return std::make_unique<Engine>(std::move(*m), std::move(o));
  }

  ThreadPool pool_{2};
  LoadedModel model_;
};

TEST_P(BatchingTest, ABatchOf32GivesEachSequenceItsTokensAlone) {
  const int64_t V = model_.model->config().vocab_size;
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 32; ++i) requests.push_back(MixedRequest(i, V, GetParam().new_tokens));
  const std::vector<std::vector<int32_t>> alone = Alone(requests);

  StepLog log;
  Engine::Options o;
  o.max_batch_size = 32;
  o.max_step_tokens = 4096;
  o.on_step = log.Hook();
  std::unique_ptr<Engine> engine = Start(o);
  std::vector<absl::StatusOr<GenerationResult>> batched = RunAll(*engine, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(batched[i].ok()) << batched[i].status();
    EXPECT_EQ(batched[i]->TokenIds(), alone[i]) << "request " << i << " (prompt of " << requests[i].prompt.size()
                                                << " tokens, " << (i % 2 ? "sampled" : "greedy") << ")";
  }
  // The 31 jobs that waited for the first ran as one batch.
  EXPECT_EQ(log.Max(&StepStats::sequences), 32);
  EXPECT_EQ(engine->kv_used_blocks(), 0);
}

constexpr char kSmolLM2[] = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

INSTANTIATE_TEST_SUITE_P(
    Models, BatchingTest,
    ::testing::Values(ModelCase{"tiny_llama", "tests/data/tiny_llama", "", 12},
                      ModelCase{"tiny_gpt2", "tests/data/tiny_gpt2", "", 12},
                      ModelCase{"tiny_llama_q8_0", "tests/data/tiny_llama_gguf/tiny_llama_q8_0.gguf", "", 12},
                      ModelCase{"tiny_llama_int8", "tests/data/tiny_llama", "int8", 12},
                      ModelCase{"tiny_llama_nf4", "tests/data/tiny_llama", "nf4", 12},
                      ModelCase{"tiny_llama_fp4", "tests/data/tiny_llama", "fp4", 12},
                      ModelCase{"smollm2_q4_1", kSmolLM2, "", 5},
                      ModelCase{"smollm2_int8", kSmolLM2, "int8", 5},
                      ModelCase{"smollm2_nf4", kSmolLM2, "nf4", 5}),
    [](const ::testing::TestParamInfo<ModelCase>& info) { return info.param.name; });

class TinyBatchingTest : public BatchingTest {};

// A pool far too small for the load: sequences that run out of blocks are
// preempted and recomputed, and every one still ends with its own tokens.
TEST_P(TinyBatchingTest, PreemptionRecomputesAndLosesNothing) {
  const int64_t V = model_.model->config().vocab_size;
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 12; ++i) requests.push_back(MixedRequest(i, V, 30));
  const std::vector<std::vector<int32_t>> alone = Alone(requests);
  StepLog log;
  Engine::Options o;
  o.max_batch_size = 12;
  o.kv_blocks = 12;  // one sequence needs up to 5 blocks of 16
  o.on_step = log.Hook();
  std::unique_ptr<Engine> engine = Start(o);
  std::vector<absl::StatusOr<GenerationResult>> results = RunAll(*engine, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(results[i]->TokenIds(), alone[i]) << "request " << i;
  }
  EXPECT_GT(log.Sum(&StepStats::preempted), 0);
  EXPECT_LE(log.Max(&StepStats::kv_used_blocks), 12);
  EXPECT_EQ(engine->kv_used_blocks(), 0);
}

// The same, with every prompt beginning with one 32-token prefix, twice: the
// second round finds the prefix (and more) in the cache, and sequences that
// share blocks are preempted without counting shared blocks as freed.
TEST_P(TinyBatchingTest, PreemptionWithSharedPrefixBlocks) {
  const int64_t V = model_.model->config().vocab_size;
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 12; ++i) {
    GenerationRequest r = MixedRequest(i, V, 30);
    std::vector<int32_t> prompt;
    for (int k = 0; k < 32; ++k) prompt.push_back(static_cast<int32_t>((k * 11 + 9) % V));
    prompt.insert(prompt.end(), r.prompt.begin(), r.prompt.begin() + std::min<size_t>(r.prompt.size(), 8));
    r.prompt = prompt;
    requests.push_back(r);
  }
  const std::vector<std::vector<int32_t>> alone = Alone(requests);
  StepLog log;
  Engine::Options o;
  o.max_batch_size = 12;
  o.kv_blocks = 12;
  o.on_step = log.Hook();
  std::unique_ptr<Engine> engine = Start(o);
  for (int round = 0; round < 2; ++round) {
    std::vector<absl::StatusOr<GenerationResult>> results = RunAll(*engine, requests);
    for (size_t i = 0; i < requests.size(); ++i) {
      ASSERT_TRUE(results[i].ok()) << results[i].status();
      EXPECT_EQ(results[i]->TokenIds(), alone[i]) << "round " << round << " request " << i;
    }
    EXPECT_EQ(engine->kv_used_blocks(), 0);
  }
  EXPECT_GT(log.Sum(&StepStats::preempted), 0);
  EXPECT_GT(log.Sum(&StepStats::prefix_hit_tokens), 0);
}

// Half the requests are cancelled mid-way: the others finish with their
// own tokens, the cancelled ones stop within a step, and every block comes
// back.
TEST_P(TinyBatchingTest, CancellingHalfKeepsTheRestAndFreesTheBlocks) {
  const int64_t V = model_.model->config().vocab_size;
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 16; ++i) requests.push_back(MixedRequest(i, V, 24));
  const std::vector<std::vector<int32_t>> alone = Alone(requests);
  StepLog log;
  Engine::Options o;
  o.max_batch_size = 16;
  o.kv_blocks = 40;
  o.on_step = log.Hook();
  std::unique_ptr<Engine> engine = Start(o);
  std::vector<std::shared_ptr<std::atomic<int>>> seen;
  for (int i = 0; i < 16; ++i) seen.push_back(std::make_shared<std::atomic<int>>(0));
  std::vector<absl::StatusOr<GenerationResult>> results = RunAll(*engine, requests, [&](int i, GenerationJob& job) {
    std::shared_ptr<std::atomic<int>> count = seen[i];
    job.on_delta = [count](const GenerationDelta&) {
      ++*count;
      return true;
    };
    if (i % 2 == 1) job.cancelled = [count] { return count->load() >= 5; };
  });
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    if (i % 2 == 1) {
      EXPECT_EQ(results[i]->finish_reason, FinishReason::kCancelled);
      EXPECT_EQ(results[i]->tokens.size(), 5u) << "request " << i;
      const std::vector<int32_t> head(alone[i].begin(), alone[i].begin() + 5);
      EXPECT_EQ(results[i]->TokenIds(), head) << "request " << i;
    } else {
      EXPECT_EQ(results[i]->TokenIds(), alone[i]) << "request " << i;
    }
  }
  EXPECT_LE(log.Max(&StepStats::kv_used_blocks), 40);
  EXPECT_EQ(engine->kv_used_blocks(), 0);

  // The freed blocks serve the next round.
  std::vector<absl::StatusOr<GenerationResult>> again = RunAll(*engine, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(again[i].ok()) << again[i].status();
    EXPECT_EQ(again[i]->TokenIds(), alone[i]) << "request " << i;
  }
}

// A sequence whose reader falls behind pauses (keeps its place and blocks)
// while the others go on, and resumes with the same tokens when woken.
TEST_P(TinyBatchingTest, ASlowReaderPausesItsSequenceOnly) {
  const int64_t V = model_.model->config().vocab_size;
  const std::vector<GenerationRequest> requests = {MixedRequest(1, V, 20), MixedRequest(2, V, 20)};
  const std::vector<std::vector<int32_t>> alone = Alone(requests);
  std::unique_ptr<Engine> engine = Start(Engine::Options());
  std::atomic<int> slow_tokens{0};
  std::atomic<bool> reader_caught_up{false};
  std::promise<void> other_done;
  std::vector<std::promise<absl::StatusOr<GenerationResult>>> done(2);
  auto slow = std::make_shared<GenerationJob>();
  slow->request = requests[0];
  slow->on_delta = [&](const GenerationDelta&) { return ++slow_tokens > 0; };
  // Its "reader" takes 3 tokens, then nothing until the other job is done.
  slow->ready = [&] { return slow_tokens.load() < 3 || reader_caught_up.load(); };
  slow->on_done = [&](absl::StatusOr<GenerationResult> r) { done[0].set_value(std::move(r)); };
  auto other = std::make_shared<GenerationJob>();
  other->request = requests[1];
  other->on_done = [&](absl::StatusOr<GenerationResult> r) {
    done[1].set_value(std::move(r));
    other_done.set_value();
  };
  ASSERT_TRUE(engine->Submit(slow).ok());
  ASSERT_TRUE(engine->Submit(other).ok());
  other_done.get_future().wait();
  EXPECT_EQ(slow_tokens.load(), 3);  // paused while the other ran to its end
  absl::StatusOr<GenerationResult> b = done[1].get_future().get();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->TokenIds(), alone[1]);
  reader_caught_up = true;
  engine->Wake();
  absl::StatusOr<GenerationResult> a = done[0].get_future().get();
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->TokenIds(), alone[0]);
  EXPECT_EQ(engine->kv_used_blocks(), 0);
}

// A second request with the first's 40-token prefix takes its two full
// blocks from the prefix cache and computes only the rest.
TEST_P(TinyBatchingTest, SharedPrefixIsComputedOnce) {
  const int64_t V = model_.model->config().vocab_size;
  GenerationRequest first = MixedRequest(0, V, 8);
  first.prompt.clear();
  for (int k = 0; k < 43; ++k) first.prompt.push_back(static_cast<int32_t>((k * 31 + 5) % V));
  GenerationRequest second = first;
  second.prompt.resize(40);
  for (int k = 0; k < 5; ++k) second.prompt.push_back(static_cast<int32_t>((k * 17 + 1) % V));
  const std::vector<std::vector<int32_t>> alone = Alone({first, second});

  StepLog log;
  Engine::Options o;
  o.on_step = log.Hook();
  std::unique_ptr<Engine> engine = Start(o);
  std::vector<absl::StatusOr<GenerationResult>> r1 = RunAll(*engine, {first});
  ASSERT_TRUE(r1[0].ok());
  EXPECT_EQ(r1[0]->TokenIds(), alone[0]);
  EXPECT_EQ(log.Sum(&StepStats::prefix_hit_tokens), 0);
  const int64_t prefill_before = log.Sum(&StepStats::prefill_tokens);
  std::vector<absl::StatusOr<GenerationResult>> r2 = RunAll(*engine, {second});
  ASSERT_TRUE(r2[0].ok());
  EXPECT_EQ(r2[0]->TokenIds(), alone[1]);
  EXPECT_EQ(log.Sum(&StepStats::prefix_hit_tokens), 32);
  EXPECT_EQ(log.Sum(&StepStats::prefill_tokens) - prefill_before, 45 - 32);
  EXPECT_EQ(engine->kv_used_blocks(), 0);

  // Turned off, the second request computes its whole prompt.
  StepLog off_log;
  Engine::Options off;
  off.prefix_caching = false;
  off.on_step = off_log.Hook();
  std::unique_ptr<Engine> no_cache = Start(off);
  ASSERT_TRUE(RunAll(*no_cache, {first})[0].ok());
  const int64_t off_before = off_log.Sum(&StepStats::prefill_tokens);
  std::vector<absl::StatusOr<GenerationResult>> r3 = RunAll(*no_cache, {second});
  ASSERT_TRUE(r3[0].ok());
  EXPECT_EQ(r3[0]->TokenIds(), alone[1]);
  EXPECT_EQ(off_log.Sum(&StepStats::prefix_hit_tokens), 0);
  EXPECT_EQ(off_log.Sum(&StepStats::prefill_tokens) - off_before, 45);
}

// With a budget of 8 tokens per step, a 60-token prompt is prefilled in
// chunks while an earlier sequence keeps decoding in the same forwards.
TEST_P(TinyBatchingTest, LongPromptIsChunkedBesideDecodingSequences) {
  const int64_t V = model_.model->config().vocab_size;
  GenerationRequest decoding = MixedRequest(2, V, 40);
  GenerationRequest long_prompt = MixedRequest(4, V, 4);
  long_prompt.prompt.clear();
  for (int k = 0; k < 60; ++k) long_prompt.prompt.push_back(static_cast<int32_t>((k * 37 + 2) % V));
  const std::vector<std::vector<int32_t>> alone = Alone({decoding, long_prompt});
  StepLog log;
  Engine::Options o;
  o.max_step_tokens = 8;
  o.on_step = log.Hook();
  std::unique_ptr<Engine> engine = Start(o);
  std::vector<absl::StatusOr<GenerationResult>> r = RunAll(*engine, {decoding, long_prompt});
  ASSERT_TRUE(r[0].ok() && r[1].ok());
  EXPECT_EQ(r[0]->TokenIds(), alone[0]);
  EXPECT_EQ(r[1]->TokenIds(), alone[1]);
  EXPECT_LE(log.Max(&StepStats::tokens), 8);
  // Steps that prefilled a chunk of the long prompt and decoded the other.
  int mixed = 0;
  for (const StepStats& s : log.Steps()) mixed += s.sequences == 2 && s.prefill_tokens > 0;
  EXPECT_GE(mixed, 60 / 8);
}

INSTANTIATE_TEST_SUITE_P(Models, TinyBatchingTest,
                         ::testing::Values(ModelCase{"tiny_llama", "tests/data/tiny_llama", "", 12},
                                           ModelCase{"tiny_gpt2", "tests/data/tiny_gpt2", "", 12}),
                         [](const ::testing::TestParamInfo<ModelCase>& info) { return info.param.name; });

}  // namespace
}  // namespace tierserve
