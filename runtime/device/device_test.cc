#include "runtime/device/device.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr int64_t kMiB = int64_t{1} << 20;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A sim device fast enough that pacing does not slow the generic tests.
std::unique_ptr<Device> FastSim(int index = 0) {
  SimDeviceOptions options;
  options.capacity_bytes = 256 * kMiB;
  options.bandwidth_bytes_per_second = 1e12;
  options.latency_seconds = 0;
  return NewSimDevice(index, options);
}

std::unique_ptr<Device> MakeDevice(const std::string& which) {
  return which == "cpu" ? NewCpuDevice() : FastSim();
}

int64_t Used(const Device& device, MemoryKind kind) {
  return device.usage().bytes[static_cast<int>(kind)];
}

TEST(DeviceTest, MemoryKindNames) {
  EXPECT_STREQ(MemoryKindName(MemoryKind::kWeights), "weights");
  EXPECT_STREQ(MemoryKindName(MemoryKind::kStaging), "staging");
  EXPECT_STREQ(MemoryKindName(MemoryKind::kKv), "kv");
  EXPECT_STREQ(MemoryKindName(MemoryKind::kScratch), "scratch");
}

TEST(DeviceTest, NamesKindsAndCapacity) {
  std::unique_ptr<Device> cpu = NewCpuDevice();
  EXPECT_EQ(cpu->name(), "cpu");
  EXPECT_EQ(cpu->kind(), DeviceKind::kCpu);
  EXPECT_TRUE(cpu->host_addressable());
  EXPECT_EQ(cpu->usage().capacity, -1);
  EXPECT_EQ(cpu->usage().total(), 0);

  SimDeviceOptions options;
  options.capacity_bytes = 123456;
  std::unique_ptr<Device> sim = NewSimDevice(3, options);
  EXPECT_EQ(sim->name(), "sim:3");
  EXPECT_EQ(sim->kind(), DeviceKind::kSim);
  EXPECT_EQ(sim->index(), 3);
  EXPECT_TRUE(sim->host_addressable());
  EXPECT_EQ(sim->usage().capacity, 123456);
}

// Buffer behaviour common to every host-memory device.
class BufferTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Device> device_ = MakeDevice(GetParam());
};

TEST_P(BufferTest, CountsBytesByKind) {
  absl::StatusOr<Buffer> w = device_->Allocate(1000, MemoryKind::kWeights);
  absl::StatusOr<Buffer> kv = device_->Allocate(300, MemoryKind::kKv);
  absl::StatusOr<Buffer> st = device_->Allocate(5, MemoryKind::kStaging);
  ASSERT_TRUE(w.ok() && kv.ok() && st.ok());
  EXPECT_EQ(w->size(), 1000);
  EXPECT_EQ(w->kind(), MemoryKind::kWeights);
  EXPECT_EQ(w->device(), device_.get());
  EXPECT_FALSE(w->empty());
  MemoryUsage u = device_->usage();
  EXPECT_EQ(u.bytes[static_cast<int>(MemoryKind::kWeights)], 1000);
  EXPECT_EQ(u.bytes[static_cast<int>(MemoryKind::kKv)], 300);
  EXPECT_EQ(u.bytes[static_cast<int>(MemoryKind::kStaging)], 5);
  EXPECT_EQ(u.bytes[static_cast<int>(MemoryKind::kScratch)], 0);
  EXPECT_EQ(u.total(), 1305);

  *kv = Buffer();  // frees
  EXPECT_EQ(Used(*device_, MemoryKind::kKv), 0);
  EXPECT_EQ(device_->usage().total(), 1005);
  w = absl::StatusOr<Buffer>(Buffer());
  st = absl::StatusOr<Buffer>(Buffer());
  EXPECT_EQ(device_->usage().total(), 0);
}

