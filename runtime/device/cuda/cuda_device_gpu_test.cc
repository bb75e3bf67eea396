// cuda:N and the pinned host device on a real GPU. Every test that needs a
// device reports SKIPPED when CudaDeviceCount() finds none: it never passes
// without a GPU. The stream tests are the CopyStream contract of device.h, the
// one runtime/device/device_test.cc checks on cpu and sim. ctest label: gpu.
#include "runtime/device/cuda/cuda_device.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/device/device.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMiB = int64_t{1} << 20;

int64_t Used(const Device& device, MemoryKind kind) {
  return device.usage().bytes[static_cast<int>(kind)];
}

// cuda:0 and pinned host memory; every test here needs them.
class CudaDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    absl::StatusOr<std::unique_ptr<Device>> gpu = NewCudaDevice(0);
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    gpu_ = std::move(*gpu);
    pinned_ = NewCudaPinnedHostDevice();
  }

  // `bytes` of pinned host memory, or a test failure.
  Buffer Pinned(int64_t bytes) {
    absl::StatusOr<Buffer> b = pinned_->Allocate(bytes, MemoryKind::kStaging);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? std::move(*b) : Buffer();
  }
  Buffer OnGpu(int64_t bytes, MemoryKind kind = MemoryKind::kWeights) {
    absl::StatusOr<Buffer> b = gpu_->Allocate(bytes, kind);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? std::move(*b) : Buffer();
  }

  // Declared first, destroyed last: buffers and streams go before them.
  std::unique_ptr<Device> gpu_;
  std::unique_ptr<Device> pinned_;
};

// Runs with or without a GPU: an index past the last device is unavailable.
TEST(CudaDeviceAvailabilityTest, IndexPastTheLastDeviceIsUnavailable) {
  const int count = CudaDeviceCount();
  absl::StatusOr<std::unique_ptr<Device>> device = NewCudaDevice(count);
  ASSERT_EQ(device.status().code(), absl::StatusCode::kUnavailable) << device.status();
  EXPECT_THAT(device.status().message(), HasSubstr("cuda:" + std::to_string(count)));
  absl::StatusOr<std::unique_ptr<Device>> negative = NewCudaDevice(-1);
  ASSERT_EQ(negative.status().code(), absl::StatusCode::kUnavailable) << negative.status();
  EXPECT_THAT(negative.status().message(), HasSubstr("cuda:-1"));
}

// The machine without a GPU (CI): cuda:0 is refused, naming itself.
TEST(CudaDeviceAvailabilityTest, NoDeviceMeansCuda0IsUnavailable) {
  if (CudaDeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  absl::StatusOr<std::unique_ptr<Device>> device = NewCudaDevice(0);
  ASSERT_EQ(device.status().code(), absl::StatusCode::kUnavailable) << device.status();
  EXPECT_THAT(device.status().message(), HasSubstr("cuda:0"));
}

TEST_F(CudaDeviceTest, NameKindAndCapacity) {
  EXPECT_EQ(gpu_->name(), "cuda:0");
  EXPECT_EQ(gpu_->kind(), DeviceKind::kCuda);
  EXPECT_EQ(gpu_->index(), 0);
  EXPECT_FALSE(gpu_->host_addressable());
  EXPECT_GT(gpu_->usage().capacity, 0);
  EXPECT_EQ(gpu_->usage().total(), 0);

  EXPECT_EQ(pinned_->kind(), DeviceKind::kCpu);
  EXPECT_TRUE(pinned_->host_addressable());
  EXPECT_EQ(pinned_->usage().capacity, -1);
}

TEST_F(CudaDeviceTest, BuffersAreAlignedAndCountedByKindUntilTheyDie) {
  {
    Buffer weights = OnGpu(3 * kMiB, MemoryKind::kWeights);
    Buffer kv = OnGpu(4096 + 5, MemoryKind::kKv);
    Buffer staging = Pinned(kMiB + 1);
    ASSERT_FALSE(weights.empty() || kv.empty() || staging.empty());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(weights.data()) % 64, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(kv.data()) % 64, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(staging.data()) % 64, 0u);
    std::memset(staging.data(), 0x5a, kMiB + 1);  // host-addressable

    EXPECT_EQ(Used(*gpu_, MemoryKind::kWeights), 3 * kMiB);
    EXPECT_EQ(Used(*gpu_, MemoryKind::kKv), 4096 + 5);
    EXPECT_EQ(Used(*gpu_, MemoryKind::kStaging), 0);
    EXPECT_EQ(gpu_->usage().total(), 3 * kMiB + 4096 + 5);
    EXPECT_EQ(Used(*pinned_, MemoryKind::kStaging), kMiB + 1);
    EXPECT_EQ(pinned_->usage().total(), kMiB + 1);

    kv = Buffer();
    EXPECT_EQ(Used(*gpu_, MemoryKind::kKv), 0);
    EXPECT_EQ(gpu_->usage().total(), 3 * kMiB);
  }
  EXPECT_EQ(gpu_->usage().total(), 0);
  EXPECT_EQ(pinned_->usage().total(), 0);
}

