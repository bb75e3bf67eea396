// The streamer on its own: offloaded images come back byte for byte, the
// order of a forward is learned and read ahead, and the staging pool is the
// bounded size it says.
#include "runtime/stream/streamer.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <numeric>

#include "gtest/gtest.h"
#include "runtime/base/aligned_bytes.h"

namespace tierserve {
namespace {

// A weight whose image is `bytes` bytes counting up from `seed`.
class TestFormat final : public WeightFormat {
 public:
  TestFormat(int64_t bytes, uint8_t seed) : WeightFormat(1, bytes), storage_(bytes) {
    for (int64_t i = 0; i < bytes; ++i) storage_.data()[i] = static_cast<uint8_t>(seed + i);
    SetImage(storage_.data(), bytes);
  }
  Precision precision() const override { return Precision::kFp32; }
  void ForwardRows(const float*, const PreparedInput*, int64_t, float*, int64_t, int64_t,
                   int64_t) const override {}
  void Row(int64_t, float*) const override {}
  // True when the image holds the bytes it was made with.
  bool Intact(uint8_t seed) const {
    for (int64_t i = 0; i < bytes(); ++i)
      if (image()[i] != static_cast<uint8_t>(seed + i)) return false;
    return true;
  }

 private:
  void DropStorage() override { storage_ = AlignedBytes(); }
  AlignedBytes storage_;
};

class StreamerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("tierserve_streamer_test_" + std::to_string(getpid()) + ".offload"))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }

  // `groups` offloaded groups of two formats each (the second 1000 bytes,
  // the first 3000 + 100 * g), in a streamer of prefetch depth `depth`.
  void Make(int groups, int depth) {
    streamer_ = std::make_unique<Streamer>(HostDevice(), Streamer::Options{depth});
    absl::StatusOr<std::unique_ptr<OffloadFile>> file = OffloadFile::Create(path_);
    ASSERT_TRUE(file.ok()) << file.status();
    for (int g = 0; g < groups; ++g) {
      const Streamer::GroupId id = streamer_->AddGroup("layer." + std::to_string(g));
      for (int k = 0; k < 2; ++k) {
        formats_.push_back(std::make_unique<TestFormat>(k == 0 ? 3000 + 100 * g : 1000, Seed(g, k)));
        ASSERT_TRUE(streamer_->Offload(id, formats_.back().get(), file->get()).ok());
        EXPECT_FALSE(formats_.back()->bound());
      }
    }
    ASSERT_TRUE(streamer_->Finish(std::move(*file)).ok());
  }
  static uint8_t Seed(int g, int k) { return static_cast<uint8_t>(17 * g + 5 * k + 1); }

  std::string path_;
  std::unique_ptr<Streamer> streamer_;
  std::vector<std::unique_ptr<TestFormat>> formats_;
};

TEST_F(StreamerTest, AcquireBindsTheOffloadedBytesAndReleaseUnbinds) {
  Make(3, 1);
  for (int pass = 0; pass < 3; ++pass) {
    streamer_->BeginForward();
    for (int g = 0; g < 3; ++g) {
      absl::StatusOr<Streamer::Lease> lease = streamer_->Acquire(g);
      ASSERT_TRUE(lease.ok()) << lease.status();
      for (int k = 0; k < 2; ++k) {
        const TestFormat& f = *formats_[2 * g + k];
        ASSERT_TRUE(f.bound());
        EXPECT_EQ(reinterpret_cast<uintptr_t>(f.image()) % kByteAlignment, 0u);
        EXPECT_TRUE(f.Intact(Seed(g, k))) << "group " << g << " format " << k;
      }
    }
    for (const auto& f : formats_) EXPECT_FALSE(f->bound());
  }
}

TEST_F(StreamerTest, TheLearnedOrderIsReadAhead) {
  constexpr int kGroups = 6;
  Make(kGroups, 2);
  for (int pass = 0; pass < 4; ++pass) {
    streamer_->BeginForward();
    for (int g = 0; g < kGroups; ++g) {
      ASSERT_TRUE(streamer_->Acquire(g).ok());
    }
  }
  const StreamerStats s = streamer_->stats();
  EXPECT_EQ(s.acquires, 4 * kGroups);
  // The first forward reads on demand (nothing is known yet); from the
  // second on, every acquire finds its group read ahead, or still staged
  // from its last use: no read is issued by an acquire any more.
  const int64_t demand_reads = s.groups_read - s.prefetch_hits;
  EXPECT_EQ(demand_reads, kGroups);
  EXPECT_GE(s.prefetch_hits, 2 * kGroups);
}

TEST_F(StreamerTest, TheStagingPoolIsDepthPlusOneLargestGroups) {
  const int64_t staging_before = HostDevice()->usage().bytes[static_cast<int>(MemoryKind::kStaging)];
  Make(4, 2);
  // The largest group: 3300 bytes, then 1000 more from the next 64-byte boundary.
  const int64_t largest = AlignUp(3300) + 1000;
  EXPECT_EQ(streamer_->group_bytes(3), largest);
  EXPECT_EQ(streamer_->staging_bytes(), 3 * largest);
  EXPECT_EQ(HostDevice()->usage().bytes[static_cast<int>(MemoryKind::kStaging)] - staging_before,
            3 * largest);
  streamer_.reset();
  EXPECT_EQ(HostDevice()->usage().bytes[static_cast<int>(MemoryKind::kStaging)], staging_before);
}

TEST_F(StreamerTest, AResidentGroupCostsNothing) {
  Streamer s(HostDevice(), Streamer::Options{});
  const Streamer::GroupId g = s.AddGroup("model.embed_tokens");
  ASSERT_TRUE(s.Finish(nullptr).ok());
  EXPECT_FALSE(s.offloaded(g));
  EXPECT_TRUE(s.Acquire(g).ok());
  EXPECT_EQ(s.staging_bytes(), 0);
  EXPECT_EQ(s.stats().acquires, 0);
}

}  // namespace
}  // namespace tierserve