TEST_P(BufferTest, MoveConstructionKeepsTheCount) {
  absl::StatusOr<Buffer> a = device_->Allocate(4096, MemoryKind::kScratch);
  ASSERT_TRUE(a.ok());
  uint8_t* data = a->data();
  {
    Buffer b(std::move(*a));
    EXPECT_TRUE(a->empty());
    EXPECT_EQ(a->size(), 0);
    EXPECT_EQ(b.data(), data);
    EXPECT_EQ(b.size(), 4096);
    EXPECT_EQ(Used(*device_, MemoryKind::kScratch), 4096);
  }
  EXPECT_EQ(Used(*device_, MemoryKind::kScratch), 0);
}

TEST_P(BufferTest, MoveAssignmentFreesTheOldBytes) {
  absl::StatusOr<Buffer> a = device_->Allocate(100, MemoryKind::kWeights);
  absl::StatusOr<Buffer> b = device_->Allocate(200, MemoryKind::kKv);
  ASSERT_TRUE(a.ok() && b.ok());
  *a = std::move(*b);
  EXPECT_EQ(Used(*device_, MemoryKind::kWeights), 0);
  EXPECT_EQ(Used(*device_, MemoryKind::kKv), 200);
  EXPECT_EQ(a->kind(), MemoryKind::kKv);
  EXPECT_EQ(a->size(), 200);
  EXPECT_TRUE(b->empty());
  // Self-assignment through a reference keeps the buffer.
  Buffer& same = *a;
  *a = std::move(same);
  EXPECT_EQ(a->size(), 200);
  EXPECT_EQ(Used(*device_, MemoryKind::kKv), 200);
}

TEST_P(BufferTest, AlignedTo64AndWritable) {
  std::vector<Buffer> buffers;
  for (int64_t bytes : {1, 3, 63, 64, 65, 100, 4097, 1 << 20}) {
    absl::StatusOr<Buffer> b = device_->Allocate(bytes, MemoryKind::kStaging);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % 64, 0u) << bytes << " bytes";
    std::memset(b->data(), 0xab, static_cast<size_t>(bytes));
    buffers.push_back(std::move(*b));
  }
}

TEST_P(BufferTest, ZeroBytesIsAnEmptyUncountedBuffer) {
  absl::StatusOr<Buffer> b = device_->Allocate(0, MemoryKind::kKv);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(b->empty());
  EXPECT_EQ(b->size(), 0);
  EXPECT_EQ(device_->usage().total(), 0);
}

TEST_P(BufferTest, NegativeBytesIsInvalid) {
  absl::StatusOr<Buffer> b = device_->Allocate(-1, MemoryKind::kKv);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device_->usage().total(), 0);
}

TEST_P(BufferTest, UsageIsThreadSafe) {
  constexpr int kThreads = 3, kRounds = 2000;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        absl::StatusOr<Buffer> b = device_->Allocate(64 + r % 7, static_cast<MemoryKind>(t % 4));
        if (!b.ok()) ++failures;
        const MemoryUsage u = device_->usage();
        if (u.total() < 0) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(device_->usage().total(), 0);
}

INSTANTIATE_TEST_SUITE_P(Devices, BufferTest, ::testing::Values("cpu", "sim"),
                         [](const auto& info) { return info.param; });

TEST(SimDeviceTest, RefusesPastCapacityNamingTheFigures) {
  SimDeviceOptions options;
  options.capacity_bytes = 1024 * kMiB;
  std::unique_ptr<Device> sim = NewSimDevice(0, options);
  // The pages are never touched, so this reserves address space only.
  absl::StatusOr<Buffer> w = sim->Allocate(1000 * kMiB, MemoryKind::kWeights);
  absl::StatusOr<Buffer> st = sim->Allocate(20 * kMiB, MemoryKind::kStaging);
  ASSERT_TRUE(w.ok() && st.ok());
  const MemoryUsage before = sim->usage();

  absl::StatusOr<Buffer> refused = sim->Allocate(12 * kMiB, MemoryKind::kWeights);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  const std::string message(refused.status().message());
  EXPECT_THAT(message, HasSubstr("sim:0"));
  EXPECT_THAT(message, HasSubstr("12.0 MiB of weights"));
  EXPECT_THAT(message, HasSubstr("1.0 GiB capacity"));
  EXPECT_THAT(message, HasSubstr("1020.0 MiB in use"));
  EXPECT_THAT(message, HasSubstr("weights 1000.0 MiB"));
  EXPECT_THAT(message, HasSubstr("staging 20.0 MiB"));
  EXPECT_THAT(message, HasSubstr("kv 0 B"));
  EXPECT_THAT(message, HasSubstr("scratch 0 B"));

  // A refusal changes nothing...
  EXPECT_EQ(sim->usage().bytes, before.bytes);
  // ...and what is left can still be had, to the last byte.
  absl::StatusOr<Buffer> rest = sim->Allocate(4 * kMiB, MemoryKind::kKv);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(sim->usage().total(), 1024 * kMiB);
  EXPECT_FALSE(sim->Allocate(1, MemoryKind::kScratch).ok());
  *rest = Buffer();
  EXPECT_TRUE(sim->Allocate(4 * kMiB, MemoryKind::kScratch).ok());
}