TEST_F(CudaDeviceTest, AllocatingPastTheCapacityIsRefused) {
  Buffer held = OnGpu(kMiB, MemoryKind::kKv);
  const MemoryUsage before = gpu_->usage();
  absl::StatusOr<Buffer> refused = gpu_->Allocate(before.capacity + 1, MemoryKind::kWeights);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("cuda:0"));
  EXPECT_THAT(refused.status().message(), HasSubstr("of weights"));
  // A refusal changes nothing.
  EXPECT_EQ(gpu_->usage().bytes, before.bytes);
}

TEST_F(CudaDeviceTest, HostToDeviceToHostRoundTrip) {
  constexpr int64_t kBytes = 8 * kMiB + 12345;
  Buffer src = Pinned(kBytes);
  Buffer dst = Pinned(kBytes);
  Buffer on_gpu = OnGpu(kBytes);
  ASSERT_FALSE(src.empty() || dst.empty() || on_gpu.empty());
  std::mt19937 rng(11);
  for (int64_t i = 0; i < kBytes; ++i) src.data()[i] = static_cast<uint8_t>(rng());
  std::memset(dst.data(), 0, kBytes);

  std::unique_ptr<CopyStream> stream = gpu_->NewCopyStream();
  stream->Copy(src.data(), on_gpu.data(), kBytes);
  stream->Copy(on_gpu.data(), dst.data(), kBytes);
  absl::Status status = stream->Record()->Wait();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(std::memcmp(src.data(), dst.data(), kBytes), 0);
}

TEST_F(CudaDeviceTest, PinnedDeviceStreamCopiesOnTheHost) {
  Buffer src = Pinned(4096);
  Buffer dst = Pinned(4096);
  ASSERT_FALSE(src.empty() || dst.empty());
  std::memset(src.data(), 7, 4096);
  std::memset(dst.data(), 0, 4096);
  std::unique_ptr<CopyStream> stream = pinned_->NewCopyStream();
  stream->Copy(src.data(), dst.data(), 4096);
  absl::Status status = stream->Record()->Wait();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(dst.data()[0], 7);
  EXPECT_EQ(dst.data()[4095], 7);
}

TEST_F(CudaDeviceTest, ALaterCopyIntoTheSameDestinationWins) {
  constexpr int64_t kBytes = 4 * kMiB;
  Buffer first = Pinned(kBytes);
  Buffer second = Pinned(kBytes);
  Buffer back = Pinned(kBytes);
  Buffer on_gpu = OnGpu(kBytes);
  ASSERT_FALSE(first.empty() || second.empty() || back.empty() || on_gpu.empty());
  std::memset(first.data(), 0x11, kBytes);
  std::memset(second.data(), 0x22, kBytes);
  std::memset(back.data(), 0, kBytes);

  std::unique_ptr<CopyStream> stream = gpu_->NewCopyStream();
  stream->Copy(first.data(), on_gpu.data(), kBytes);
  stream->Copy(second.data(), on_gpu.data(), kBytes);
  stream->Copy(on_gpu.data(), back.data(), kBytes);
  absl::Status status = stream->Record()->Wait();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(std::memcmp(back.data(), second.data(), kBytes), 0);
}

TEST_F(CudaDeviceTest, OverlappingCopiesLandInQueueOrder) {
  constexpr int64_t kSize = 4096;
  constexpr int kCopies = 200;
  Buffer sources = Pinned(kCopies * kSize);
  Buffer zeros = Pinned(kSize);
  Buffer back = Pinned(kSize);
  Buffer on_gpu = OnGpu(kSize);
  ASSERT_FALSE(sources.empty() || zeros.empty() || back.empty() || on_gpu.empty());
  std::memset(zeros.data(), 0, kSize);
  std::memset(back.data(), 0xff, kSize);
  std::vector<uint8_t> expected(kSize, 0);

  std::unique_ptr<CopyStream> stream = gpu_->NewCopyStream();
  stream->Copy(zeros.data(), on_gpu.data(), kSize);
  std::mt19937 rng(7);
  for (int i = 0; i < kCopies; ++i) {
    const int64_t offset = std::uniform_int_distribution<int64_t>(0, kSize - 1)(rng);
    const int64_t bytes = std::uniform_int_distribution<int64_t>(1, kSize - offset)(rng);
    uint8_t* source = sources.data() + i * kSize;
    std::memset(source, i + 1, static_cast<size_t>(bytes));
    stream->Copy(source, on_gpu.data() + offset, bytes);
    std::memset(expected.data() + offset, i + 1, static_cast<size_t>(bytes));
  }
  stream->Copy(on_gpu.data(), back.data(), kSize);
  absl::Status status = stream->Record()->Wait();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(std::memcmp(back.data(), expected.data(), kSize), 0);
}

