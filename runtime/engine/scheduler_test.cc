#include "runtime/engine/scheduler.h"

#include "gtest/gtest.h"

namespace tierserve {

void PrintTo(const StepPlan::Work& w, std::ostream* os) { *os << "{" << w.id << ", " << w.num_tokens << "}"; }

namespace {

using Work = StepPlan::Work;

SchedulerOptions Options(int64_t batch, int64_t tokens) { return SchedulerOptions{batch, tokens, 16}; }

// id, tokens, computed, blocks (none shared unless said)
ScheduledSequence Seq(int64_t id, int64_t tokens, int64_t computed, int64_t blocks, int64_t exclusive = -1) {
  return {id, tokens, computed, blocks, exclusive < 0 ? blocks : exclusive};
}

TEST(SchedulerTest, DecodesGoFirstAndPrefillTakesTheRestOfTheBudgetInChunks) {
  // 1 is mid-prefill (100 of 300 computed), 2 and 3 decode.
  const std::vector<ScheduledSequence> running = {Seq(1, 300, 100, 7), Seq(2, 40, 39, 3), Seq(3, 17, 16, 1)};
  const StepPlan p = Schedule(running, {}, 100, Options(8, 64));
  EXPECT_EQ(p.work, (std::vector<Work>{{2, 1}, {3, 1}, {1, 62}}));
  EXPECT_TRUE(p.preempted.empty());
}

TEST(SchedulerTest, WaitingSequencesStartInOrderWhileBudgetBlocksAndSlotsAllow) {
  const std::vector<ScheduledSequence> waiting = {Seq(5, 20, 0, 0), Seq(6, 30, 0, 0), Seq(7, 10, 0, 0)};
  // Budget: 20 + 30 fit in 60, the third gets the last 10 tokens.
  StepPlan p = Schedule({}, waiting, 100, Options(8, 60));
  EXPECT_EQ(p.admitted, (std::vector<int64_t>{5, 6, 7}));
  EXPECT_EQ(p.work, (std::vector<Work>{{5, 20}, {6, 30}, {7, 10}}));
  // Two slots left in the running set.
  p = Schedule({Seq(1, 9, 8, 1)}, waiting, 100, Options(3, 512));
  EXPECT_EQ(p.admitted, (std::vector<int64_t>{5, 6}));
  // The head needs 2 blocks and 1 is free: nobody behind it starts either.
  p = Schedule({}, {Seq(5, 20, 0, 0), Seq(6, 3, 0, 0)}, 1, Options(8, 512));
  EXPECT_TRUE(p.admitted.empty());
  EXPECT_TRUE(p.work.empty());
  // A prefix-cache hit: 32 tokens already held in 2 blocks; 8 more need one.
  p = Schedule({}, {Seq(5, 40, 32, 2)}, 1, Options(8, 512));
  EXPECT_EQ(p.work, (std::vector<Work>{{5, 8}}));
}

TEST(SchedulerTest, OutOfBlocksPreemptsTheNewestAndAdmitsNobody) {
  // Both decode into a new block; one block is free.
  const std::vector<ScheduledSequence> running = {Seq(1, 33, 32, 2), Seq(2, 17, 16, 1)};
  StepPlan p = Schedule(running, {Seq(9, 3, 0, 0)}, 1, Options(8, 512));
  EXPECT_EQ(p.work, (std::vector<Work>{{1, 1}}));
  EXPECT_EQ(p.preempted, (std::vector<int64_t>{2}));
  EXPECT_TRUE(p.admitted.empty());
  // No block free: the oldest needs one, so the newest goes, whose one
  // block then serves it.
  p = Schedule(running, {}, 0, Options(8, 512));
  EXPECT_EQ(p.preempted, (std::vector<int64_t>{2}));
  EXPECT_EQ(p.work, (std::vector<Work>{{1, 1}}));
  // The newest itself needs the block: it preempts itself.
  p = Schedule({Seq(1, 30, 29, 2), Seq(2, 17, 16, 1)}, {}, 0, Options(8, 512));
  EXPECT_EQ(p.preempted, (std::vector<int64_t>{2}));
  EXPECT_EQ(p.work, (std::vector<Work>{{1, 1}}));
}

TEST(SchedulerTest, SharedBlocksOfAVictimAreNotCountedFree) {
  // 2 holds 3 blocks, 2 of them shared with 1 (a common prefix): preempting
  // it frees one block, not enough for 1's prefill chunk of 2 blocks, so 1
  // preempts itself too rather than be granted blocks that are not there.
  const std::vector<ScheduledSequence> running = {Seq(1, 64, 32, 2), Seq(2, 40, 33, 3, 1)};
  const StepPlan p = Schedule(running, {}, 0, Options(8, 512));
  EXPECT_EQ(p.preempted, (std::vector<int64_t>{2, 1}));
  EXPECT_TRUE(p.work.empty());
}

TEST(SchedulerTest, APreemptedVictimGivesBackWhatTheStepHadGrantedIt) {
  // 2 (newest) decodes first and takes the free block; 1 prefills next and
  // needs 2 blocks: 2 is preempted and its granted block and its own block
  // come back.
  const std::vector<ScheduledSequence> running = {Seq(1, 64, 32, 2), Seq(2, 17, 16, 1)};
  const StepPlan p = Schedule(running, {}, 1, Options(8, 512));
  EXPECT_EQ(p.preempted, (std::vector<int64_t>{2}));
  EXPECT_EQ(p.work, (std::vector<Work>{{1, 32}}));
}

}  // namespace
}  // namespace tierserve