// Stream behaviour common to cpu and sim.
class CopyStreamTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Device> device_ = MakeDevice(GetParam());
};

TEST_P(CopyStreamTest, OverlappingCopiesLandInQueueOrder) {
  constexpr int64_t kSize = 4096;
  constexpr int kCopies = 200;
  absl::StatusOr<Buffer> dst = device_->Allocate(kSize, MemoryKind::kWeights);
  ASSERT_TRUE(dst.ok());
  std::memset(dst->data(), 0, kSize);
  std::vector<uint8_t> expected(kSize, 0);

  // Every copy writes its own byte value over a random range; later ones must
  // overwrite earlier ones where they overlap.
  std::mt19937 rng(7);
  std::vector<std::vector<uint8_t>> sources;
  sources.reserve(kCopies);
  std::unique_ptr<CopyStream> stream = device_->NewCopyStream();
  for (int i = 0; i < kCopies; ++i) {
    const int64_t offset = std::uniform_int_distribution<int64_t>(0, kSize - 1)(rng);
    const int64_t bytes = std::uniform_int_distribution<int64_t>(1, kSize - offset)(rng);
    sources.emplace_back(bytes, static_cast<uint8_t>(i + 1));
    stream->Copy(sources.back().data(), dst->data() + offset, bytes);
    std::memcpy(expected.data() + offset, sources.back().data(), bytes);
  }
  // The last copy covers everything but the first byte.
  std::vector<uint8_t> last(kSize - 1, 0xee);
  stream->Copy(last.data(), dst->data() + 1, kSize - 1);
  std::memcpy(expected.data() + 1, last.data(), kSize - 1);

  absl::Status status = stream->Record()->Wait();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(std::memcmp(dst->data(), expected.data(), kSize), 0);
}

TEST_P(CopyStreamTest, TasksRunInOrderWithCopies) {
  absl::StatusOr<Buffer> dst = device_->Allocate(64, MemoryKind::kStaging);
  absl::StatusOr<Buffer> dst2 = device_->Allocate(64, MemoryKind::kStaging);
  ASSERT_TRUE(dst.ok() && dst2.ok());
  std::vector<uint8_t> src(64, 1);
  std::vector<int> seen;  // written by the stream's thread only
  std::unique_ptr<CopyStream> stream = device_->NewCopyStream();

  stream->Copy(src.data(), dst->data(), 64);
  stream->Enqueue([&] {
    // The copy before has landed; the one after has not run yet.
    seen.push_back(dst->data()[63]);
    std::memset(src.data(), 2, src.size());  // like a disk read into staging
    return absl::OkStatus();
  });
  stream->Copy(src.data(), dst2->data(), 64);
  stream->Enqueue([&] {
    seen.push_back(dst2->data()[0]);
    return absl::OkStatus();
  });

  absl::Status status = stream->Record()->Wait();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  EXPECT_EQ(dst->data()[0], 1);
  EXPECT_EQ(dst2->data()[0], 2);
}