TEST_F(CudaDeviceTest, TasksRunInOrderWithCopies) {
  Buffer src = Pinned(64);
  Buffer back = Pinned(64);
  Buffer back2 = Pinned(64);
  Buffer on_gpu = OnGpu(64);
  Buffer on_gpu2 = OnGpu(64);
  ASSERT_FALSE(src.empty() || back.empty() || back2.empty() || on_gpu.empty() ||
               on_gpu2.empty());
  std::memset(src.data(), 1, 64);
  std::memset(back.data(), 0, 64);
  std::memset(back2.data(), 0, 64);
  std::vector<int> seen;  // written by the tasks only
  std::unique_ptr<CopyStream> stream = gpu_->NewCopyStream();

  stream->Copy(src.data(), on_gpu.data(), 64);
  stream->Copy(on_gpu.data(), back.data(), 64);
  stream->Enqueue([&] {
    // The copies before have landed; the ones after have not run yet.
    seen.push_back(back.data()[63]);
    std::memset(src.data(), 2, 64);  // like a disk read into staging
    return absl::OkStatus();
  });
  stream->Copy(src.data(), on_gpu2.data(), 64);
  stream->Copy(on_gpu2.data(), back2.data(), 64);
  stream->Enqueue([&] {
    seen.push_back(back2.data()[0]);
    return absl::OkStatus();
  });

  absl::Status status = stream->Record()->Wait();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  EXPECT_EQ(back.data()[0], 1);
  EXPECT_EQ(back2.data()[0], 2);
}

TEST_F(CudaDeviceTest, TaskErrorFailsLaterEventsOnly) {
  Buffer src = Pinned(16);
  Buffer back = Pinned(16);
  Buffer on_gpu = OnGpu(16);
  ASSERT_FALSE(src.empty() || back.empty() || on_gpu.empty());
  std::memset(src.data(), 9, 16);
  std::memset(back.data(), 0, 16);
  std::unique_ptr<CopyStream> stream = gpu_->NewCopyStream();
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
  stream->Copy(src.data(), on_gpu.data(), 16);
  stream->Copy(on_gpu.data(), back.data(), 16);
  stream->Enqueue(ok_task);
  std::shared_ptr<Event> after = stream->Record();

  EXPECT_TRUE(before->Wait().ok());
  EXPECT_EQ(at->Wait(), absl::DataLossError("short read"));
  // The first error sticks; the later failure does not replace it.
  EXPECT_EQ(after->Wait(), absl::DataLossError("short read"));
  // Later work still runs.
  EXPECT_EQ(ran.load(), 4);
  EXPECT_EQ(back.data()[15], 9);
  // Waiting again gives the same answer.
  EXPECT_TRUE(before->Wait().ok());
  EXPECT_EQ(after->Wait(), absl::DataLossError("short read"));
  EXPECT_EQ(stream->Record()->Wait(), absl::DataLossError("short read"));
}

TEST_F(CudaDeviceTest, EventGoesFromNotDoneToDone) {
  std::unique_ptr<CopyStream> stream = gpu_->NewCopyStream();
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

TEST_F(CudaDeviceTest, EventOnAnEmptyStreamCompletes) {
  std::unique_ptr<CopyStream> stream = gpu_->NewCopyStream();
  std::shared_ptr<Event> event = stream->Record();
  EXPECT_TRUE(event->Wait().ok());
  EXPECT_TRUE(event->Done());
}

TEST_F(CudaDeviceTest, DestroyingTheStreamRunsQueuedWork) {
  constexpr int kItems = 500;
  Buffer src = Pinned(kItems);
  Buffer back = Pinned(kItems);
  Buffer on_gpu = OnGpu(kItems);
  ASSERT_FALSE(src.empty() || back.empty() || on_gpu.empty());
  for (int i = 0; i < kItems; ++i) src.data()[i] = static_cast<uint8_t>(i % 251 + 1);
  std::memset(back.data(), 0, kItems);
  std::atomic<int> tasks{0};
  std::shared_ptr<Event> event;
  {
    std::unique_ptr<CopyStream> stream = gpu_->NewCopyStream();
    for (int i = 0; i < kItems; ++i) {
      stream->Copy(src.data() + i, on_gpu.data() + i, 1);
      stream->Enqueue([&] {
        ++tasks;
        return absl::OkStatus();
      });
    }
    stream->Copy(on_gpu.data(), back.data(), kItems);
    event = stream->Record();
  }
  EXPECT_TRUE(event->Done());
  EXPECT_TRUE(event->Wait().ok());
  EXPECT_EQ(tasks.load(), kItems);
  EXPECT_EQ(std::memcmp(back.data(), src.data(), kItems), 0);
}

// A task may own a buffer of the GPU: it is freed on a caller's thread, not
// in the runtime's host function, and the count drops once it is.
TEST_F(CudaDeviceTest, ATaskMayOwnAGpuBuffer) {
  auto owned = std::make_shared<Buffer>(OnGpu(kMiB, MemoryKind::kScratch));
  ASSERT_FALSE(owned->empty());
  {
    std::unique_ptr<CopyStream> stream = gpu_->NewCopyStream();
    stream->Enqueue([owned = std::move(owned)] { return absl::OkStatus(); });
    EXPECT_TRUE(stream->Record()->Wait().ok());
  }
  EXPECT_EQ(Used(*gpu_, MemoryKind::kScratch), 0);
}

}  // namespace
}  // namespace tierserve
