#include "runtime/engine/engine.h"

#include <future>

#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"

namespace tierserve {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> MakeEngine(int max_queued) {
    absl::StatusOr<LoadedModel> m = LoadModel("tests/data/tiny_llama", &pool_);
    EXPECT_TRUE(m.ok()) << m.status();
    return std::make_unique<Engine>(std::move(*m), Engine::Options{"tiny", max_queued});
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
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  std::promise<absl::StatusOr<GenerationResult>> first, second, third;
  auto blocker = Job(2, &first);
  bool once = false;
  blocker->on_delta = [&](const GenerationDelta&) {
    if (!once) {
      once = true;
      started.set_value();
      released.wait();
    }
    return true;
  };
  ASSERT_TRUE(engine->Submit(blocker).ok());
  started.get_future().wait();
  ASSERT_TRUE(engine->Submit(Job(1, &second)).ok());  // waits in the queue
  absl::Status full = engine->Submit(Job(1, &third));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("max_queued_requests"), absl::string_view::npos);
  EXPECT_EQ(engine->running(), 1);
  EXPECT_EQ(engine->waiting(), 1);
  release.set_value();
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

  // Cancelled while waiting: never runs.
  std::promise<absl::StatusOr<GenerationResult>> skipped;
  auto late = Job(10, &skipped);
  late->cancelled = [] { return true; };
  ASSERT_TRUE(engine->Submit(late).ok());
  EXPECT_EQ(skipped.get_future().get().status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace tierserve