TEST_P(CopyStreamTest, TaskErrorFailsLaterEventsOnly) {
  std::unique_ptr<CopyStream> stream = device_->NewCopyStream();
  std::atomic<int> ran{0};
  auto ok_task = [&] {
    ++ran;
    return absl::OkStatus();
  };
  stream->Enqueue(ok_task);
  std::shared_ptr<Event> before = stream->Record();
  stream->Enqueue([&] {
    ++ran;
    return absl::DataLossError("short read");
  });
  std::shared_ptr<Event> at = stream->Record();
  stream->Enqueue([&] {
    ++ran;
    return absl::InternalError("second failure");
  });
  std::vector<uint8_t> src(16, 9), dst(16, 0);
  stream->Copy(src.data(), dst.data(), 16);
  stream->Enqueue(ok_task);
  std::shared_ptr<Event> after = stream->Record();

  EXPECT_TRUE(before->Wait().ok());
  EXPECT_EQ(at->Wait(), absl::DataLossError("short read"));
  // The first error sticks; the later failure does not replace it.
  EXPECT_EQ(after->Wait(), absl::DataLossError("short read"));
  // Later work still runs.
  EXPECT_EQ(ran.load(), 4);
  EXPECT_EQ(dst[15], 9);
  // Waiting again gives the same answer.
  EXPECT_TRUE(before->Wait().ok());
  EXPECT_EQ(after->Wait(), absl::DataLossError("short read"));
  EXPECT_EQ(stream->Record()->Wait(), absl::DataLossError("short read"));
}

TEST_P(CopyStreamTest, EventGoesFromNotDoneToDone) {
  std::unique_ptr<CopyStream> stream = device_->NewCopyStream();
  absl::Notification gate;
  stream->Enqueue([&] {
    gate.WaitForNotification();
    return absl::OkStatus();
  });
  std::shared_ptr<Event> event = stream->Record();
  EXPECT_FALSE(event->Done());
  gate.Notify();
  EXPECT_TRUE(event->Wait().ok());
  EXPECT_TRUE(event->Done());
}

TEST_P(CopyStreamTest, EventOnAnEmptyStreamCompletes) {
  std::unique_ptr<CopyStream> stream = device_->NewCopyStream();
  std::shared_ptr<Event> event = stream->Record();
  EXPECT_TRUE(event->Wait().ok());
  EXPECT_TRUE(event->Done());
}

TEST_P(CopyStreamTest, DestroyingTheStreamRunsQueuedWork) {
  constexpr int kItems = 500;
  std::vector<uint8_t> src(kItems), dst(kItems, 0);
  for (int i = 0; i < kItems; ++i) src[i] = static_cast<uint8_t>(i % 251 + 1);
  std::atomic<int> tasks{0};
  std::shared_ptr<Event> event;
  {
    std::unique_ptr<CopyStream> stream = device_->NewCopyStream();
    for (int i = 0; i < kItems; ++i) {
      stream->Copy(&src[i], &dst[i], 1);
      stream->Enqueue([&] {
        ++tasks;
        return absl::OkStatus();
      });
    }
    event = stream->Record();
  }
  EXPECT_TRUE(event->Done());
  EXPECT_TRUE(event->Wait().ok());
  EXPECT_EQ(tasks.load(), kItems);
  EXPECT_EQ(dst, src);
}

// Several threads may queue on one stream; each thread's items keep their order.
TEST_P(CopyStreamTest, SeveralThreadsQueueing) {
  constexpr int kThreads = 3, kItems = 1000;
  std::unique_ptr<CopyStream> stream = device_->NewCopyStream();
  std::vector<int> last(kThreads, -1);  // touched by the stream's thread only
  std::atomic<int> out_of_order{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kItems; ++i) {
        stream->Enqueue([&, t, i] {
          if (last[t] != i - 1) ++out_of_order;
          last[t] = i;
          return absl::OkStatus();
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(stream->Record()->Wait().ok());
  EXPECT_EQ(out_of_order.load(), 0);
  EXPECT_EQ(last, std::vector<int>(kThreads, kItems - 1));
}

INSTANTIATE_TEST_SUITE_P(Devices, CopyStreamTest, ::testing::Values("cpu", "sim"),
                         [](const auto& info) { return info.param; });

// The pacing tests measure only lower bounds (the simulated time is a floor
// whatever the load) and an upper bound loose enough for a busy machine.
TEST(SimCopyStreamTest, CopiesArePacedByBandwidth) {
  SimDeviceOptions options;
  options.bandwidth_bytes_per_second = 1e9;
  options.latency_seconds = 0;
  std::unique_ptr<Device> sim = NewSimDevice(0, options);
  constexpr int64_t kBytes = 50'000'000;
  std::vector<uint8_t> src(kBytes, 5);
  absl::StatusOr<Buffer> dst = sim->Allocate(kBytes, MemoryKind::kWeights);
  ASSERT_TRUE(dst.ok());
  std::unique_ptr<CopyStream> stream = sim->NewCopyStream();

  const Clock::time_point start = Clock::now();
  for (int i = 0; i < 4; ++i) stream->Copy(src.data(), dst->data(), kBytes);
  EXPECT_TRUE(stream->Record()->Wait().ok());
  const double elapsed = SecondsSince(start);
  EXPECT_GE(elapsed, 0.9 * 0.2);
  EXPECT_LT(elapsed, 20 * 0.2);
  EXPECT_EQ(dst->data()[kBytes - 1], 5);
}

TEST(SimCopyStreamTest, CopiesArePacedByLatency) {
  SimDeviceOptions options;
  options.bandwidth_bytes_per_second = 1e12;
  options.latency_seconds = 5e-3;
  std::unique_ptr<Device> sim = NewSimDevice(1, options);
  std::vector<uint8_t> src(20), dst(20, 0);
  for (int i = 0; i < 20; ++i) src[i] = static_cast<uint8_t>(i + 1);
  std::unique_ptr<CopyStream> stream = sim->NewCopyStream();

  const Clock::time_point start = Clock::now();
  std::shared_ptr<Event> first;
  for (int i = 0; i < 20; ++i) {
    stream->Copy(&src[i], &dst[i], 1);
    if (i == 0) first = stream->Record();
  }
  std::shared_ptr<Event> all = stream->Record();
  EXPECT_TRUE(first->Wait().ok());
  EXPECT_GE(SecondsSince(start), 0.9 * 5e-3);
  EXPECT_TRUE(all->Wait().ok());
  const double elapsed = SecondsSince(start);
  EXPECT_GE(elapsed, 0.9 * 0.1);
  EXPECT_LT(elapsed, 20 * 0.1);
  EXPECT_EQ(dst, src);
}

// Enqueue'd tasks are host work: the link's latency does not apply to them.
TEST(SimCopyStreamTest, TasksAreNotPaced) {
  SimDeviceOptions options;
  options.latency_seconds = 10;  // any paced item would take 10 s
  std::unique_ptr<Device> sim = NewSimDevice(0, options);
  std::unique_ptr<CopyStream> stream = sim->NewCopyStream();
  const Clock::time_point start = Clock::now();
  std::atomic<int> ran{0};
  for (int i = 0; i < 10; ++i) {
    stream->Enqueue([&] {
      ++ran;
      return absl::OkStatus();
    });
  }
  EXPECT_TRUE(stream->Record()->Wait().ok());
  EXPECT_LT(SecondsSince(start), 5.0);
  EXPECT_EQ(ran.load(), 10);
}

TEST(SimCopyStreamTest, DestroyingTheStreamFinishesPacedCopies) {
  SimDeviceOptions options;
  options.latency_seconds = 2e-3;
  std::unique_ptr<Device> sim = NewSimDevice(0, options);
  std::vector<uint8_t> src(10), dst(10, 0);
  for (int i = 0; i < 10; ++i) src[i] = static_cast<uint8_t>(100 + i);
  std::shared_ptr<Event> event;
  const Clock::time_point start = Clock::now();
  {
    std::unique_ptr<CopyStream> stream = sim->NewCopyStream();
    for (int i = 0; i < 10; ++i) stream->Copy(&src[i], &dst[i], 1);
    event = stream->Record();
  }
  // The destructor waited out the simulated time of every copy.
  EXPECT_GE(SecondsSince(start), 0.9 * 10 * 2e-3);
  EXPECT_TRUE(event->Done());
  EXPECT_TRUE(event->Wait().ok());
  EXPECT_EQ(dst, src);
}

}  // namespace
}  // namespace tierserve
